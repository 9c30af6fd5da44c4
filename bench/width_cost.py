"""The cost of measuring width use during training: epoch time with --width-every 1 against 0, in one process.

    python -m bench.width_cost [--depth 16] [--widen-factor 4] [--data-dir DIR] [--subset-train 1024]
                               [--subset-test 500] [--rounds 3] [--threads 1] [--device cpu] [--out FILE.json]

The engine's own pieces on a real image folder (CIFAR-10 JPEGs by default): build_session builds the run's model,
optimizer and loaders as `train` does; each round trains one epoch (train_step over the train loader) and then runs
the epoch's evaluation pass twice, once with the width hooks (engine.step.evaluation_pass, measure_width=True) and
once without, in an order that alternates round by round, so both see the same weights and the same machine load.
Each round's evaluations are the medians of --eval-repeats such pairs. An epoch with width use costs train +
evaluation-with, without it train + evaluation-without; the figure is their ratio per round and its median. Only the evaluation differs between the two: --width-every adds nothing to training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import add_threads_argument, device_name, environment, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.engine.build import build_session
from wrn_core.engine.distributed import Dist
from wrn_core.engine.reporter import Reporter
from wrn_core.engine.step import evaluation_pass, train_step
from wrn_core.store import RunStore

DEFAULT_DATA = Path("/work/refgrid/data")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, work) -> float:
    _sync(device)
    start = time.perf_counter()
    work()
    _sync(device)
    return time.perf_counter() - start


def measure(config: TrainConfig, rounds: int, eval_repeats: int = 3) -> dict[str, Any]:
    """Per round: the train epoch's seconds and the evaluation's with and without width use, each the median of
    eval_repeats passes taken in pairs whose order alternates (a shared machine's load swings within seconds)."""
    with tempfile.TemporaryDirectory() as root:
        run = RunStore(root).create(config, "width-cost")
        session, _ = build_session(run, resume=False, reporter=Reporter(run, None), dist=Dist())
        device = session.device

        def train_epoch(epoch: int) -> None:
            session.model.train()
            for images, labels in session.train_loader.epoch(epoch):
                train_step(session.forward, session.optimizer, images, labels, device)
                session.scheduler.step()

        def evaluate(width: bool) -> None:
            evaluation_pass(session.evaluator, session.test_loader, device, session.dist, measure_width=width)

        evaluate(True), evaluate(False)  # warm-up: allocator, oneDNN kernels, the loaders' first pass
        rows = []
        for r in range(rounds):
            train_s = _timed(device, lambda: train_epoch(r))
            times: dict[bool, list[float]] = {True: [], False: []}
            for i in range(eval_repeats):
                for width in ((True, False) if (r + i) % 2 == 0 else (False, True)):
                    times[width].append(_timed(device, lambda width=width: evaluate(width)))
            evals = {width: statistics.median(values) for width, values in times.items()}
            rows.append({"round": r + 1, "train_s": train_s, "eval_with_s": evals[True], "eval_without_s": evals[False],
                         "epoch_ratio": (train_s + evals[True]) / (train_s + evals[False]),
                         "eval_ratio": evals[True] / evals[False]})
        return {"device": device_name(device), "environment": environment(device), "rounds": rows,
                "epoch_ratio_median": statistics.median(r["epoch_ratio"] for r in rows),
                "eval_ratio_median": statistics.median(r["eval_ratio"] for r in rows),
                "train_images": len(session.train_loader.dataset) if hasattr(session.train_loader, "dataset") else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--widen-factor", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--subset-train", type=int, default=1024)
    parser.add_argument("--subset-test", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--eval-repeats", type=int, default=3, help="evaluation pairs per round (medians)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="also write the figures as JSON")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(model=WRNConfig(depth=args.depth, widen_factor=args.widen_factor), dataset="folder",
                         data_dir=str(args.data_dir), subset_train=args.subset_train, subset_test=args.subset_test,
                         batch_size=args.batch_size, device=args.device, epochs=args.rounds)
    result = measure(config, args.rounds, args.eval_repeats)
    print(f"WRN-{args.depth}-{args.widen_factor} on {result['device']}, {args.subset_train} train / "
          f"{args.subset_test} test images, batch {args.batch_size}, threads {torch.get_num_threads()}")
    print("round  train s  eval with s  eval without s  epoch with/without  eval with/without")
    for r in result["rounds"]:
        print(f"{r['round']:>5}  {r['train_s']:7.2f}  {r['eval_with_s']:11.2f}  {r['eval_without_s']:14.2f}  "
              f"{r['epoch_ratio']:18.4f}  {r['eval_ratio']:17.4f}")
    print(f"median: epoch {result['epoch_ratio_median']:.4f} (cost {100 * (result['epoch_ratio_median'] - 1):+.2f}% "
          f"of the epoch), evaluation {result['eval_ratio_median']:.4f}")
    if args.out:
        write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
