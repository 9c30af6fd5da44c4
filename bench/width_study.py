"""Width over training: WRN-10-k for k in {1, 2, 4, 8} (SGD) and the seed article's WRN-10-8 with Adam at its default
and a high lr, on a CIFAR-10 JPEG subset on the CPU, width use measured every epoch; then what the records show.

    python -m bench.width_study plan   [--runs-dir DIR] [--data-dir DIR] [--subset-train 2500] [--subset-test 500] [--epochs 10]
    python -m bench.width_study train  [same flags] [--only widthadam|widthk]  # resumable: run it again to continue
    python -m bench.width_study report [--runs-dir DIR] [--out FILE.json]

- `plan` prints the sweeps' pre-flight (params, memory, the time predicted from a few timed steps on this machine).
- `train` trains the cells of two sweeps one at a time, each as `python -m wrn_core train` (or `resume`): `widthk` (N = 1, k = 1, 2, 4, 8, SGD-Nesterov
  lr 0.1, weight decay 5e-4, the paper's step schedule) and `widthadam` (the seed article: WRN-10-8, Adam, constant lr,
  no weight decay, at lr 1e-3 and --high-lr). Both batch 128, no dropout, augmentation on, seed 0. Finished
  cells are skipped and stopped ones resumed (no cell trained twice). Run it niced on a shared machine: `nice -n 10 python -m bench.width_study train`.
- `report` reads every run under --runs-dir and prints, per run, the effective ÷ allocated width per group at each
  measured epoch, the dead channels, and the test accuracy; --out writes the same as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.cli_runs import subprocess_env, wrn_command

DEFAULT_RUNS = Path("/tmp/width-study/runs")
DEFAULT_DATA = Path("/work/refgrid/data")
K_VALUES = (1, 2, 4, 8)


def _common(args: argparse.Namespace) -> list[str]:
    return ["--dataset", "folder", "--data-dir", str(args.data_dir), "--subset-train", str(args.subset_train),
            "--subset-test", str(args.subset_test), "--epochs", str(args.epochs), "--batch-size", "128",
            "--device", "cpu", "--width-every", "1", "--runs-dir", str(args.runs_dir)]


def sweep_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The two sweeps' `sweep` arguments, by name."""
    k_grid = ["--blocks", "1", "--widen-factor", ",".join(map(str, K_VALUES)), "--optimizer", "sgd-nesterov",
              "--lr", "0.1", "--weight-decay", "5e-4", "--schedule", "step"]
    adam = ["--blocks", "1", "--widen-factor", "8", "--optimizer", "adam", "--lr", f"0.001,{args.high_lr!r}",
            "--weight-decay", "0", "--schedule", "constant"]
    # The seed configuration first: on a slow machine its two cells answer the question the finding is calibrated on.
    return {"widthadam": ["sweep", "widthadam", *adam, *_common(args)],
            "widthk": ["sweep", "widthk", *k_grid, *_common(args)]}


def plan(args: argparse.Namespace) -> int:
    """The pre-flight of both sweeps (nothing trained): `sweep` refuses to start... so build and probe them here."""
    from wrn_core.sweeps import preflight_frame, preflight_summary, probe

    total = 0.0
    for sweep in _sweeps(args):
        frame = preflight_frame(sweep, probe(sweep, steps=3))
        print(frame[["run", "params", "memory_mb", "predicted_s"]].to_string(index=False))
        total += preflight_summary(frame)["predicted_s"] or 0.0
    print(f"predicted: {total:,.0f} s ({total / 3600:.2f} h) of this machine's time as it is now")
    return 0


def _sweeps(args: argparse.Namespace) -> list[Any]:
    """The two sweeps as `sweep` would make them from sweep_commands (nothing written)."""
    from wrn_core.cli import build_parser
    from wrn_core.cli.sweep import _sweep_from_args

    return [_sweep_from_args(build_parser().parse_args(words)) for name, words in sweep_commands(args).items()
            if args.only in (None, name)]


