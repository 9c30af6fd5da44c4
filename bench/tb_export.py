"""Seconds to export a run of 2,000 metrics lines to TensorBoard event files (`runs export --format tensorboard`).

    python -m bench.tb_export [--lines 2000] [--repeats 5] [--cli-repeats 3] [--out FILE.json]

Target: at most 1 s for the export itself (the median of --repeats calls of
`analysis.tensorboard.export_tensorboard` in one process, each replacing the last one's event file). Reported
beside it, not part of the target: the one-off `import torch.utils.tensorboard` of the first call, and the whole
command in a new process (`python -m wrn_core runs export NAME --format tensorboard --out DIR --force`: Python,
torch's import and the export), what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STEPS_PER_EPOCH = 90  # logged steps per epoch; with one epoch and 9 system records, 100 lines an epoch
SYSTEM_PER_EPOCH = 9


def make_run(root: Path, lines: int):
    """A finished run whose metrics.jsonl has `lines` lines after the created one: per epoch 90 step records,
    9 system records (no CUDA: those fields null, as on a CPU run) and the epoch record."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore
    from wrn_core.store.records import FINISHED, epoch_record, step_record, system_record

    per_epoch = STEPS_PER_EPOCH + SYSTEM_PER_EPOCH + 1
    epochs = max(1, lines // per_epoch)
    run = RunStore(root).create(TrainConfig(model=WRNConfig(depth=16, widen_factor=4), epochs=epochs), "bench")
    records, step = [], 0
    for epoch in range(1, epochs + 1):
        for index in range(STEPS_PER_EPOCH):
            step += 1
            records.append(step_record(step, epoch - 1 + index / STEPS_PER_EPOCH, 128 * step, 0.1 * step,
                                       2.3 / (1 + 0.01 * step), min(0.99, 0.1 + 0.0005 * step), 0.1))
            if index % (STEPS_PER_EPOCH // SYSTEM_PER_EPOCH) == 0:
                records.append(system_record(step, epoch - 1 + index / STEPS_PER_EPOCH, 0.1 * step,
                                             1_800_000_000.0 + 0.1 * step, cpu_percent=180.0, rss_mb=1500.0,
                                             cuda_allocated_mb=None, cuda_reserved_mb=None, cuda_peak_mb=None,
                                             gpu_util=None, gpu_memory_util=None, gpu_memory_used_mb=None,
                                             gpu_temp_c=None, gpu_power_w=None))
        records.append(epoch_record(epoch, step, 128 * step, 0.1 * step, 1.0, 0.6, 1.1, 0.5 + 0.01 * epoch, 0.1,
                                    epoch_seconds=9.0, images_per_s=1400.0, peak_mem_mb=None))
    run.append_metrics(records[:lines])
    run.write_status(FINISHED, "done", epoch=epochs)
    return run


def cli_seconds(runs_dir: Path, out: Path, repeats: int) -> list[float]:
    """Wall seconds of the whole command in a new process, each time."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [sys.executable, "-m", "wrn_core", "runs", "export", "bench", "--format", "tensorboard",
               "--out", str(out), "--force", "--runs-dir", str(runs_dir)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tb_export")
    parser.add_argument("--lines", type=int, default=2000, help="metrics.jsonl lines besides the created one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cli-repeats", type=int, default=3, help="whole commands in new processes (0: none)")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from wrn_core.analysis.tensorboard import export_tensorboard

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(root / "runs", args.lines)
        start = time.perf_counter()
        import torch.utils.tensorboard  # noqa: F401  the first export's one-off import, timed apart

        import_s = time.perf_counter() - start
        times, result = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = export_tensorboard(run, root / "tb")
            times.append(time.perf_counter() - start)
        cli = cli_seconds(root / "runs", root / "tb-cli", args.cli_repeats) if args.cli_repeats else []
    figures = {
        "lines": args.lines,
        "scalars": result.scalars if result else 0,
        "epochs": result.epochs if result else 0,
        "export_s": statistics.median(times),
        "export_windows_s": times,
        "import_tensorboard_s": import_s,
        "cli_s": statistics.median(cli) if cli else None,
        "cli_windows_s": cli,
    }
    print(f"export {args.lines} metrics lines ({figures['scalars']} scalars, {figures['epochs']} epochs) to "
          f"TensorBoard: {figures['export_s']:.3f} s (median of {args.repeats}; target <= 1 s)")
    print(f"first call's import of torch.utils.tensorboard: {import_s:.2f} s")
    if cli:
        print(f"whole command in a new process: {figures['cli_s']:.2f} s (median of {len(cli)})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
