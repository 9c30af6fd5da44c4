"""Command line: `python -m wrn_core summary|train|resume|ddp|sweep|sweeps|runs|download|presets|devices`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from wrn_core.config import (
    DATASETS,
    EXTEND_MODES,
    OPTIMIZERS,
    SCHEDULES,
    ConfigError,
    Extension,
    TrainConfig,
    WRNConfig,
)
from wrn_core.store import RunStore, RunStoreError

DEFAULT_RUNS_DIR = "runs"


class UsageError(Exception):
    """Bad input: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage block before the error; one line is kinder in scripts.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _extension(text: str) -> Extension:
    """'FROM:EPOCHS:MODE' (as `resume --epochs ... --extend-schedule` records it) -> Extension."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError(text)
        return Extension(from_epoch=int(parts[0]), epochs=int(parts[1]), mode=parts[2])
    except ValueError as exc:  # ConfigError is a ValueError
        detail = f": {exc}" if isinstance(exc, ConfigError) else ""
        raise argparse.ArgumentTypeError(
            f"expected FROM:EPOCHS:MODE (e.g. 10:5:continue; MODE {' or '.join(EXTEND_MODES)}), got {text!r}{detail}"
        ) from None


def _model_args(parser: argparse.ArgumentParser, required: bool) -> None:
    shape = parser.add_mutually_exclusive_group(required=required)
    shape.add_argument("--depth", type=int, help="total depth d = 6N+4 (10, 16, 22, 28, 40, ...)")
    shape.add_argument("--blocks", type=int, help="N, blocks per group (depth = 6N+4)")
    parser.add_argument("--widen-factor", "-k", type=int, required=required, help="k: group widths 16k, 32k, 64k")
    parser.add_argument("--dropout", type=float, default=None, help="dropout between the convs of a block (paper: 0.3)")


def _csv(kind, choices: Sequence[str] | None = None):
    """An argparse type for comma-separated values: '1,2,4' -> [1, 2, 4]."""

    def parse(text: str) -> list:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        for value in values:
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(choices)})")
        return values

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def _train_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """The flags of a training config. With lists, the sweepable ones take comma-separated values."""
    parser.add_argument("--preset", help="start from a named recipe (see `presets`); flags override it")
    if lists:
        parser.add_argument("--blocks", type=_csv(int), help="N values, e.g. 1,2 (depth = 6N+4); required unless --resume")
        parser.add_argument("--widen-factor", "-k", type=_csv(int), help="k values, e.g. 1,2,4; required unless --resume")
        parser.add_argument("--dropout", type=_csv(float), help="dropout values, e.g. 0,0.3")
        parser.add_argument("--depth", type=int, help=argparse.SUPPRESS)  # sweeps are given in N
    else:
        _model_args(parser, required=False)
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--data-dir", help="CIFAR files or an image folder with train/ and test/")
    parser.add_argument("--image-size", type=int, help="folder datasets: resize images to this square size")
    parser.add_argument("--subset-train", type=int, help="class-balanced subset of the training images")
    parser.add_argument("--subset-test", type=int, help="class-balanced subset of the test images")
    parser.add_argument("--synthetic-train", type=int, help="synthetic dataset: training images")
    parser.add_argument("--synthetic-test", type=int, help="synthetic dataset: test images")
    if lists:
        parser.add_argument("--optimizer", type=_csv(str, OPTIMIZERS), help=f"optimizers, e.g. sgd-nesterov,adam ({', '.join(OPTIMIZERS)})")
        parser.add_argument("--lr", type=_csv(float), help="peak learning rates, e.g. 0.05,0.1")
    else:
        parser.add_argument("--optimizer", choices=OPTIMIZERS)
        parser.add_argument("--lr", type=float, help="peak learning rate (default: 0.1 for SGD, 1e-3 for Adam/AdamW)")
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--schedule", choices=SCHEDULES)
    parser.add_argument("--warmup-epochs", type=float)
    parser.add_argument("--label-smoothing", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--schedule-epochs", type=int,
                        help="plan the learning-rate schedule over this many epochs (default: --epochs)")
    parser.add_argument("--extension", type=_extension, action="append",
                        help="FROM:EPOCHS:MODE, epochs added beyond the plan as `resume --epochs` records them "
                             "(repeat in order; used by the command that re-creates an extended run)")
    if lists:
        parser.add_argument("--batch-size", type=_csv(int), help="batch sizes, e.g. 64,128")
    else:
        parser.add_argument("--batch-size", type=int,
                            help="images per optimizer step; under torchrun the global batch, split evenly over the processes")
    parser.add_argument("--eval-batch-size", type=int)
    parser.add_argument("--no-augment", action="store_true", help="turn off pad-4 random crop + flip")
    parser.add_argument("--device", help="auto (default: a GPU when there is one), cpu, cuda, cuda:<index> or mps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up is logged)")
    parser.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs: SyncBatchNorm over all processes")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS if lists else None)
    parser.add_argument("--log-every", type=int, help="steps between per-step train points")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m wrn_core", description="Wide Residual Networks: inspect, train, compare.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    summary = sub.add_parser("summary", help="per-layer table: widths, shapes, parameters, multiply-accumulates")
    _model_args(summary, required=True)
    summary.add_argument("--num-classes", type=int, default=10)
    summary.add_argument("--image-size", type=int, default=32, help="input height and width in pixels (>= 8)")
    summary.add_argument("--format", choices=("table", "csv", "json"), default="table")

    train = sub.add_parser("train", help="train a WRN; Ctrl-C stops with a checkpoint")
    _train_flags(train)
    train.add_argument("--name", help="run name (letters, digits, . _ -); default: generated")
    train.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    train.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")

    sweep = sub.add_parser(
        "sweep", help="train a grid of N × k (and more) as ordinary runs, one device at a time or one per device",
        description="Every cell is a run named NAME-n<N>-k<k>[-...]-s<seed>. Ctrl-C stops the running cells and "
                    "leaves the rest pending; `sweep NAME --resume` continues. List-valued flags take commas: "
                    "--blocks 1,2 --widen-factor 1,2,4.",
    )
    sweep.add_argument("name", help="sweep name (its runs start with it)")
    sweep.add_argument("--resume", action="store_true", help="continue the saved sweep NAME (other flags are ignored)")
    sweep.add_argument("--seeds", type=_csv(int), help="seeds, e.g. 0,1,2 (default: the base seed)")
    _train_flags(sweep, lists=True)
    sweep.add_argument("--force", action="store_true", help="start even when cells are predicted not to fit in memory")
    sweep.add_argument("--no-probe", action="store_true", help="skip the timed probe steps (no predicted time)")

    sweeps = sub.add_parser("sweeps", help="list saved sweeps, or show one's cells")
    sweeps_sub = sweeps.add_subparsers(dest="sweeps_command", required=True, parser_class=_Parser)
    sweeps_list = sweeps_sub.add_parser("list")
    sweeps_list.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    sweeps_show = sweeps_sub.add_parser("show")
    sweeps_show.add_argument("name")
    sweeps_show.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sweeps_show.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)

    resume = sub.add_parser("resume", help="continue a stopped or interrupted run from its checkpoint")
    resume.add_argument("name")
    resume.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    resume.add_argument("--extend-schedule", choices=EXTEND_MODES, default="continue",
                        help="epochs beyond the planned schedule: continue at the learning rate it ended at (default), "
                             "or restart the schedule over the added epochs")
    resume.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    resume.add_argument("--quiet", action="store_true", help="no progress bar (e.g. when a job manager runs it)")
    resume.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")

    runs = sub.add_parser("runs", help="list, show, export or delete saved runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_show = runs_sub.add_parser("show")
    runs_show.add_argument("name")
    runs_show.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_export = runs_sub.add_parser("export")
    runs_export.add_argument("name")
    runs_export.add_argument("--format", choices=("csv", "json"), default="csv")
    runs_export.add_argument("--out", help="write to this file instead of stdout")
    runs_export.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_delete = runs_sub.add_parser("delete")
    runs_delete.add_argument("name")
    runs_delete.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)

    download = sub.add_parser("download", help="download CIFAR-10/100 through torchvision")
    download.add_argument("dataset", choices=("cifar10", "cifar100"))
    download.add_argument("--data-dir", default="data")

    sub.add_parser("presets", help="list the named training recipes")

    ddp = sub.add_parser(
        "ddp", help="check, then launch `train` or `resume` data-parallel with torchrun",
        description="Checks what torchrun would only find out by failing or waiting (a batch that does not divide "
                    "over the processes, a rendezvous port in use, a host that cannot be reached), then runs "
                    "`python -m torch.distributed.run ... -m wrn_core COMMAND ...`. Plain torchrun works too.",
    )
    ddp.add_argument("--nproc-per-node", type=int, required=True, help="processes per node: one per GPU (or CPU gloo processes)")
    ddp.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1: --standalone)")
    ddp.add_argument("--rdzv-endpoint", help="HOST:PORT of the rendezvous on the first node (needed with --nnodes > 1)")
    ddp.add_argument("--rdzv-id", default="wrn-lab", help="job id shared by all nodes")
    ddp.add_argument("--join-timeout", type=float, default=60.0, help="seconds to wait for all nodes to join (torchrun's default is 600)")
    ddp.add_argument("--check-only", action="store_true", help="run the checks and print the torchrun command, without running it")
    ddp.add_argument("inner", nargs=argparse.REMAINDER, metavar="COMMAND",
                     help="train ... or resume NAME ... (the same flags as without ddp)")

    devices = sub.add_parser("devices", help="list the devices this machine can train on")
    devices.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _model_config(args: argparse.Namespace, base: WRNConfig | None = None, num_classes: int | None = None) -> WRNConfig:
    base = base or WRNConfig()
    fields: dict[str, Any] = {"depth": base.depth, "widen_factor": base.widen_factor, "dropout": base.dropout}
    if num_classes is not None:
        fields["num_classes"] = num_classes
    if args.blocks is not None:
        if args.blocks < 1:
            raise ConfigError(f"blocks per group N must be >= 1, got {args.blocks}")
        return WRNConfig.from_blocks(args.blocks, args.widen_factor if args.widen_factor is not None else base.widen_factor,
                                     dropout=args.dropout if args.dropout is not None else base.dropout,
                                     **({"num_classes": num_classes} if num_classes is not None else {}))
    if args.depth is not None:
        fields["depth"] = args.depth
    if args.widen_factor is not None:
        fields["widen_factor"] = args.widen_factor
    if args.dropout is not None:
        fields["dropout"] = args.dropout
    return WRNConfig(**fields)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig a `train` command line asks for: a preset (or the defaults) plus the flags given."""
    from wrn_core.presets import PRESET_KEYS, PRESETS

    if args.preset:
        if args.preset not in PRESET_KEYS:
            raise ConfigError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESET_KEYS)}")
        base = PRESETS[PRESET_KEYS[args.preset]]
    else:
        base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1))
    changes: dict[str, Any] = {"model": _model_config(args, base.model)}
    for flag in ("dataset", "data_dir", "image_size", "subset_train", "subset_test", "synthetic_train",
                 "synthetic_test", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs",
                 "label_smoothing", "epochs", "batch_size", "eval_batch_size", "device", "seed", "log_every"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value
    if args.no_augment:
        changes["augment"] = False
    if args.compile:
        changes["compile"] = True
    if args.sync_bn:
        changes["sync_bn"] = True
    if args.schedule_epochs is not None:
        changes["schedule_epochs"] = args.schedule_epochs
    if args.extension:
        changes["extensions"] = tuple(args.extension)
    # A changed optimizer without an explicit lr/decay takes that optimizer's defaults.
    if "optimizer" in changes and changes["optimizer"] != base.optimizer:
        changes.setdefault("lr", None)
        changes.setdefault("weight_decay", None)
    return base.replace(**changes)


# How each TrainConfig field is given on the `train` command line, for command_for. None marks a
# field the engine sets from the dataset when a run starts (classes, input channels), so it
# needs no flag. tests/test_cli.py fails when a config field is missing from these maps.
MODEL_FLAGS: dict[str, str | None] = {
    "depth": "--depth",
    "widen_factor": "--widen-factor",
    "dropout": "--dropout",
    "num_classes": None,
    "in_channels": None,
}
TRAIN_FLAGS: dict[str, str | None] = {
    "model": None,  # the MODEL_FLAGS above
    "dataset": "--dataset",
    "data_dir": "--data-dir",
    "subset_train": "--subset-train",
    "subset_test": "--subset-test",
    "image_size": "--image-size",
    "synthetic_train": "--synthetic-train",
    "synthetic_test": "--synthetic-test",
    "optimizer": "--optimizer",
    "lr": "--lr",
    "momentum": "--momentum",
    "weight_decay": "--weight-decay",
    "schedule": "--schedule",
    "warmup_epochs": "--warmup-epochs",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "label_smoothing": "--label-smoothing",
    "augment": "--no-augment",
    "device": "--device",
    "seed": "--seed",
    "log_every": "--log-every",
    "compile": "--compile",
    "eval_batch_size": "--eval-batch-size",
    "sync_bn": "--sync-bn",
    "world_size": None,  # the launcher's: torchrun --nproc-per-node (see command_for)
    "schedule_epochs": "--schedule-epochs",
    "extensions": "--extension",  # one FROM:EPOCHS:MODE per Extension
}
# Boolean fields are switches: the flag is written only when the field has this value.
SWITCH_VALUES = {"augment": False, "compile": True, "sync_bn": True}


def _flag_value(value: Any) -> str:
    # repr keeps every digit of a float, so argparse's float() reads back the same number.
    return repr(value) if isinstance(value, float) else str(value)


def command_for(config: TrainConfig, name: str | None = None, runs_dir: str | None = None) -> str:
    """The `python -m wrn_core train ...` line that re-creates `config`, field for field.

    Every field is written out (not only those that differ from today's defaults, which may
    change); a None field is left out, which means None. train_config_from_args(parse(command))
    equals `config` except num_classes and in_channels, which the engine takes from the data, and
    world_size, which torchrun sets.
    """
    words = ["python", "-m", "wrn_core", "train"]
    if config.world_size > 1:  # data-parallel: torchrun sets the world size
        words = ["torchrun", "--standalone", f"--nproc-per-node={config.world_size}", "-m", "wrn_core", "train"]
    pairs = [(MODEL_FLAGS[f.name], getattr(config.model, f.name), f.name) for f in dataclasses.fields(config.model)]
    pairs += [(TRAIN_FLAGS[f.name], getattr(config, f.name), f.name) for f in dataclasses.fields(config) if f.name != "model"]
    for flag, value, field_name in pairs:
        if flag is None or value is None:
            continue
        if field_name in SWITCH_VALUES:
            if value == SWITCH_VALUES[field_name]:
                words.append(flag)
            continue
        if field_name == "extensions":
            for extension in value:
                words += [flag, shlex.quote(f"{extension.from_epoch}:{extension.epochs}:{extension.mode}")]
            continue
        words += [flag, shlex.quote(_flag_value(value))]
    if runs_dir is not None:
        words += ["--runs-dir", shlex.quote(str(runs_dir))]
    if name is not None:
        words += ["--name", shlex.quote(name)]
    return " ".join(words)


def cmd_summary(args: argparse.Namespace) -> int:
    from wrn_core.model import summary

    config = _model_config(args, num_classes=args.num_classes)
    if args.image_size < 8:
        raise ConfigError(f"image size must be >= 8 pixels, got {args.image_size}")
    if args.format == "json":
        print(json.dumps(summary.summary_dict(config, image_size=args.image_size), indent=2))
        return 0
    table = summary.layer_table(config, image_size=args.image_size)
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
        return 0
    print(summary.format_table(table, summary.totals(config, image_size=args.image_size, table=table)))
    return 0


class _NoBar:
    """What the CLI uses instead of a tqdm bar when tqdm is not installed."""

    def write(self, text: str, file=None) -> None:
        print(text, file=file or sys.stderr)

    def close(self) -> None:
        pass


# Set by Ctrl-C (SIGINT) or SIGTERM from the moment a train/resume command starts, so a stop asked
# for while the process is still importing torch or loading data stops it cleanly at its first batch.
_STOP = threading.Event()


def _install_stop_handlers() -> dict:
    """Route SIGINT and SIGTERM to _STOP; returns the handlers they replace."""
    _STOP.clear()

    def on_stop_signal(signum, frame) -> None:  # noqa: ARG001
        _STOP.set()
        # A second Ctrl-C ends the process at once; the run is then found interrupted.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


def _run_with_progress(run, resume: bool, quiet: bool = False, dist=None) -> int:
    """Train in this thread with a tqdm bar (none when quiet).

    Ctrl-C (SIGINT) or SIGTERM stops cooperatively with a checkpoint; a second Ctrl-C ends the
    process at once and the run is then found interrupted.
    """
    from wrn_core.engine.loop import train_run

    try:
        from tqdm import tqdm
    except ImportError:  # a bare GPU machine: train without a bar rather than not at all
        quiet = True
        tqdm = None
    stop_event = _STOP
    bar = tqdm(total=0, unit="step", dynamic_ncols=True, file=sys.stderr, desc=run.name, disable=quiet) if tqdm else _NoBar()

    def on_progress(progress) -> None:
        if progress.notice:
            bar.write(f"note: {progress.notice}", file=sys.stderr)
        if quiet:
            return
        if bar.total != progress.total_steps:
            bar.total = progress.total_steps
        bar.n = progress.step
        postfix = {"epoch": f"{progress.epoch}/{progress.epochs}", "phase": progress.phase}
        if progress.train_loss is not None:
            postfix["loss"] = f"{progress.train_loss:.3f}"
            postfix["acc"] = f"{progress.train_acc:.1%}"
        if progress.test_acc is not None:
            postfix["test_acc"] = f"{progress.test_acc:.1%}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    try:
        final = train_run(run, stop_event=stop_event, on_progress=on_progress, resume=resume, dist=dist)
    finally:
        bar.close()
        if dist is not None:
            from wrn_core.engine import distributed

            distributed.close(dist)
    if dist is not None and not dist.is_main:
        return 0 if final in ("finished", "stopped") else 1
    status = run.read_status()
    print(f"{final}: {status.get('message', '')}", file=sys.stderr)
    print(run.path)
    if final in ("finished", "stopped"):
        return 0
    if status.get("error_kind") == "input":
        return 2
    return 1


class _RankError(Exception):
    """Rank 0 failed before training; the other ranks leave with its exit code and print nothing."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _on_rank0(dist, action):
    """Run action() on rank 0 only and share its outcome: its value, or its error on every rank.

    Rank 0 raises the error itself (the CLI prints its one line); the others raise _RankError.
    """
    from wrn_core.engine import distributed

    if not dist.enabled:
        return action()
    outcome: tuple[str, object] = ("ok", None)
    error: BaseException | None = None
    if dist.is_main:
        try:
            outcome = ("ok", action())
        except (ConfigError, RunStoreError, UsageError, OSError) as exc:
            error, outcome = exc, ("error", 1 if isinstance(exc, OSError) else 2)
        except Exception as exc:  # noqa: BLE001 - e.g. DataError; never leave the other ranks waiting
            from wrn_core.errors import DataError

            error, outcome = exc, ("error", 2 if isinstance(exc, DataError) else 1)
    outcome = distributed.broadcast(outcome, dist)
    if error is not None:
        raise error
    if outcome[0] == "error":
        raise _RankError(int(outcome[1]))  # type: ignore[arg-type]
    return outcome[1]


def cmd_train(args: argparse.Namespace) -> int:
    from wrn_core.engine import distributed
    from wrn_core.engine.resume import preflight

    dist = distributed.from_env()
    config = train_config_from_args(args).replace(world_size=dist.world_size)
    preflight(config)
    _memory_refusal(config, args.force)
    store = RunStore(args.runs_dir)
    distributed.init(dist, distributed.device_for(config.device, dist).type)
    created = []

    def create() -> str:
        # Created locked (by rank 0): from its first file on, the run is this process's to train.
        created.append(store.create(config, args.name, hold="training"))
        return created[0].name

    name = _on_rank0(dist, create)
    run = created[0] if created else store.get(name)
    return _run_with_progress(run, resume=False, quiet=args.quiet or not dist.is_main, dist=dist)


def cmd_resume(args: argparse.Namespace) -> int:
    from wrn_core.engine import distributed
    from wrn_core.engine.resume import prepare_resume

    dist = distributed.from_env()
    store = RunStore(args.runs_dir)
    run = store.get(args.name)
    distributed.init(dist, distributed.device_for(run.read_config().device, dist).type)

    def prepare():
        run.acquire("training")  # a second trainer stops here: "run X is being trained by pid P on HOST"
        try:
            plan = prepare_resume(run, args.epochs, args.extend_schedule, world_size=dist.world_size)
            _memory_refusal(plan.config.replace(world_size=dist.world_size), args.force)
            return plan
        except BaseException:
            run.release()
            raise

    plan = _on_rank0(dist, prepare)
    if dist.is_main and plan.warning:
        print(f"warning: {plan.warning}", file=sys.stderr)
    return _run_with_progress(run, resume=True, quiet=args.quiet or not dist.is_main, dist=dist)


def cmd_runs(args: argparse.Namespace) -> int:
    from wrn_core import analysis

    store = RunStore(args.runs_dir)
    store.reconcile()
    if args.runs_command == "list":
        frame = analysis.runs_frame(store.summaries())
        if frame.empty:
            print(f"no runs in {store.root}")
        else:
            print(frame.to_string(index=False))
        return 0
    run = store.get(args.name)
    if args.runs_command == "show":
        status = run.read_status()
        log = run.read_metrics_log()
        problems = []
        try:
            config: dict[str, Any] | None = run.read_config_dict()
        except RunStoreError as exc:
            config, problems = None, [str(exc)]
        findings = analysis.diagnose(log.records, config)
        print(json.dumps({"name": run.name, "path": str(run.path), "status": status, "config": config,
                          "command": _rerun_command(run, args.runs_dir) if config is not None else None,
                          "findings": [dataclasses.asdict(f) for f in findings]}, indent=2))
        _, epochs = analysis.metrics_frames(log.records)
        if not epochs.empty:
            print(epochs.convert_dtypes().to_string(index=False))  # integral epochs/steps print as ints
        print(_findings_text(findings))
        if log.warning:
            print(f"warning: {log.warning}", file=sys.stderr)
        if problems:
            print(f"error: {problems[0]}", file=sys.stderr)
            return 2
        return 0
    if args.runs_command == "export":
        log = run.read_metrics_log()
        if log.warning:
            print(f"warning: {log.warning}", file=sys.stderr)
        records = log.records
        text = analysis.export_csv(records) if args.format == "csv" else analysis.export_json(records)
        if args.out:
            Path(args.out).write_text(text)
            print(args.out)
        else:
            print(text, end="" if text.endswith("\n") else "\n")
        return 0
    if args.runs_command == "delete":
        store.delete(args.name)
        print(f"deleted {args.name}")
        return 0
    raise UsageError(f"unknown runs command {args.runs_command!r}")


def _rerun_command(run, runs_dir: str) -> str | None:
    """command_for a stored run (a new run, generated name, same runs directory); None if unreadable."""
    try:
        config = run.read_config()
    except (OSError, ValueError):  # ConfigError and RunCorruptError are ValueErrors
        return None
    return command_for(config, runs_dir=None if runs_dir == DEFAULT_RUNS_DIR else runs_dir)


def _findings_text(findings: Sequence[Any]) -> str:
    """Training-health findings as lines for a terminal."""
    if not findings:
        return "health: no problems found"
    lines = ["health:"]
    for finding in findings:
        lines.append(f"  {finding.severity}: {finding.message}")
        lines.append(f"    advice: {finding.advice}")
    return "\n".join(lines)


def cmd_download(args: argparse.Namespace) -> int:
    from wrn_core.data import download_cifar

    path = download_cifar(args.dataset, args.data_dir)
    print(path)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:  # noqa: ARG001
    from wrn_core.presets import PRESET_KEYS, PRESETS

    for key, title in PRESET_KEYS.items():
        config = PRESETS[title]
        print(f"{key:14s} {title}: {config.model.name}, {config.dataset}, {config.optimizer}, "
              f"{config.schedule}, {config.epochs} epochs, batch {config.batch_size}")
    return 0


def _rendezvous_check(endpoint: str, timeout_s: float) -> None:
    """ConfigError (one line) when the rendezvous port is taken here, or cannot be reached in time from here."""
    import socket
    import time

    host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError(f"--rdzv-endpoint must be HOST:PORT, got {endpoint!r}")
    port = int(port_text)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise ConfigError(f"cannot resolve the rendezvous host {host!r} ({exc})") from None
    local = {"127.0.0.1", "::1"}
    try:
        local |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    if addresses & local:
        # This node hosts the rendezvous: torchrun must be able to listen on the port.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("" if host not in ("127.0.0.1", "localhost") else "127.0.0.1", port))
            except OSError:
                raise ConfigError(f"port {port} on {host} is in use; choose a free port in --rdzv-endpoint") from None
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"cannot reach the rendezvous at {host}:{port} within {timeout_s:.0f} s; start the first node "
                    f"(the one at {host}) and check that the port is open"
                ) from None
            time.sleep(1.0)


def cmd_ddp(args: argparse.Namespace) -> int:
    """Check the launch, then replace this process with torchrun running `-m wrn_core COMMAND`."""
    from wrn_core.engine.resume import preflight

    command = [c for c in args.inner if c != "--"]
    if not command or command[0] not in ("train", "resume"):
        raise UsageError("python -m wrn_core ddp: give the command to run, e.g. `ddp --nproc-per-node 2 train ...` (see --help)")
    if args.nproc_per_node < 1 or args.nnodes < 1:
        raise UsageError("python -m wrn_core ddp: --nproc-per-node and --nnodes must be >= 1")
    world_size = args.nproc_per_node * args.nnodes
    inner = build_parser().parse_args(command)
    if inner.command == "train":
        config = train_config_from_args(inner)
    else:
        config = RunStore(inner.runs_dir).get(inner.name).read_config()
    preflight(config.replace(world_size=world_size))
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.nproc_per_node}"]
    if args.nnodes == 1 and not args.rdzv_endpoint:
        launcher.append("--standalone")
    else:
        if not args.rdzv_endpoint:
            raise UsageError("python -m wrn_core ddp: --nnodes > 1 needs --rdzv-endpoint HOST:PORT (the first node)")
        _rendezvous_check(args.rdzv_endpoint, args.join_timeout)
        launcher += [f"--nnodes={args.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={args.rdzv_endpoint}",
                     f"--rdzv-id={args.rdzv_id}", f"--rdzv-conf=join_timeout={int(args.join_timeout)}"]
    launcher += ["-m", "wrn_core", *command]
    if args.check_only:
        print(" ".join(launcher))
        return 0
    sys.stdout.flush()
    os.execv(sys.executable, launcher)
    return 0  # not reached


def _memory_refusal(config: TrainConfig, force: bool) -> None:
    """ConfigError when the run is predicted not to fit its device's free memory (unless forced)."""
    from wrn_core.model.flops import input_size
    from wrn_core.engine.devices import check_memory

    check = check_memory(config, input_size(config) or (32, 32))
    if not check.fits and not force:
        raise ConfigError(f"{check.message()}: it would not fit; use a smaller batch or model, another device, or --force")


def _process_age() -> float | None:
    """Seconds since this process started: the interpreter's start and the imports so far (None without psutil)."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil missing or the process table unreadable: measure another way
        return None


def _sweep_from_args(args: argparse.Namespace):
    """The Sweep a `sweep` command line asks for: single-valued list flags go into the base config."""
    from wrn_core.sweeps import make_sweep

    if not args.blocks or not args.widen_factor:
        raise UsageError("python -m wrn_core sweep: --blocks and --widen-factor are required (or --resume)")
    scalar = argparse.Namespace(**vars(args))
    axes = {}
    for flag in ("dropout", "optimizer", "lr", "batch_size"):
        values = getattr(args, flag)
        setattr(scalar, flag, values[0] if values else None)
        if values and len(values) > 1:
            axes[flag] = values
    scalar.blocks, scalar.widen_factor, scalar.depth = args.blocks[0], args.widen_factor[0], None
    base = train_config_from_args(scalar)
    return make_sweep(args.name, base, args.blocks, args.widen_factor, seeds=args.seeds or [base.seed], **axes)


def _cells_text(frame) -> str:
    """The live table of a sweep's cells."""
    shown = frame[["run", "status", "epoch", "epochs", "best_test_acc", "train_seconds"]].copy()
    shown["epoch"] = [f"{e}/{n}" for e, n in zip(frame["epoch"], frame["epochs"])]
    shown["best_test_acc"] = [f"{100 * v:.1f}%" if v == v and v is not None else "—" for v in frame["best_test_acc"]]
    shown["train_seconds"] = [f"{v:.0f}s" if v == v and v is not None else "—" for v in frame["train_seconds"]]
    return shown.drop(columns=["epochs"]).rename(columns={"best_test_acc": "best test", "train_seconds": "time"}).to_string(index=False)


def cmd_sweep(args: argparse.Namespace) -> int:
    import time

    fresh = "torch" not in sys.modules  # a `python -m wrn_core sweep` process, not a caller that imported torch long ago
    from wrn_core import sweeps
    from wrn_core.jobs import JobManager
    from wrn_core.jobs.sweep_runner import SweepRunner
    from wrn_core.engine.resume import preflight

    import_seconds = _process_age() if fresh else None  # what each cell's process pays before its data loads

    store = RunStore(args.runs_dir)
    sweep = sweeps.load_sweep(store.root, args.name) if args.resume else _sweep_from_args(args)
    preflight(sweep.base)
    remaining = sweeps.next_cells(store, sweep)
    if not remaining and sweeps.is_done(store, sweep):
        print(f"sweep {sweep.name} is complete: every cell has ended (see `sweeps show {sweep.name}`)", file=sys.stderr)
        return 0
    measured = None if args.no_probe else sweeps.probe(sweep, import_seconds=import_seconds)
    plan = sweeps.preflight_frame(sweep, measured)
    columns = ["run", "params", "macs", "memory_mb", "fits"] + (["predicted_s"] if measured else [])
    print(plan[columns].to_string(index=False, float_format=lambda v: f"{v:,.0f}"))
    todo = plan[plan["run"].isin([c.run for c in remaining])]
    if measured is not None:
        print(f"predicted time for the {len(todo)} cell(s) left: {todo['predicted_s'].sum():,.0f} s "
              f"(measured {len(measured.seconds_per_step)} model(s) on {sweep.base.device}; cells run one after another per device)")
    misfits = plan[~plan["fits"]]
    if len(misfits) and not args.force:
        raise ConfigError(f"{len(misfits)} cell(s) are predicted not to fit in memory ({', '.join(misfits['run'][:3])}"
                          f"{', ...' if len(misfits) > 3 else ''}); use smaller models or batches, or --force")
    sweeps.save_sweep(store.root, sweep)
    manager = JobManager(store.root)
    runner = SweepRunner(manager)
    stop = threading.Event()

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    shown = ""
    tty = sys.stdout.isatty()
    try:
        runner.run(sweep)
        while not stop.is_set():
            frame = sweeps.cells_frame(store, sweep)
            text = _cells_text(frame)
            if text != shown:
                if tty and shown:
                    print(f"\x1b[{shown.count(chr(10)) + 1}F\x1b[J", end="")  # redraw the table in place
                print(text, flush=True)
                shown = text
            if sweeps.is_done(store, sweep) and not manager.jobs():
                break
            error = runner.error(sweep.name)
            if error:
                raise RunStoreError(f"sweep {sweep.name} stopped: {error}")
            time.sleep(0.5)
        if stop.is_set():
            for name in runner.stop(sweep.name):
                manager.wait(name, timeout=120)
            pending = sum(s not in sweeps.TERMINAL for s in sweeps.cell_statuses(store, sweep).values())
            print(f"stopped: {pending} cell(s) left; continue with `python -m wrn_core sweep {sweep.name} --resume "
                  f"--runs-dir {store.root}`", file=sys.stderr)
            return 0
    finally:
        signal.signal(signal.SIGINT, previous)
        runner.shutdown()
        manager.shutdown(timeout=120)
    counts = sweeps.cells_frame(store, sweep)["status"].value_counts().to_dict()
    print(f"sweep {sweep.name}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())), file=sys.stderr)
    return 0 if set(counts) <= {"finished"} else 1


def cmd_sweeps(args: argparse.Namespace) -> int:
    from wrn_core import sweeps

    store = RunStore(args.runs_dir)
    if args.sweeps_command == "list":
        names = sweeps.sweep_names(store.root)
        if not names:
            print(f"no sweeps in {store.root}")
        for name in names:
            try:
                statuses = sweeps.cell_statuses(store, sweeps.load_sweep(store.root, name))
            except RunStoreError as exc:
                print(f"{name}: {exc}")
                continue
            done = sum(s == "finished" for s in statuses.values())
            print(f"{name}: {done}/{len(statuses)} cells finished")
        return 0
    sweep = sweeps.load_sweep(store.root, args.name)
    frame = sweeps.cells_frame(store, sweep)
    if args.format == "json":
        cells = json.loads(frame.to_json(orient="records"))
        print(json.dumps({"name": sweep.name, "axes": {k: list(v) for k, v in sweep.axes.items()}, "cells": cells}, indent=2))
    elif args.format == "csv":
        print(frame.to_csv(index=False), end="")
    else:
        print(frame.to_string(index=False))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    import dataclasses

    from wrn_core.engine.devices import list_devices

    found = list_devices()
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(d) for d in found], indent=2))
        return 0
    for device in found:
        print(device.label())
    return 0


COMMANDS = {
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
}


def main(argv: Sequence[str] | None = None) -> int:
    from wrn_core.errors import DataError  # not wrn_core.data: listing runs need not import torch

    # Under torchrun every rank meets the same bad input; one line is enough.
    speak = os.environ.get("RANK", "0") == "0"
    previous: dict = {}
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("train", "resume") and threading.current_thread() is threading.main_thread():
            previous = _install_stop_handlers()
        return COMMANDS[args.command](args)
    except _RankError as exc:
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

