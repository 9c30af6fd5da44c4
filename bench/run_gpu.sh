#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (H100): the CUDA tests, throughput, time to accuracy,
# the seed article's recipe, accuracy parity, and DDP scaling where there are several GPUs.
#
#   bash bench/run_gpu.sh            # on the GPU machine; results go to $OUT (default: a new temp dir)
#   bash bench/run_gpu.sh --dry-run  # the same steps on the CPU with --quick (tiny sizes), to check the script
#   STEPS="parity" bash bench/run_gpu.sh   # only some steps (any of: cuda throughput tta seed parity ddp)
#
# Data: .data/cifar10-jpeg.tar.gz inside the repo (how it is carried to the GPU machine; .data/ is
# git-excluded), else ../shared/data/cifar10-jpeg.tar.gz. Each benchmark runs under its own timeout
# and writes its JSON as it goes, so a timeout still leaves the figures measured so far.
# Time budget (GPU), 8 minutes at most: setup ~20 s, `pytest -m cuda` <= 80 s, throughput <= 100 s,
# time to accuracy <= 100 s, the seed article's 20 epochs <= 70 s, accuracy parity <= 110 s (5 epochs);
# DDP scaling (only with 2+ GPUs) <= 60 s more. A step cut by its timeout keeps what it wrote so far.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
fi
OUT="${OUT:-$(mktemp -d -t wrn-bench-out-XXXXXX)}"
STEPS="${STEPS:-cuda throughput tta seed parity ddp}"
mkdir -p "$OUT"
# The GPU machine's python3 is the one with torch; `python` may not exist there.
PY="${PYTHON:-$(command -v python3 || command -v python)}"

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    EXTRA=(--quick --threads 1)  # one torch thread: this CPU is shared (see bench/RESULTS.md)
    CUDA_TESTS_TIMEOUT="${CUDA_TESTS_TIMEOUT:-120}"
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-300}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-300}"
    SEED_TIMEOUT="${SEED_TIMEOUT:-300}"
    PARITY_TIMEOUT="${PARITY_TIMEOUT:-300}"
    DDP_TIMEOUT="${DDP_TIMEOUT:-300}"
    SEED_ARGS=(--blocks 1 --widen-factor 1 --subset-train 512 --subset-test 256 --epochs 1 --device cpu)
    PARITY_ARGS=()
else
    DEVICE=cuda
    EXTRA=()
    CUDA_TESTS_TIMEOUT="${CUDA_TESTS_TIMEOUT:-80}"
    THROUGHPUT_TIMEOUT="${THROUGHPUT_TIMEOUT:-100}"
    TTA_TIMEOUT="${TTA_TIMEOUT:-100}"
    SEED_TIMEOUT="${SEED_TIMEOUT:-70}"
    PARITY_TIMEOUT="${PARITY_TIMEOUT:-110}"
    DDP_TIMEOUT="${DDP_TIMEOUT:-60}"
    SEED_ARGS=(--device cuda)
    PARITY_ARGS=(--epochs 5)
fi

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') run_gpu.sh (dry run: $DRY_RUN, device: $DEVICE, steps: $STEPS, out: $OUT)"
echo "== nvidia-smi"
nvidia-smi || echo "(nvidia-smi not available)"
echo "== python / torch"
"$PY" -c "import sys, torch, torchvision; print(sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
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
if wants cuda; then
    # The engine's CUDA path: bf16, channels_last, compile, stop/resume, system records, the memory
    # prediction against max_memory_allocated, OOM recovery, torchrun with and without --sync-bn.
    echo "== pytest -m cuda (timeout ${CUDA_TESTS_TIMEOUT} s)"
    timeout -k 10 "$CUDA_TESTS_TIMEOUT" "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider tests/test_cuda.py \
        --junitxml "$OUT/pytest-cuda.xml" || { rc=$?; echo "pytest -m cuda exited $rc"; status=1; }
fi

if wants throughput; then
    echo "== throughput (timeout ${THROUGHPUT_TIMEOUT} s)"
    timeout -k 10 "$THROUGHPUT_TIMEOUT" "$PY" -m bench.throughput --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/throughput-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "throughput exited $rc"; status=1; }
fi

if wants tta; then
    echo "== time to accuracy (timeout ${TTA_TIMEOUT} s)"
    timeout -k 10 "$TTA_TIMEOUT" "$PY" -m bench.time_to_accuracy --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/tta-$DEVICE.json" "${EXTRA[@]}" || { rc=$?; echo "time_to_accuracy exited $rc"; status=1; }
fi

if wants seed; then
    # The article this project grew from: WRN-10-8 (N=1, k=8), Adam at lr 1e-3, 20 epochs on CIFAR-10.
    # It reported 17% test accuracy; the final and best figures land in seed-article.csv.
    echo "== seed-article preset (timeout ${SEED_TIMEOUT} s)"
    timeout -k 10 "$SEED_TIMEOUT" "$PY" -m wrn_core train --preset seed-article --dataset folder --data-dir "$DATA" \
        --runs-dir "$OUT/runs" --name seed-article --quiet "${SEED_ARGS[@]}" || { rc=$?; echo "seed-article exited $rc"; status=1; }
    "$PY" -m wrn_core runs export seed-article --format csv --runs-dir "$OUT/runs" --out "$OUT/seed-article.csv" \
        || echo "(no seed-article metrics to export)"
fi

if wants parity; then
    # The engine (Fast GPU preset: bf16, channels_last, compile) against the fp32 conventional loop,
    # WRN-16-8 on the full set, one seed; its JSON is rewritten after each path.
    echo "== accuracy parity (timeout ${PARITY_TIMEOUT} s)"
    timeout -k 10 "$PARITY_TIMEOUT" "$PY" -m bench.accuracy_parity --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/accuracy-parity-$DEVICE.json" "${PARITY_ARGS[@]}" "${EXTRA[@]}" || { rc=$?; echo "accuracy_parity exited $rc"; status=1; }
fi

GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if wants ddp && { [ "$DRY_RUN" = 1 ] || [ "$GPUS" -ge 2 ]; }; then
    echo "== DDP scaling (timeout ${DDP_TIMEOUT} s)"
    timeout -k 10 "$DDP_TIMEOUT" "$PY" -m bench.ddp_scaling --device "$DEVICE" --out "$OUT/ddp-scaling-$DEVICE.json" \
        "${EXTRA[@]}" || { rc=$?; echo "ddp_scaling exited $rc"; status=1; }
elif wants ddp; then
    echo "== DDP scaling skipped: $GPUS GPU(s) here, it needs 2 or more"
fi

echo "== results in $OUT"
ls -l "$OUT"
exit $status
