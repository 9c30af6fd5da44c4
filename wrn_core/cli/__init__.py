"""Command line: `python -m wrn_core summary|train|resume|ddp|sweep|sweeps|runs|evaluate|export|download|presets|devices`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Callable, Sequence

from wrn_core.cli.ddp import add_ddp, cmd_ddp
from wrn_core.cli.evaluate import add_evaluate, cmd_evaluate
from wrn_core.cli.export import add_export, cmd_export
from wrn_core.cli.flags import (
    MODEL_FLAGS,
    SWITCH_VALUES,
    TRAIN_FLAGS,
    Parser,
    UsageError,
    command_for,
    train_config_from_args,
)
from wrn_core.cli.info import (
    add_devices, add_download, add_presets, add_summary, cmd_devices, cmd_download, cmd_presets, cmd_summary,
)
from wrn_core.cli.runs import add_runs, cmd_runs
from wrn_core.cli.sweep import add_sweep, add_sweeps, cmd_sweep, cmd_sweeps
from wrn_core.cli.train import RankError, add_resume, add_train, cmd_resume, cmd_train, install_stop_handlers
from wrn_core.config import ConfigError
from wrn_core.store import DEFAULT_RUNS_DIR, RunStoreError

__all__ = [
    "COMMANDS", "DEFAULT_RUNS_DIR", "MODEL_FLAGS", "SWITCH_VALUES", "TRAIN_FLAGS", "UsageError",
    "build_parser", "command_for", "main", "train_config_from_args",
]

COMMANDS: dict[str, Callable] = {
    "summary": cmd_summary,
    "train": cmd_train,
    "resume": cmd_resume,
    "runs": cmd_runs,
    "download": cmd_download,
    "presets": cmd_presets,
    "devices": cmd_devices,
    "ddp": cmd_ddp,
    "sweep": cmd_sweep,
    "sweeps": cmd_sweeps,
    "evaluate": cmd_evaluate,
    "export": cmd_export,
}


# Each command's subparser, in the order --help lists them.
SUBPARSERS = (add_summary, add_train, add_sweep, add_sweeps, add_resume, add_runs, add_evaluate, add_export,
              add_download, add_presets, add_ddp, add_devices)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m wrn_core`; its errors raise UsageError instead of exiting."""
    parser = Parser(prog="python -m wrn_core", description="Wide Residual Networks: inspect, train, compare.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in SUBPARSERS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (argv: default sys.argv[1:]); bad input is one line on stderr. Returns the exit status."""
    from wrn_core.errors import DataError  # not wrn_core.data: listing runs need not import torch

    # Under torchrun every rank meets the same bad input; one line is enough.
    speak = os.environ.get("RANK", "0") == "0"
    previous: dict = {}
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("train", "resume") and threading.current_thread() is threading.main_thread():
            previous = install_stop_handlers()
        return COMMANDS[args.command](args)
    except RankError as exc:
        return exc.code
    except UsageError as exc:
        if speak:
            print(str(exc), file=sys.stderr)
        return 2
    except (ConfigError, RunStoreError, DataError) as exc:
        if speak:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:  # e.g. a runs directory that cannot be written: one line, not a traceback
        if speak:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():  # in-process callers (tests) get theirs back
            signal.signal(sig, handler)
