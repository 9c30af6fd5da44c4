"""Time to a target test accuracy: WRN-16-8 on the CIFAR-10 JPEG folder with the FAST_GPU preset, via train_run.

    python -m bench.time_to_accuracy [--target 0.94] [--epochs E] [--data-dir DIR] [--out FILE]
                                     [--device cuda] [--quick]

The preset (wrn_core/presets.py, FAST_GPU) is used as is, except dataset="folder" and data_dir
(the unpacked JPEG folder, train 50,000 / test 10,000), the device, and --epochs if given.
Reported:
- seconds_to_target: the training `time` of the first epoch record with test_acc >= target
  (training seconds since the run started: every step, the compile warm-up inside the first step,
  and the per-epoch test evaluations; not data loading or checkpoint writes);
- wall_seconds_to_target: wall-clock from calling train_run to the end of that epoch (data loading,
  compile, evaluation and checkpoint writes included);
- final and best test accuracy, the compile warm-up, and (epoch, time, wall_s, test_acc) per epoch.
--quick is a CPU dry run of the same code path at tiny sizes (WRN-10-1, 512/256 images, 2 epochs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import RESULTS_DIR, add_threads_argument, count_macs, environment, prepare_image_folder, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.model import build_model
from wrn_core.presets import FAST_GPU, PRESETS
from wrn_core.store import RunStore
from wrn_core.engine.devices import resolve_device
from wrn_core.engine.loop import train_run
from wrn_core.store.records import Progress


def tta_config(root: Path, device: str, epochs: int | None, quick: bool) -> TrainConfig:
    config = PRESETS[FAST_GPU].replace(dataset="folder", data_dir=str(root), device=device)
    if quick:
        config = config.replace(
            model=WRNConfig(depth=10, widen_factor=1, dropout=0.0), subset_train=512, subset_test=256,
            epochs=2, batch_size=64, eval_batch_size=256, log_every=2, compile=False, lr=0.1,
        )
    if epochs is not None:
        config = config.replace(epochs=epochs)
    return config


def run_tta(config: TrainConfig, target: float, runs_dir: Path, partial_out: Path | None = None) -> dict[str, Any]:
    """Train the config once; returns the time-to-target figures and the per-epoch curve.

    With partial_out, the curve so far is written there after every epoch (status "running"), so a
    run cut off by a timeout still leaves its figures.
    """
    run = RunStore(runs_dir).create(config, "time-to-accuracy")
    epoch_wall: dict[int, float] = {}  # completed epoch -> wall seconds since train_run was called
    first_progress: list[float] = []

    def on_progress(p: Progress) -> None:
        now = time.perf_counter() - start
        if not first_progress:
            first_progress.append(now)  # data loaded, model built; training (or compiling) starts
        if p.epoch > 0 and p.epoch not in epoch_wall:
            epoch_wall[p.epoch] = now
            if partial_out is not None:
                write_json(partial_out, {"kind": "time_to_accuracy", "partial": True,
                                         **_summarize(run.read_metrics(), epoch_wall, target, "running", None, now)})

    start = time.perf_counter()
    status = train_run(run, on_progress=on_progress)
    total_wall = time.perf_counter() - start
    run_status = run.read_status()
    result = _summarize(run.read_metrics(), epoch_wall, target, status, run_status.get("message"), total_wall)
    result["train_seconds"] = run_status.get("train_seconds")
    result["load_seconds"] = first_progress[0] if first_progress else None
    return result


def _summarize(records: list[dict[str, Any]], epoch_wall: dict[int, float], target: float, status: str,
               message: str | None, wall: float) -> dict[str, Any]:
    epochs = [
        {"epoch": r["epoch"], "time": r["time"], "wall_s": epoch_wall.get(r["epoch"]), "test_acc": r["test_acc"],
         "train_loss": r["train_loss"], "images_per_s": r.get("images_per_s"), "peak_mem_mb": r.get("peak_mem_mb")}
        for r in records if r.get("kind") == "epoch"
    ]
    hit = next((e for e in epochs if e["test_acc"] >= target), None)
    compile_event = next((r for r in records if r.get("kind") == "event" and r.get("event") == "compile"), None)
    return {
        "status": status,
        "message": message,
        "target": target,
        "reached": hit is not None,
        "epoch_to_target": hit["epoch"] if hit else None,
        "seconds_to_target": hit["time"] if hit else None,
        "wall_seconds_to_target": hit["wall_s"] if hit else None,
        "final_test_acc": epochs[-1]["test_acc"] if epochs else None,
        "best_test_acc": max((e["test_acc"] for e in epochs), default=None),
        "total_wall_seconds": wall,
        "compile_seconds": compile_event["seconds"] if compile_event else None,
        "epochs": epochs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.time_to_accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.94, help="test accuracy to reach, a fraction (default 0.94)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--data-dir", help="unpacked CIFAR-10 JPEG folder or the .tar.gz (default: .data/ or ../shared/data/)")
    parser.add_argument("--out", help="JSON file (default bench/results/tta-<device>[-quick].json)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default cuda (cpu with --quick)")
    parser.add_argument("--quick", action="store_true", help="CPU dry run of the same path: WRN-10-1, 512/256 images, 2 epochs")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device_name = args.device or ("cpu" if args.quick else "cuda")
    device = resolve_device(device_name)
    out = Path(args.out) if args.out else RESULTS_DIR / f"tta-{device.type}{'-quick' if args.quick else ''}.json"
    root = prepare_image_folder(args.data_dir)
    config = tta_config(root, device.type, args.epochs, args.quick)
    env = environment(device)
    print(f"time to {args.target:.1%}: {config.model.name}, {config.epochs} epochs, batch {config.batch_size}, "
          f"compile {config.compile}, on {env['device_name']}, torch {env['torch']}; images from {root}", flush=True)
    with tempfile.TemporaryDirectory(prefix="wrn-bench-tta-") as tmp:
        result = run_tta(config, args.target, Path(tmp), partial_out=out)
    result.update({
        "kind": "time_to_accuracy",
        "partial": False,
        "preset": FAST_GPU,
        "quick": args.quick,
        "model": config.model.name,
        "macs_per_image": count_macs(build_model(config.model)),
        "config": config.to_dict(),
        **env,
    })
    write_json(out, result)
    for e in result["epochs"]:
        wall = "-" if e["wall_s"] is None else f"{e['wall_s']:.1f}"
        print(f"  epoch {e['epoch']:>3}: train time {e['time']:8.1f} s, wall {wall:>7} s, test acc {e['test_acc']:.2%}")
    if result["reached"]:
        print(f"reached {args.target:.1%} at epoch {result['epoch_to_target']}: {result['seconds_to_target']:.1f} s of training, "
              f"{result['wall_seconds_to_target']:.1f} s wall-clock (data loading {result['load_seconds']:.1f} s, "
              f"compile {result['compile_seconds'] or 0:.1f} s)")
    else:
        print(f"did not reach {args.target:.1%} (status {result['status']}: {result['message']}); "
              f"final {_pct(result['final_test_acc'])}, best {_pct(result['best_test_acc'])}")
    print(f"wrote {out}")
    return 0 if result["status"] == "finished" else 1


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


if __name__ == "__main__":
    sys.exit(main())
