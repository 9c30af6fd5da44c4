"""How long training waits at epoch boundaries: wall-clock gaps between epochs, evaluation excluded.

    python -m bench.epoch_gap --device cpu --out bench/results/epoch-gap-cpu.json
    python -m bench.epoch_gap --device cuda --out $OUT/epoch-gap-cuda.json     # WRN-16-8, batch 512, CIFAR-10

The CPU case is WRN-16-8 (an ~88 MB checkpoint) with two steps of batch 16 per epoch for 8 epochs, so
the boundaries weigh as much as they can. The timestamps are taken here, outside the engine's own
accounting: the end of an epoch's last step is the progress hook at that step's logging point (its
host sync has waited for the device), the start of the next epoch's first step is the moment the
loop calls `train_step`, and the evaluation is timed around `evaluate`. Then

    boundary_idle_fraction = sum over boundaries of (next first step - last step - evaluation) / wall time

and `checkpoint_blocking_s` per epoch is the time the loop's thread spent on a checkpoint: gathering the
state, copying it and handing it to the writer (or waiting for the previous write). The same run is measured with the checkpoint written synchronously, as
the engine did before, for a ratio in the same process ("baseline_sync_checkpoint"). Target: <= 0.05
on the CPU case.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import add_threads_argument, environment, prepare_image_folder, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.engine import loop
from wrn_core.engine.checkpoint import CheckpointWriter
from wrn_core.engine.devices import resolve_device
from wrn_core.presets import FAST_GPU, PRESETS
from wrn_core.store import RunStore
from wrn_core.store.records import TRAINING, Progress

TARGET = 0.05


def cpu_config(epochs: int, steps: int, batch_size: int) -> TrainConfig:
    """WRN-16-8 on `steps` batches of synthetic images an epoch: bookkeeping as large as training allows."""
    return TrainConfig(
        model=WRNConfig(depth=16, widen_factor=8), dataset="synthetic", synthetic_train=steps * batch_size,
        synthetic_test=max(10, batch_size), epochs=epochs, batch_size=batch_size, eval_batch_size=batch_size,
        schedule="onecycle", lr=0.05, device="cpu", log_every=1,
    )


def cuda_config(epochs: int, data_dir: str | None) -> TrainConfig:
    """The Fast GPU recipe (WRN-16-8, batch 512, bf16, channels_last, compiled) on the CIFAR-10 JPEGs."""
    root = prepare_image_folder(data_dir)
    return PRESETS[FAST_GPU].replace(dataset="folder", data_dir=str(root), device="cuda", epochs=epochs, log_every=10)


class Timeline:
    """Wall-clock marks of one run, recorded by wrappers around the loop's pieces."""

    def __init__(self) -> None:
        self.step_starts: list[float] = []  # each train_step call, in order
        self.logged: dict[int, float] = {}  # global step -> when its logging point reported progress
        self.evaluations: list[tuple[float, float]] = []
        self.checkpoint_blocking: list[float] = []  # per epoch: seconds the loop spent in the writer's calls
        self.steps_per_epoch = 0

    def hook(self, progress: Progress) -> None:
        if progress.phase == TRAINING and progress.step and progress.train_loss is not None:
            self.logged[progress.step] = time.perf_counter()
            self.steps_per_epoch = progress.steps_per_epoch


def _instrument(timeline: Timeline, synchronous_checkpoint: bool) -> dict[str, Any]:
    """Wrap train_step, evaluate and the checkpoint writer; returns what to put back."""
    saved = {"train_step": loop.train_step, "evaluate": loop.evaluation_pass, "submit": CheckpointWriter.submit,
             "checkpoint": loop._checkpoint}
    real_step, real_eval, real_submit, real_checkpoint = saved["train_step"], saved["evaluate"], saved["submit"], saved["checkpoint"]

    def train_step(*args: Any, **kwargs: Any):
        timeline.step_starts.append(time.perf_counter())
        return real_step(*args, **kwargs)

    def evaluate(*args: Any, **kwargs: Any):
        start = time.perf_counter()
        result = real_eval(*args, **kwargs)
        timeline.evaluations.append((start, time.perf_counter()))
        return result

    def submit(self: CheckpointWriter, state: dict[str, Any]) -> float:
        if not synchronous_checkpoint:
            return real_submit(self, state)
        start = time.perf_counter()
        self.wait()
        self.run.save_checkpoint(state)  # the engine before the writer thread: the loop waits for the disk
        return time.perf_counter() - start

    def checkpoint(*args: Any, **kwargs: Any) -> float:
        # All the loop's thread spends on a checkpoint: gathering the state, the snapshot, the hand-off.
        start = time.perf_counter()
        waited = real_checkpoint(*args, **kwargs)
        timeline.checkpoint_blocking.append(time.perf_counter() - start)
        return waited

    loop.train_step, loop.evaluation_pass, CheckpointWriter.submit, loop._checkpoint = train_step, evaluate, submit, checkpoint
    return saved


