"""Frozen, validated configuration dataclasses for the model and for a training run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message says what was wrong and what is valid."""


def depth_from_blocks(blocks: int) -> int:
    """Depth d = 6N + 4 for N basic blocks per group (2 convs per block, 3 groups, stem, head, 2 projections)."""
    return 6 * blocks + 4


def nearest_depth(depth: int) -> int:
    """The valid depth (6N+4, at least 10) nearest to `depth`; half-way between two, the deeper."""
    return depth_from_blocks(max(1, math.floor((depth - 4) / 6 + 0.5)))


def blocks_from_depth(depth: int) -> int:
    """N = (d - 4) / 6; raises ConfigError naming the nearest valid depths when d is not 6N+4."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ConfigError(f"depth must be an integer, got {depth!r}")
    if depth < 10:
        raise ConfigError(f"depth {depth} is too small; the smallest valid depth is 10 (N=1)")
    if (depth - 4) % 6 != 0:
        lower = depth_from_blocks((depth - 4) // 6)
        upper = lower + 6
        raise ConfigError(
            f"depth {depth} is not 6N+4; the nearest valid depths are {lower} and {upper}"
        )
    return (depth - 4) // 6


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class WRNConfig:
    """One Wide ResNet, WRN-d-k (Zagoruyko & Komodakis, 2016)."""

    depth: int = 16  # total weighted layers, d = 6N + 4 (10, 16, 22, 28, 40, ...)
    widen_factor: int = 8  # k: group widths are 16k, 32k, 64k channels
    dropout: float = 0.0  # probability between the two 3x3 convs of a block (paper: 0.3)
    num_classes: int = 10  # outputs of the final linear layer
    in_channels: int = 3  # channels of the input images (3 for RGB)

    def __post_init__(self) -> None:
        blocks_from_depth(self.depth)
        _check_int("widen factor k", self.widen_factor, 1)
        _check_int("number of classes", self.num_classes, 2)
        _check_int("input channels", self.in_channels, 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ConfigError(f"dropout must be a number, got {self.dropout!r}")
        if not (0.0 <= float(self.dropout) < 1.0) or math.isnan(self.dropout):
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "dropout", float(self.dropout))

    @classmethod
    def from_blocks(cls, blocks: int, widen_factor: int, **kwargs: Any) -> "WRNConfig":
        """Build from N (blocks per group) instead of depth."""
        _check_int("blocks per group N", blocks, 1)
        return cls(depth=depth_from_blocks(blocks), widen_factor=widen_factor, **kwargs)

    @property
    def blocks(self) -> int:
        """N, the number of basic blocks in each of the three groups."""
        return (self.depth - 4) // 6

    @property
    def name(self) -> str:
        """The paper's name, e.g. 'WRN-28-10'."""
        return f"WRN-{self.depth}-{self.widen_factor}"

    @property
    def widths(self) -> tuple[int, int, int, int]:
        """Channels of the stem and of groups 1-3: (16, 16k, 32k, 64k)."""
        k = self.widen_factor
        return (16, 16 * k, 32 * k, 64 * k)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WRNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


OPTIMIZERS = ("sgd-nesterov", "adam", "adamw", "sgd")
EXTEND_MODES = ("continue", "restart")
SCHEDULES = ("step", "cosine", "onecycle", "constant")
DATASETS = ("synthetic", "cifar10", "cifar100", "folder")
DEVICES = ("auto", "cpu", "cuda", "mps")  # plus cuda:<index> for one GPU of several


def check_device_name(name: Any) -> None:
    """ConfigError (one line) unless name is auto, cpu, cuda, cuda:<index> or mps."""
    if name in DEVICES:
        return
    if isinstance(name, str) and name.startswith("cuda:") and name[5:].isdigit():
        return
    raise ConfigError(f"unknown device {name!r}; choose auto, cpu, cuda, cuda:<index> (e.g. cuda:1) or mps")

# Defaults per optimizer: the paper's SGD recipe, and the usual Adam-family settings.
DEFAULT_LR = {"sgd-nesterov": 0.1, "sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd-nesterov": 5e-4, "sgd": 5e-4, "adam": 0.0, "adamw": 5e-2}


