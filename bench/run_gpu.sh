#!/usr/bin/env bash
# The one prepared command for a lent GPU machine (H200, torch 2.11): what the CUDA path does and how fast.
#
#   bash bench/run_gpu.sh            # on the GPU machine, in one device call of at most 9 minutes
#   bash bench/run_gpu.sh --dry-run  # the same steps on the CPU at tiny sizes, and the same checks of $OUT
#   STEPS="tta gap" bash bench/run_gpu.sh   # only some steps (any of: cuda tta throughput seed gap parity ddp)
#
# Data: .data/cifar10-jpeg.tar.gz inside the repo (how it travels to the GPU machine: .data/ is
# git-ignored and named in the call's `carry`), else ../shared/data/cifar10-jpeg.tar.gz.
# Every step runs under its own timeout, sized for a cold torch.compile of WRN-16-8 (40-90 s), and
# writes its JSON as it goes, so a step cut short keeps what it measured. Runs and checkpoints live
# under $WORK, never in $OUT: what comes back is at most 8 plain files under 16 MiB, named in letters,
# digits, '.', '_' and '-', at most two folders down; the script checks that at the end.
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then
    DRY_RUN=1
fi
OUT="${OUT:-$(mktemp -d -t wrn-bench-out-XXXXXX)}"
WORK="${WORK:-$(mktemp -d -t wrn-bench-work-XXXXXX)}"  # runs directories, unpacked data: never sent back
STEPS="${STEPS:-cuda tta throughput seed gap parity ddp}"
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/run_gpu.log") 2>&1  # the log comes back even when the call is cut off
# The GPU machine's python3 is the one with torch; `python` may not exist there.
PY="${PYTHON:-$(command -v python3 || command -v python)}"

if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    EXTRA=(--quick --threads 1)  # one torch thread: this CPU is shared (see bench/RESULTS.md)
    T_SETUP=60; T_CUDA=120; T_TTA=300; T_THROUGHPUT=300; T_SEED=300; T_GAP=300; T_PARITY=300; T_DDP=300
    SEED_ARGS=(--blocks 1 --widen-factor 1 --subset-train 512 --subset-test 256 --epochs 1 --device cpu)
    GAP_ARGS=(--device cpu --epochs 3 --threads 1 --no-baseline)
    THROUGHPUT_ARGS=()
    PARITY_ARGS=()
else
    DEVICE=cuda
    EXTRA=()
    # Seconds, in run order; with the setup they add up to the call's budget below (9 minutes at most).
    T_SETUP=25; T_CUDA=140; T_TTA=180; T_THROUGHPUT=75; T_SEED=45; T_GAP=45; T_PARITY=90; T_DDP=60
    SEED_ARGS=(--device cuda)
    GAP_ARGS=(--device cuda --no-baseline)
    THROUGHPUT_ARGS=(--suite compiled)
    PARITY_ARGS=(--epochs 5)
fi
BUDGET="${BUDGET:-$([ "$DRY_RUN" = 1 ] && echo 3000 || echo 540)}"  # the whole call, seconds; parity and DDP run only if their timeout still fits in it
PLANNED=$((T_SETUP + T_CUDA + T_TTA + T_THROUGHPUT + T_SEED + T_GAP))
START=$SECONDS

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') run_gpu.sh (dry run: $DRY_RUN, device: $DEVICE, steps: $STEPS, out: $OUT, work: $WORK)"
echo "== budget: setup $T_SETUP + cuda tests $T_CUDA + time to accuracy $T_TTA + throughput $T_THROUGHPUT + seed $T_SEED" \
     "+ epoch gap $T_GAP = $PLANNED s of $BUDGET s; then parity ($T_PARITY s) and DDP ($T_DDP s) if they still fit"
echo "== nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || echo "(nvidia-smi not available)"
echo "== python / torch"
"$PY" -c "import sys, torch, torchvision; print(sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
echo "cpus: $(nproc)"

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
    timeout -k 5 "$T_SETUP" tar xzf "$TARBALL" -C "$DATA" && touch "$DATA/.complete"
    echo "unpacked after $((SECONDS - START)) s"
fi

wants() {
    case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}
fits() {  # whether a step of $1 seconds still fits in the budget
    [ $((SECONDS - START + $1)) -le "$BUDGET" ]
}
step() {  # step NAME TIMEOUT COMMAND...: run it under its timeout, say how it ended and how long it took
    local name=$1 limit=$2 began=$SECONDS rc
    shift 2
    echo "== $name (timeout $limit s, at $((SECONDS - START)) s)"
    timeout -k 10 "$limit" "$@"
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - began)) s"
    [ $rc -eq 0 ] || status=1
}

