"""The flags several commands share, flags -> TrainConfig, and TrainConfig -> the `train` line (no torch).

Each command's module adds its own subparser (`add_<command>`) from these; `wrn_core.cli.build_parser` puts them
together. Nothing here imports another module of `wrn_core.cli`.
"""

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
from wrn_core.store import DEFAULT_RUNS_DIR, RUNS_DIR_ENV, default_runs_dir

FORMATS = ("table", "csv", "json")


class UsageError(Exception):
    """Bad input: printed as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
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


def add_runs_dir(parser: argparse.ArgumentParser) -> None:
    """--runs-dir, by default $WRN_RUNS_DIR or ./runs (the dashboard's default too)."""
    parser.add_argument("--runs-dir", default=str(default_runs_dir()),
                        help=f"the folder of runs (default: ${RUNS_DIR_ENV}, else ./{DEFAULT_RUNS_DIR})")


def add_model_flags(parser: argparse.ArgumentParser, required: bool) -> None:
    """--depth or --blocks, --widen-factor and --dropout."""
    shape = parser.add_mutually_exclusive_group(required=required)
    shape.add_argument("--depth", type=int, help="total depth d = 6N+4 (10, 16, 22, 28, 40, ...)")
    shape.add_argument("--blocks", type=int, help="N, blocks per group (depth = 6N+4)")
    parser.add_argument("--widen-factor", "-k", type=int, required=required, help="k: group widths 16k, 32k, 64k")
    parser.add_argument("--dropout", type=float, default=None, help="dropout between the convs of a block (paper: 0.3)")


def csv_list(item: type, choices: Sequence[str] | None = None) -> Callable[[str], list]:
    """An argparse type for comma-separated values: '1,2,4' -> [1, 2, 4]."""

    def parse(text: str) -> list:
        try:
            values = [item(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__} values, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError("expected at least one value")
        for value in values:
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(f"invalid choice {value!r} (choose from {', '.join(choices)})")
        return values

    parse.__name__ = f"list of {item.__name__}"
    return parse


def _sweep_model_flags(parser: argparse.ArgumentParser) -> None:
    """The model flags of a sweep: lists of N, k and dropout."""
    parser.add_argument("--blocks", type=csv_list(int), help="N values, e.g. 1,2 (depth = 6N+4); required unless --resume")
    parser.add_argument("--widen-factor", "-k", type=csv_list(int), help="k values, e.g. 1,2,4; required unless --resume")
    parser.add_argument("--dropout", type=csv_list(float), help="dropout values, e.g. 0,0.3")
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
        parser.add_argument("--optimizer", type=csv_list(str, OPTIMIZERS), help=f"optimizers, e.g. sgd-nesterov,adam ({', '.join(OPTIMIZERS)})")
        parser.add_argument("--lr", type=csv_list(float), help="peak learning rates, e.g. 0.05,0.1")
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
        parser.add_argument("--batch-size", type=csv_list(int), help="batch sizes, e.g. 64,128")
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
    parser.add_argument("--width-every", type=int,
                        help="epochs between width-use measurements on the test pass (default 1; 0 = none)")
    add_runs_dir(parser)


def add_train_flags(parser: argparse.ArgumentParser, lists: bool = False) -> None:
    """The flags of a training config. With lists, the sweepable ones take comma-separated values."""
    parser.add_argument("--preset", help="start from a named recipe (see `presets`); flags override it")
    if lists:
        _sweep_model_flags(parser)
    else:
        add_model_flags(parser, required=False)
    _data_flags(parser)
    _optimizer_flags(parser, lists)
    _runtime_flags(parser, lists)


def model_config_from_args(args: argparse.Namespace, base: WRNConfig | None = None, num_classes: int | None = None) -> WRNConfig:
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
                 "label_smoothing", "epochs", "batch_size", "eval_batch_size", "device", "seed", "log_every", "width_every")


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
    changes: dict[str, Any] = {"model": model_config_from_args(args, base.model)}
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
    "width_every": "--width-every",
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
