"""The command line's flags: the parser, flags -> TrainConfig, and TrainConfig -> the `train` line (no torch)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any, Callable, Sequence

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

DEFAULT_RUNS_DIR = "runs"
FORMATS = ("table", "csv", "json")


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


def _csv(kind: type, choices: Sequence[str] | None = None) -> Callable[[str], list]:
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


def _field_filter(text: str) -> tuple[str, list[str]]:
    """An argparse type for `--filter FIELD=VALUE[,VALUE]`: 'optimizer=sgd,adam' -> ('optimizer', ['sgd', 'adam'])."""
    field, sep, values = text.partition("=")
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not field.strip() or not parts:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. optimizer=sgd or k=1,2), got {text!r}")
    return field.strip(), parts


def _metric_spec(text: str) -> tuple[str, str]:
    """An argparse type for `--metric METRIC:AGG`: 'test_loss:min' -> ('test_loss', 'min') (analysis.TABLE_METRICS,
    analysis.AGGREGATES)."""
    from wrn_core.analysis.frames import AGGREGATES, TABLE_METRICS

    metric, sep, aggregate = text.partition(":")
    metric, aggregate = metric.strip().replace("-", "_"), aggregate.strip()
    if not sep or metric not in TABLE_METRICS or aggregate not in AGGREGATES:
        raise argparse.ArgumentTypeError(f"expected METRIC:AGG with METRIC one of {', '.join(TABLE_METRICS)} and AGG "
                                         f"one of {', '.join(AGGREGATES)} (e.g. test_loss:min), got {text!r}")
    return metric, aggregate


def _sweep_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model flags of a sweep: lists of N, k and dropout."""
    parser.add_argument("--blocks", type=_csv(int), help="N values, e.g. 1,2 (depth = 6N+4); required unless --resume")
    parser.add_argument("--widen-factor", "-k", type=_csv(int), help="k values, e.g. 1,2,4; required unless --resume")
    parser.add_argument("--dropout", type=_csv(float), help="dropout values, e.g. 0,0.3")
    parser.add_argument("--depth", type=int, help=argparse.SUPPRESS)  # sweeps are given in N


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--data-dir", help="CIFAR files or an image folder with train/ and test/")
    parser.add_argument("--image-size", type=int, help="folder datasets: resize images to this square size")
    parser.add_argument("--subset-train", type=int, help="class-balanced subset of the training images")
    parser.add_argument("--subset-test", type=int, help="class-balanced subset of the test images")
    parser.add_argument("--synthetic-train", type=int, help="synthetic dataset: training images")
    parser.add_argument("--synthetic-test", type=int, help="synthetic dataset: test images")


def _optimizer_flags(parser: argparse.ArgumentParser, lists: bool) -> None:
    """Optimizer, schedule, epochs and batch; with lists, the sweepable ones take comma-separated values."""
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


def _runtime_flags(parser: argparse.ArgumentParser, lists: bool) -> None:
    """Augmentation, device, compile, seed, logging and where runs are kept."""
    parser.add_argument("--no-augment", action="store_true", help="turn off pad-4 random crop + flip")
    parser.add_argument("--device", help="auto (default: a GPU when there is one), cpu, cuda, cuda:<index> or mps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up is logged)")
    parser.add_argument("--sync-bn", action="store_true", help="under torchrun on GPUs: SyncBatchNorm over all processes")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS if lists else None)  # a sweep has --seeds
    parser.add_argument("--log-every", type=int, help="steps between per-step train points")
    parser.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)


def _train_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """The flags of a training config. With lists, the sweepable ones take comma-separated values."""
    parser.add_argument("--preset", help="start from a named recipe (see `presets`); flags override it")
    if lists:
        _sweep_model_flags(parser)
    else:
        _model_args(parser, required=False)
    _data_flags(parser)
    _optimizer_flags(parser, lists)
    _runtime_flags(parser, lists)


def _add_summary(sub: argparse._SubParsersAction) -> None:
    summary = sub.add_parser("summary", help="per-layer table: widths, shapes, parameters, multiply-accumulates")
    _model_args(summary, required=True)
    summary.add_argument("--num-classes", type=int, default=10)
    summary.add_argument("--image-size", type=int, default=32, help="input height and width in pixels (>= 8)")
    summary.add_argument("--format", choices=FORMATS, default="table")


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a WRN; Ctrl-C stops with a checkpoint")
    _train_flags(train)
    train.add_argument("--name", help="run name (letters, digits, . _ -); default: generated")
    train.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    train.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")


def _add_sweep(sub: argparse._SubParsersAction) -> None:
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
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: this machine's devices (default); ray: each cell a Ray task on any node of a cluster")
    sweep.add_argument("--ray-address", help="the Ray cluster (HEAD:6379, ray://...; default RAY_ADDRESS, else a local "
                                             "Ray started for the sweep)")
    sweep.add_argument("--cpus-per-cell", type=float, default=1.0, help="Ray: CPUs each cell reserves (default 1)")
    sweep.add_argument("--gpus-per-cell", type=float, default=None,
                       help="Ray: GPUs each cell reserves (default 1 for a CUDA sweep, else 0)")