def _restore(saved: dict[str, Any]) -> None:
    loop.train_step, loop.evaluation_pass = saved["train_step"], saved["evaluate"]
    CheckpointWriter.submit, loop._checkpoint = saved["submit"], saved["checkpoint"]


def measure(config: TrainConfig, runs_dir: Path, name: str, synchronous_checkpoint: bool = False) -> dict[str, Any]:
    """Train once with the timeline wrappers; the boundary gaps and idle fraction."""
    timeline = Timeline()
    run = RunStore(runs_dir).create(config, name)
    saved = _instrument(timeline, synchronous_checkpoint)
    try:
        status = loop.train_run(run, on_progress=timeline.hook)
    finally:
        _restore(saved)
    spe = timeline.steps_per_epoch
    gaps, raw = [], []
    for epoch in range(1, config.epochs):
        last_end = timeline.logged.get(epoch * spe)
        next_start = timeline.step_starts[epoch * spe] if len(timeline.step_starts) > epoch * spe else None
        if last_end is None or next_start is None:
            continue
        evaluation = sum(end - start for start, end in timeline.evaluations if last_end <= start <= next_start)
        raw.append(next_start - last_end)
        gaps.append(max(0.0, next_start - last_end - evaluation))
    wall = max(timeline.logged.values()) - timeline.step_starts[0] if timeline.logged and timeline.step_starts else None
    epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
    return {
        "status": status,
        "wall_s": wall,
        "boundary_idle_fraction": sum(gaps) / wall if wall else None,
        "boundary_gaps_s": gaps,
        "boundary_gaps_with_evaluation_s": raw,
        "evaluation_s": [end - start for start, end in timeline.evaluations],
        "checkpoint_blocking_s": timeline.checkpoint_blocking,
        "checkpoint_bytes": run.checkpoint_path.stat().st_size if run.checkpoint_path.exists() else None,
        "engine_boundary_s": [r.get("boundary_s") for r in epochs],
        "engine_checkpoint_wait_s": [r.get("checkpoint_wait_s") for r in epochs],
        "steps_per_epoch": spe,
        "epochs": len(epochs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.epoch_gap", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", required=True, help="JSON file to write (rewritten after each measurement)")
    parser.add_argument("--epochs", type=int, default=None, help="default 8 (cpu) or 4 (cuda)")
    parser.add_argument("--steps", type=int, default=2, help="cpu: training steps per epoch")
    parser.add_argument("--batch-size", type=int, default=16, help="cpu: images per step")
    parser.add_argument("--data-dir", help="cuda: CIFAR-10 JPEG folder or tarball (default: .data/ or ../shared/data/)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the synchronous-checkpoint baseline")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        config = cuda_config(args.epochs or 4, args.data_dir)
    else:
        config = cpu_config(args.epochs or 8, args.steps, args.batch_size)
    result: dict[str, Any] = {
        "benchmark": "epoch_gap", "command": " ".join(["python -m bench.epoch_gap", *(argv or sys.argv[1:])]),
        "environment": environment(device), "model": config.model.name, "batch_size": config.batch_size,
        "target_boundary_idle_fraction": TARGET if device.type == "cpu" else None,
    }
    with tempfile.TemporaryDirectory(prefix="wrn-epoch-gap-") as runs:
        result["engine"] = measure(config, Path(runs), "background")
        result["boundary_idle_fraction"] = result["engine"]["boundary_idle_fraction"]
        result["checkpoint_blocking_s"] = result["engine"]["checkpoint_blocking_s"]
        result["epochs"] = result["engine"]["epochs"]
        write_json(args.out, result)
        if not args.no_baseline:
            result["baseline_sync_checkpoint"] = measure(config, Path(runs), "synchronous", synchronous_checkpoint=True)
            base = result["baseline_sync_checkpoint"]["boundary_idle_fraction"]
            ours = result["boundary_idle_fraction"]
            result["idle_ratio_vs_sync"] = ours / base if base and ours is not None else None
            write_json(args.out, result)
    fraction = result["boundary_idle_fraction"]
    base = result.get("baseline_sync_checkpoint", {}).get("boundary_idle_fraction")
    print(f"{config.model.name} on {device.type}: boundary idle fraction {fraction:.3f}"
          + (f" (synchronous checkpoint: {base:.3f})" if base is not None else "")
          + f"; checkpoint blocking per epoch {', '.join(f'{s:.3f}' for s in result['checkpoint_blocking_s'])} s")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