def train(args: argparse.Namespace) -> int:
    """Train every cell of both sweeps in order, one process each (`train`, or `resume` for a stopped or interrupted
    cell; finished ones are skipped), so it can be run again to continue. The sweep files are saved first, so the
    Sweep page and `sweeps show` read the cells as sweeps.

    The cells are started here rather than by `python -m wrn_core sweep`: on this loaded machine its runner
    started a cell twice and stopped the sweep (see bench/RESULTS.md, "Width over training")."""
    from bench.cli_runs import train_args
    from wrn_core.store import RunStore
    from wrn_core.store.records import FINISHED
    from wrn_core.sweeps import save_sweep

    store = RunStore(args.runs_dir)
    for sweep in _sweeps(args):
        save_sweep(args.runs_dir, sweep)
        for cell in sweep.cells():
            if store.exists(cell.run):
                if store.get(cell.run).read_status().get("status") == FINISHED:
                    continue
                words = ["resume", cell.run, "--runs-dir", str(args.runs_dir), "--quiet"]
            else:
                words = train_args(cell.config, args.runs_dir, cell.run)
            print("$", " ".join(["python", "-m", "wrn_core", *words]), flush=True)
            status = subprocess.run(wrn_command(words), env=subprocess_env()).returncode
            if status != 0:
                return status
    return 0


def run_summary(run: Any) -> dict[str, Any]:
    """One run's config in short, its test accuracy per epoch, and its width per group and epoch."""
    from wrn_core.analysis.width import group_frame
    from wrn_core.store.records import EPOCH, of_kind

    config = run.read_config()
    records = run.read_metrics()
    groups = group_frame(records)
    return {
        "run": run.name, "k": config.model.widen_factor, "optimizer": config.optimizer, "lr": config.effective_lr,
        "test_acc": {r["epoch"]: r["test_acc"] for r in of_kind(records, EPOCH)},
        "groups": [{key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
                   for row in groups.to_dict("records")],
    }


def _markdown(summary: dict[str, Any]) -> str:
    """A run's width per group (effective ÷ allocated, %; dead channels) by epoch, with test accuracy."""
    rows = summary["groups"]
    epochs = sorted({row["epoch"] for row in rows})
    groups = list(dict.fromkeys(row["group"] for row in rows))
    lines = [f"{summary['run']} (k={summary['k']}, {summary['optimizer']} lr {summary['lr']:g})",
             "| epoch | test acc | " + " | ".join(f"{g} eff % (dead)" for g in groups) + " |",
             "|---|---|" + "---|" * len(groups)]
    for epoch in epochs:
        cells = []
        for group in groups:
            row = next(r for r in rows if r["epoch"] == epoch and r["group"] == group)
            cells.append(f"{100 * row['effective_fraction']:.1f} ({row['dead']}/{row['channels']})")
        acc = summary["test_acc"].get(epoch)
        lines.append(f"| {epoch} | {100 * acc:.1f} | " + " | ".join(cells) + " |" if acc is not None else "")
    return "\n".join(lines)


def report(args: argparse.Namespace) -> int:
    from wrn_core.store import RunStore

    store = RunStore(args.runs_dir)
    summaries = [run_summary(store.get(name)) for name in store.names()]
    summaries.sort(key=lambda s: (s["optimizer"] != "sgd-nesterov", s["k"], s["lr"]))
    for summary in summaries:
        print(_markdown(summary), end="\n\n")
    if args.out:
        Path(args.out).write_text(json.dumps(summaries, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("plan", "train", "report"))
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--subset-train", type=int, default=2500)
    parser.add_argument("--subset-test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--high-lr", type=float, default=0.01, help="the seed article's configuration at a high lr")
    parser.add_argument("--out", help="report: also write the summaries as JSON")
    parser.add_argument("--only", choices=("widthadam", "widthk"), help="plan/train: this sweep alone")
    args = parser.parse_args(argv)
    return {"plan": plan, "train": train, "report": report}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
