#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (H100): environment, throughput, time to accuracy, accuracy parity.
#
#   bash bench/run_gpu.sh            # on the GPU machine; results go to $OUT (default: a new temp dir)
#   bash bench/run_gpu.sh --dry-run  # the same steps on the CPU with --quick (tiny sizes), to check the script
#   STEPS="parity" bash bench/run_gpu.sh   # only some steps (any of: throughput tta parity)
#
# Data: .data/cifar10-jpeg.tar.gz inside the repo (how it is carried to the GPU machine; .data/ is
# git-excluded), else ../shared/data/cifar10-jpeg.tar.gz. Each benchmark runs under its own timeout
# and writes its JSON as it goes, so a timeout still leaves the figures measured so far.
# Time budget (GPU): setup ~10 s, throughput <= 210 s, time to accuracy <= 240 s, accuracy parity
# <= 240 s: 11.7 minutes at most, more than one 10-minute device call; run it as two calls, e.g.
# STEPS="throughput tta" then STEPS="parity".
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
fi
OUT="${OUT:-$(mktemp -d -t wrn-bench-out-XXXXXX)}"
STEPS="${STEPS:-throughput tta parity}"
mkdir -p "$OUT"

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    EXTRA=(--quick --threads 1)  # one torch thread: this CPU is shared (see bench/RESULTS.md)
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-300}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-300}"
    PARITY_TIMEOUT="${PARITY_TIMEOUT:-300}"
else
    DEVICE=cuda
    EXTRA=()
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-210}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-240}"
    PARITY_TIMEOUT="${PARITY_TIMEOUT:-240}"
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') run_gpu.sh (dry run: $DRY_RUN, device: $DEVICE, steps: $STEPS, out: $OUT)"
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

wants() {
    case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

status=0
if wants throughput; then
    echo "== throughput (timeout ${THROUGHPUT_TIMEOUT} s)"
    timeout -k 10 "$THROUGHPUT_TIMEOUT" python -m bench.throughput --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/throughput-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "throughput exited $rc"; status=1; }
fi

if wants tta; then
    echo "== time to accuracy (timeout ${TTA_TIMEOUT} s)"
    timeout -k 10 "$TTA_TIMEOUT" python -m bench.time_to_accuracy --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/tta-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "time_to_accuracy exited $rc"; status=1; }
fi

if wants parity; then
    # The engine (Fast GPU preset: bf16, channels_last, compile) against the fp32 conventional loop,
    # WRN-16-8 on the full set, one seed; its JSON is rewritten after each path.
    echo "== accuracy parity (timeout ${PARITY_TIMEOUT} s)"
    timeout -k 10 "$PARITY_TIMEOUT" python -m bench.accuracy_parity --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/accuracy-parity-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "accuracy_parity exited $rc"; status=1; }
fi

echo "== results in $OUT"
ls -l "$OUT"
exit $status