def _add_sweeps(sub: argparse._SubParsersAction) -> None:
    sweeps = sub.add_parser("sweeps", help="list saved sweeps, or show one's cells")
    sweeps_sub = sweeps.add_subparsers(dest="sweeps_command", required=True, parser_class=_Parser)
    sweeps_list = sweeps_sub.add_parser("list")
    sweeps_list.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    sweeps_show = sweeps_sub.add_parser("show")
    sweeps_show.add_argument("name")
    sweeps_show.add_argument("--format", choices=FORMATS, default="table")
    sweeps_show.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    importance = sweeps_sub.add_parser("importance", help="which axis mattered: random-forest importance of the axes "
                                                          "for the finished cells' test accuracy")
    importance.add_argument("name")
    importance.add_argument("--target", choices=("best_test_acc", "final_test_acc"), default="best_test_acc")
    importance.add_argument("--format", choices=("table", "json"), default="table")
    importance.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)


def _add_resume(sub: argparse._SubParsersAction) -> None:
    resume = sub.add_parser("resume", help="continue a stopped or interrupted run from its checkpoint")
    resume.add_argument("name")
    resume.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    resume.add_argument("--extend-schedule", choices=EXTEND_MODES, default=None,
                        help="epochs beyond the planned schedule: continue at the learning rate it ended at, or restart "
                             "the schedule over the added epochs (default: restart where it ended at lr 0, as "
                             "one-cycle and cosine do, else continue)")
    resume.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    resume.add_argument("--quiet", action="store_true", help="no progress bar (e.g. when a job manager runs it)")
    resume.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")


def _add_runs(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list, compare, show, tag, note, export, stop or delete saved runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, parser_class=_Parser)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--tag", action="append", help="only runs with this tag (repeatable: all must match)")
    runs_list.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_list.add_argument("--group-by", type=_csv(str), metavar="FIELD[,FIELD]",
                           help="one row per group of runs (seeds averaged): n, mean ± std of best and final test accuracy")
    runs_list.add_argument("--filter", type=_field_filter, action="append", metavar="FIELD=VALUE[,VALUE]",
                           help="only runs with one of these values (repeat for more fields; e.g. optimizer=sgd, k=1,2)")
    runs_list.add_argument("--metric", type=_metric_spec, action="append", metavar="METRIC:AGG",
                           help="a column of a metric's best, min, max or last value over each run's epochs "
                                "(repeatable; e.g. test_loss:min, train_acc:last; reads each listed run's metrics)")
    runs_compare = runs_sub.add_parser("compare", help="runs side by side: one column per run, one row per setting")
    runs_compare.add_argument("names", nargs="+", metavar="NAME", help="two or more runs")
    runs_compare.add_argument("--all", action="store_true", help="every setting, not only those that differ")
    runs_compare.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_tag = runs_sub.add_parser("tag", help="add tags to a run (safe while it trains)")
    runs_tag.add_argument("name")
    runs_tag.add_argument("tags", nargs="+", metavar="TAG", help="letters, digits and . _ : + = @ - (no spaces or '/')")
    runs_tag.add_argument("--remove", action="store_true", help="take these tags off instead")
    runs_tag.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_note = runs_sub.add_parser("note", help="set a run's note; an empty text clears it")
    runs_note.add_argument("name")
    runs_note.add_argument("text", help="at most 10,000 characters")
    runs_note.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_show = runs_sub.add_parser("show")
    runs_show.add_argument("name")
    runs_show.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_export = runs_sub.add_parser("export")
    runs_export.add_argument("name", nargs="?", help="the run (or --all with --format tensorboard)")
    runs_export.add_argument("--format", choices=("csv", "json", "tensorboard"), default="csv")
    runs_export.add_argument("--out", help="write to this file instead of stdout (tensorboard: the event directory)")
    runs_export.add_argument("--all", action="store_true", help="tensorboard: every run, each in OUT/<run name>")
    runs_export.add_argument("--force", action="store_true", help="tensorboard: write into an OUT that is not empty")
    runs_export.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_stop = runs_sub.add_parser("stop", help="ask a training run to checkpoint and stop, on whichever machine it trains")
    runs_stop.add_argument("name")
    runs_stop.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)
    runs_delete = runs_sub.add_parser("delete")
    runs_delete.add_argument("name")
    runs_delete.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR)


def _add_download_and_presets(sub: argparse._SubParsersAction) -> None:
    download = sub.add_parser("download", help="download CIFAR-10/100 through torchvision")
    download.add_argument("dataset", choices=("cifar10", "cifar100"))
    download.add_argument("--data-dir", default="data")
    sub.add_parser("presets", help="list the named training recipes")