@dataclass(frozen=True)
class Extension:
    """Epochs added to a run beyond its planned schedule (`resume NAME --epochs MORE`)."""

    from_epoch: int  # where the added epochs start: the end of the plan before them
    epochs: int  # how many epochs were added
    mode: str = "continue"  # continue: keep the lr the schedule ended at | restart: run the schedule again over the added epochs

    def __post_init__(self) -> None:
        _check_int("extension start epoch", self.from_epoch, 1)
        _check_int("extension epochs", self.epochs, 1)
        _choice("schedule extension", self.mode, EXTEND_MODES)


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to (re)run one training job; stored as a run's config.json."""

    model: WRNConfig = field(default_factory=WRNConfig)
    dataset: str = "synthetic"  # synthetic | cifar10 | cifar100 | folder
    data_dir: str | None = None  # where cifar files / the image folder live
    subset_train: int | None = None  # class-balanced subset size (images), None = all
    subset_test: int | None = None
    image_size: int | None = None  # folder datasets: resize to this many pixels square
    synthetic_train: int = 5000  # images in the synthetic train split
    synthetic_test: int = 1000
    optimizer: str = "sgd-nesterov"
    lr: float | None = None  # peak learning rate; None = the optimizer's default
    momentum: float = 0.9  # SGD momentum (beta1 for Adam/AdamW)
    weight_decay: float | None = None  # None = the optimizer's default
    schedule: str = "step"  # step (paper: x0.2 at 30/60/80%) | cosine | onecycle | constant
    warmup_epochs: float = 0.0  # linear warm-up from lr/10 at the start, in epochs
    epochs: int = 10
    batch_size: int = 128  # images per step
    label_smoothing: float = 0.0
    augment: bool = True  # reflect-pad 4 + random crop + horizontal flip
    device: str = "auto"  # auto | cpu | cuda | mps
    seed: int = 0
    log_every: int = 10  # steps between per-step train points
    width_every: int = 1  # epochs between width-use measurements on the evaluation pass (and the last epoch); 0 = none
    compile: bool = False  # torch.compile the model (CUDA); warm-up time is recorded
    eval_batch_size: int = 512
    sync_bn: bool = False  # data-parallel runs: SyncBatchNorm over all processes (CUDA GPUs only)
    world_size: int = 1  # processes that trained it data-parallel (torchrun); recorded by the trainer
    schedule_epochs: int | None = None  # epochs the lr schedule was planned over; None = epochs (set once a resume moves the target)
    extensions: tuple[Extension, ...] = ()  # epochs added after the plan, in order; see Extension

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", WRNConfig.from_dict(self.model))
        if isinstance(self.extensions, list) or any(isinstance(e, dict) for e in self.extensions):
            object.__setattr__(self, "extensions", tuple(e if isinstance(e, Extension) else Extension(**e) for e in self.extensions))
        if not isinstance(self.model, WRNConfig):
            raise ConfigError("model must be a WRNConfig")
        _choice("dataset", self.dataset, DATASETS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        check_device_name(self.device)
        if self.dataset == "folder" and not self.data_dir:
            raise ConfigError("dataset 'folder' needs a data directory (--data-dir)")
        for name in ("subset_train", "subset_test", "image_size"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name.replace("_", " "), value, 1)
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"image size must be >= 8 pixels, got {self.image_size}")
        _check_int("synthetic train size", self.synthetic_train, 10)
        _check_int("synthetic test size", self.synthetic_test, 10)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch size", self.batch_size, 1)
        _check_int("eval batch size", self.eval_batch_size, 1)
        _check_int("log every", self.log_every, 1)
        _check_int("width every", self.width_every, 0)
        _check_int("seed", self.seed, 0)
        _check_int("world size", self.world_size, 1)
        if self.lr is not None:
            _check_positive("learning rate", self.lr)
        if self.weight_decay is not None:
            _check_nonnegative("weight decay", self.weight_decay)
        _check_nonnegative("warmup epochs", self.warmup_epochs)
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"warmup epochs ({self.warmup_epochs}) must be fewer than epochs ({self.epochs})"
            )
        if not (0.0 <= self.momentum < 1.0):
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (0.0 <= self.label_smoothing < 1.0):
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.schedule_epochs is not None:
            _check_int("schedule epochs", self.schedule_epochs, 1)
        end = self.planned_epochs_before_extensions
        for extension in self.extensions:
            if not isinstance(extension, Extension):
                raise ConfigError("extensions must be Extension records")
            if extension.from_epoch != end:
                raise ConfigError(f"a schedule extension must start where the plan ends (epoch {end}), not at {extension.from_epoch}")
            end = extension.from_epoch + extension.epochs

    @property
    def planned_epochs_before_extensions(self) -> int:
        """Epochs the original schedule spans (its shape), before any extension."""
        return self.schedule_epochs if self.schedule_epochs is not None else self.epochs

    @property
    def planned_epochs(self) -> int:
        """Where the planned schedule ends: the original plan plus every extension."""
        if self.extensions:
            return self.extensions[-1].from_epoch + self.extensions[-1].epochs
        return self.planned_epochs_before_extensions

    def with_target(self, epochs: int, mode: str = "continue") -> "TrainConfig":
        """This config trained to `epochs` in total, the learning-rate plan kept for the epochs already planned.

        Beyond the plan, the added epochs become an Extension: `continue` keeps the lr the schedule
        ended at, `restart` runs the schedule again over the added epochs. Within the plan, only the
        target moves (the schedule keeps its shape).
        """
        _check_int("epochs", epochs, 1)
        _choice("schedule extension", mode, EXTEND_MODES)
        planned = self.planned_epochs
        extensions = self.extensions
        if epochs > planned:
            extensions = extensions + (Extension(from_epoch=planned, epochs=epochs - planned, mode=mode),)
        return self.replace(epochs=epochs, schedule_epochs=self.planned_epochs_before_extensions, extensions=extensions)

    def measures_width(self, epoch: int) -> bool:
        """Whether completed epoch `epoch` (1-based) measures width use: every width_every-th epoch and the target's last."""
        return self.width_every > 0 and (epoch % self.width_every == 0 or epoch == self.epochs)

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]

    @property
    def effective_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return DEFAULT_WEIGHT_DECAY[self.optimizer]

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training field(s): {', '.join(sorted(unknown))}")
        data = dict(data)
        if isinstance(data.get("model"), dict):
            data["model"] = WRNConfig.from_dict(data["model"])
        if isinstance(data.get("extensions"), list):
            extensions = []
            for item in data["extensions"]:
                if not isinstance(item, dict) or set(item) - {"from_epoch", "epochs", "mode"}:
                    raise ConfigError(f"invalid schedule extension {item!r}")
                extensions.append(Extension(**item))
            data["extensions"] = tuple(extensions)
        return cls(**data)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def _check_nonnegative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")
