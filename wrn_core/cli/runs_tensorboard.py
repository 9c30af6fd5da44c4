"""`runs export --format tensorboard`: one run, or every run (--all), as TensorBoard event directories."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wrn_core.cli.flags import UsageError
from wrn_core.errors import one_line
from wrn_core.store import RunStore

PROG = "python -m wrn_core runs export"


def check_export_args(args: argparse.Namespace) -> None:
    """UsageError (one line) for a NAME together with --all, neither, --all without tensorboard, --width without
    csv, or --format tensorboard without --out."""
    if args.all and args.name:
        raise UsageError(f"{PROG}: give a run name or --all, not both (see --help)")
    if not args.all and not args.name:
        raise UsageError(f"{PROG}: give a run name, or --all with --format tensorboard (see --help)")
    if args.all and args.format != "tensorboard":
        raise UsageError(f"{PROG}: --all needs --format tensorboard (see --help)")
    if args.width and args.format != "csv":
        raise UsageError(f"{PROG}: --width needs --format csv (json carries the width records; tensorboard writes "
                         f"width/<layer>/effective and /dead) (see --help)")
    if args.format == "tensorboard" and not args.out:
        raise UsageError(f"{PROG}: --format tensorboard needs --out DIR, the directory for the event files (see --help)")


def _refusal(out: Path, force: bool) -> str | None:
    """Why writing into `out` is refused (a file, or a directory with something in it and no --force); None if fine."""
    if out.exists() and not out.is_dir():
        return f"{out} exists and is not a directory"
    if not force and out.is_dir() and any(out.iterdir()):
        return f"{out} exists and is not empty; pass --force to write into it"
    return None


def _written(name: str, result) -> str:
    """One line for an exported run: what it holds and where it went."""
    epochs = f"{result.epochs} epoch{'' if result.epochs == 1 else 's'}"
    return f"{name}: {result.scalars} scalars, {epochs}, {len(result.hparams)} hparams -> {result.path}"


def export_tensorboard_runs(store: RunStore, args: argparse.Namespace) -> int:
    """Export args.name (into --out) or every run (--all, into --out/<name>); 2 for bad input, which writes
    nothing; with --all, a run that cannot be exported is one line on stderr, the others go on, and the exit
    status is 1."""
    from wrn_core.analysis.tensorboard import export_tensorboard

    check_export_args(args)
    out = Path(args.out)
    run = None if args.all else store.get(args.name)  # an unknown run: RunStoreError, one line, exit 2
    refusal = _refusal(out, args.force)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    if run is not None:
        result = export_tensorboard(run, out)  # a corrupt run raises RunCorruptError before anything is written
        if result.warning:
            print(f"warning: {run.name}: {result.warning}", file=sys.stderr)
        print(_written(run.name, result))
        print(f"view with: tensorboard --logdir {out}")
        return 0
    names = store.names()
    if not names:
        print(f"no runs in {store.root}")
        return 0
    failed = 0
    for name in names:
        try:
            result = export_tensorboard(store.get(name), out / name)
        except (OSError, ValueError) as exc:  # RunCorruptError is a ValueError; an unreadable metrics.jsonl an OSError
            print(f"error: run {name!r} not exported: {one_line(exc)}", file=sys.stderr)
            failed += 1
            continue
        if result.warning:
            print(f"warning: {name}: {result.warning}", file=sys.stderr)
        print(_written(name, result))
    print(f"{len(names) - failed} of {len(names)} runs exported; view with: tensorboard --logdir {out}")
    return 1 if failed else 0
