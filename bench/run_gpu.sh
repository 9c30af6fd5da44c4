#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (H100): environment, throughput, time to accuracy, in under 8 minutes.
#
#   bash bench/run_gpu.sh            # on the GPU machine; results go to $OUT (default: a new temp dir)
#   bash bench/run_gpu.sh --dry-run  # the same steps on the CPU with --quick (tiny sizes), to check the script
#
# Data: .data/cifar10-jpeg.tar.gz inside the repo (how it is carried to the GPU machine; .data/ is
# git-excluded), else ../shared/data/cifar10-jpeg.tar.gz. Each benchmark runs under its own timeout
# and writes its JSON as it goes, so a timeout still leaves the figures measured so far.
# Time budget (GPU): setup ~10 s, throughput <= 210 s, time to accuracy <= 240 s: 7.7 minutes at most.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
fi
OUT="${OUT:-$(mktemp -d -t wrn-bench-out-XXXXXX)}"
mkdir -p "$OUT"

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    EXTRA=(--quick --threads 1)  # one torch thread: this CPU is shared (see bench/RESULTS.md)
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-300}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-300}"
else
    DEVICE=cuda
    EXTRA=()
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-210}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-240}"
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') run_gpu.sh (dry run: $DRY_RUN, device: $DEVICE, out: $OUT)"
echo "== nvidia-smi"
nvidia-smi || echo "(nvidia-smi not available)"
echo "== python / torch"
python -c "import sys, torch, torchvision; print(sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
nproc

TARBALL=""
for candidate in .data/cifar10-jpeg.tar.gz ../shared/data/cifar10-jpeg.tar.gz; do
    if [ -f "$candidate" ]; then
        TARBALL="$candidate"
        break
    fi
done
if [ -z "$TARBALL" ]; then
    echo "ERROR: cifar10-jpeg.tar.gz not found in .data/ or ../shared/data/" >&2
    exit 2
fi
DATA="${TMPDIR:-/tmp}/wrn-bench-cifar10-jpeg"
if [ ! -f "$DATA/.complete" ]; then
    echo "== unpacking $TARBALL into $DATA"
    rm -rf "$DATA" && mkdir -p "$DATA"
    start=$(date +%s)
    tar xzf "$TARBALL" -C "$DATA" && touch "$DATA/.complete"
    echo "unpacked in about $(( $(date +%s) - start )) s"
fi

status=0
echo "== throughput (timeout ${THROUGHPUT_TIMEOUT} s)"
timeout -k 10 "$THROUGHPUT_TIMEOUT" python -m bench.throughput --device "$DEVICE" --data-dir "$DATA" \
    --out "$OUT/throughput-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "throughput exited $rc"; status=1; }

echo "== time to accuracy (timeout ${TTA_TIMEOUT} s)"
timeout -k 10 "$TTA_TIMEOUT" python -m bench.time_to_accuracy --device "$DEVICE" --data-dir "$DATA" \
    --out "$OUT/tta-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "time_to_accuracy exited $rc"; status=1; }

echo "== results in $OUT"
ls -l "$OUT"
exit $status