status=0
if wants cuda; then
    # The engine's CUDA path: bf16, channels_last, compile, stop/resume, system records, the memory
    # prediction against max_memory_allocated, OOM recovery, torchrun with and without --sync-bn.
    # -v: each test's outcome is in the log as it happens, even if the step is cut off.
    PER_TEST=()
    "$PY" -c "import pytest_timeout" 2>/dev/null && PER_TEST=(--timeout 60)
    step "pytest -m cuda" "$T_CUDA" "$PY" -m pytest -m cuda -v -rs -p no:cacheprovider "${PER_TEST[@]}" tests/test_cuda.py
fi
if wants tta; then
    # Second: its compile of WRN-16-8 at batch 512 fills inductor's cache for the steps after it.
    step "time to accuracy" "$T_TTA" "$PY" -m bench.time_to_accuracy --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/tta-$DEVICE.json" "${EXTRA[@]}"
fi
if wants throughput; then
    step "throughput" "$T_THROUGHPUT" "$PY" -m bench.throughput --device "$DEVICE" --data-dir "$DATA" \
        --out "$OUT/throughput-$DEVICE.json" "${THROUGHPUT_ARGS[@]}" "${EXTRA[@]}"
fi
if wants seed; then
    # The article this project grew from: WRN-10-8 (N=1, k=8), Adam at lr 1e-3, 20 epochs on CIFAR-10.
    # It reported 17% test accuracy; the final and best figures land in seed-article.csv.
    step "seed-article preset" "$T_SEED" "$PY" -m wrn_core train --preset seed-article --dataset folder --data-dir "$DATA" \
        --runs-dir "$WORK/runs" --name seed-article --quiet "${SEED_ARGS[@]}"
    "$PY" -m wrn_core runs export seed-article --format csv --runs-dir "$WORK/runs" --out "$OUT/seed-article.csv" \
        || echo "(no seed-article metrics to export)"
fi
if wants gap; then
    step "epoch gap" "$T_GAP" "$PY" -m bench.epoch_gap --data-dir "$DATA" --out "$OUT/epoch-gap-$DEVICE.json" "${GAP_ARGS[@]}"
fi
if wants parity; then
    if fits "$T_PARITY"; then
        # The engine (Fast GPU preset) against the fp32 conventional loop, WRN-16-8 on the full set, one seed.
        step "accuracy parity" "$T_PARITY" "$PY" -m bench.accuracy_parity --device "$DEVICE" --data-dir "$DATA" \
            --out "$OUT/accuracy-parity-$DEVICE.json" "${PARITY_ARGS[@]}" "${EXTRA[@]}"
    else
        echo "== accuracy parity skipped: $((SECONDS - START)) s used, $T_PARITY s more would pass the $BUDGET s budget"
    fi
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
if wants ddp && { [ "$DRY_RUN" = 1 ] || [ "$GPUS" -ge 2 ]; }; then
    if fits "$T_DDP"; then
        step "DDP scaling" "$T_DDP" "$PY" -m bench.ddp_scaling --device "$DEVICE" --out "$OUT/ddp-scaling-$DEVICE.json" "${EXTRA[@]}"
    else
        echo "== DDP scaling skipped: not enough of the $BUDGET s budget left"
    fi
elif wants ddp; then
    echo "== DDP scaling skipped: $GPUS GPU(s) here, it needs 2 or more"
fi

echo "== $((SECONDS - START)) s in all; results in $OUT"
ls -l "$OUT"
# What the device call can bring back: at most 8 files under 16 MiB, plain names, two folders deep at most.
"$PY" - "$OUT" <<'EOF' || status=1
import re, sys
from pathlib import Path
out = Path(sys.argv[1])
files = [p for p in out.rglob("*") if p.is_file() or p.is_symlink()]
problems = [f"{len(files)} files (at most 8)"] if len(files) > 8 else []
for p in files:
    rel = p.relative_to(out)
    if p.is_symlink() or not p.is_file():
        problems.append(f"{rel}: not a plain file")
    if p.stat().st_size >= 16 * 2**20:
        problems.append(f"{rel}: {p.stat().st_size / 2**20:.1f} MiB (under 16)")
    if len(rel.parts) > 3 or not all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for part in rel.parts):
        problems.append(f"{rel}: too deep or an odd name")
print("== $OUT check: " + ("ok, " + str(len(files)) + " files" if not problems else "; ".join(problems)))
sys.exit(1 if problems else 0)
EOF
exit $status