def _add_ddp(sub: argparse._SubParsersAction) -> None:
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


def _add_devices(sub: argparse._SubParsersAction) -> None:
    devices = sub.add_parser("devices", help="list the devices this machine can train on")
    devices.add_argument("--format", choices=("table", "json"), default="table")


def build_parser() -> argparse.ArgumentParser:
    """The parser of `python -m wrn_core`; its errors raise UsageError instead of exiting."""
    parser = _Parser(prog="python -m wrn_core", description="Wide Residual Networks: inspect, train, compare.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    # In this order in --help.
    from wrn_core.cli.inspect import add_evaluate, add_export  # here: that module imports this one

    for add in (_add_summary, _add_train, _add_sweep, _add_sweeps, _add_resume, _add_runs, add_evaluate, add_export,
                _add_download_and_presets, _add_ddp, _add_devices):
        add(sub)
    return parser


def _model_config(args: argparse.Namespace, base: WRNConfig | None = None, num_classes: int | None = None) -> WRNConfig:
    """The WRNConfig the model flags ask for: `base` (default: WRNConfig()) with the flags given."""
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


# TrainConfig fields set from a flag of the same name when it is given.
_VALUE_FIELDS = ("dataset", "data_dir", "image_size", "subset_train", "subset_test", "synthetic_train",
                 "synthetic_test", "optimizer", "lr", "momentum", "weight_decay", "schedule", "warmup_epochs",
                 "label_smoothing", "epochs", "batch_size", "eval_batch_size", "device", "seed", "log_every")


def _base_config(preset: str | None) -> TrainConfig:
    """The named preset's TrainConfig, or WRN-10-1 with the defaults."""
    from wrn_core.presets import PRESET_KEYS, PRESETS

    if not preset:
        return TrainConfig(model=WRNConfig(depth=10, widen_factor=1))
    if preset not in PRESET_KEYS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_KEYS)}")
    return PRESETS[PRESET_KEYS[preset]]


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig a `train` command line asks for: a preset (or the defaults) plus the flags given."""
    base = _base_config(args.preset)
    changes: dict[str, Any] = {"model": _model_config(args, base.model)}
    changes.update({flag: getattr(args, flag) for flag in _VALUE_FIELDS if getattr(args, flag) is not None})
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
# needs no flag. tests/test_cli_flags.py fails when a config field is missing from these maps.
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
# Fields that only the synthetic dataset reads (command_for leaves them out for the others).
SYNTHETIC_ONLY = ("synthetic_train", "synthetic_test")
# Boolean fields are switches: the flag is written only when the field has this value.
SWITCH_VALUES = {"augment": False, "compile": True, "sync_bn": True}


def _flag_value(value: Any) -> str:
    # repr keeps every digit of a float, so argparse's float() reads back the same number.
    return repr(value) if isinstance(value, float) else str(value)


def _field_words(flag: str, field_name: str, value: Any) -> list[str]:
    """The words that give one non-None config field on the command line (none for a switch left off)."""
    if field_name in SWITCH_VALUES:
        return [flag] if value == SWITCH_VALUES[field_name] else []
    if field_name == "extensions":
        return [word for e in value for word in (flag, shlex.quote(f"{e.from_epoch}:{e.epochs}:{e.mode}"))]
    return [flag, shlex.quote(_flag_value(value))]


def command_for(config: TrainConfig, name: str | None = None, runs_dir: str | None = None) -> str:
    """The `python -m wrn_core train ...` line that re-creates `config`, field for field.

    Every field is written out (not only those that differ from today's defaults, which may
    change); a None field is left out, which means None. train_config_from_args(parse(command))
    equals `config` except num_classes and in_channels, which the engine takes from the data, and
    world_size, which torchrun sets. The synthetic image counts are written for the synthetic dataset
    only (elsewhere they mean nothing): for another dataset the parse gives their defaults.
    """
    words = ["python", "-m", "wrn_core", "train"]
    if config.world_size > 1:  # data-parallel: torchrun sets the world size
        words = ["torchrun", "--standalone", f"--nproc-per-node={config.world_size}", "-m", "wrn_core", "train"]
    pairs = [(MODEL_FLAGS[f.name], getattr(config.model, f.name), f.name) for f in dataclasses.fields(config.model)]
    pairs += [(TRAIN_FLAGS[f.name], getattr(config, f.name), f.name) for f in dataclasses.fields(config) if f.name != "model"]
    for flag, value, field_name in pairs:
        if field_name in SYNTHETIC_ONLY and config.dataset != "synthetic":
            continue
        if flag is not None and value is not None:
            words += _field_words(flag, field_name, value)
    if runs_dir is not None:
        words += ["--runs-dir", shlex.quote(str(runs_dir))]
    if name is not None:
        words += ["--name", shlex.quote(name)]
    return " ".join(words)
