"""The paper's published CIFAR-10 results and the authors' own WRN-40-4 training log, as chart references."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from wrn_core.config import WRNConfig
from wrn_core.model.flops import TRAIN_FLOPS_PER_MAC, macs_per_image

PAPER_EPOCHS = 200  # every published CIFAR result below was trained for 200 epochs
PAPER_CAPTION = "paper, 200 epochs"
PAPER_SOURCE = (
    "Zagoruyko & Komodakis (2016), Wide Residual Networks, arXiv:1605.07146v4, Table 5: CIFAR-10 test error, "
    "flip/translation augmentation, mean/std normalisation, no dropout, median of 5 runs"
)


@dataclass(frozen=True)
class PaperResult:
    """One published CIFAR-10 result of the paper."""

    model: str  # the paper's name, WRN-d-k
    depth: int
    widen_factor: int
    params: int  # exact count of this project's model (the paper rounds: 8.9M, 11.0M, 36.5M)
    test_error: float  # CIFAR-10 test error, percent, median of 5 runs

    @property
    def test_acc(self) -> float:
        """Test accuracy, percent."""
        return 100.0 - self.test_error


# Source: PAPER_SOURCE (the paper's table of mean/std-normalised results). WRN-28-10's 4.00 is
# also in the authors' README (github.com/szagoruyko/wide-residual-networks, "median of 5 runs",
# meanstd); WRN-40-4's 8,949,210 parameters match n_parameters in the authors' training log.
# tests/test_reference.py checks every parameter count against wrn_core.model.count_parameters.
PAPER_CIFAR10: tuple[PaperResult, ...] = (
    PaperResult("WRN-40-4", 40, 4, 8_949_210, 4.53),
    PaperResult("WRN-16-8", 16, 8, 10_961_370, 4.27),
    PaperResult("WRN-28-10", 28, 10, 36_479_194, 4.00),
)


def paper_points() -> pd.DataFrame:
    """The published CIFAR-10 results: model, depth, widen_factor, params, test_error (%), test_acc (%)."""
    return pd.DataFrame(
        [
            {
                "model": r.model,
                "depth": r.depth,
                "widen_factor": r.widen_factor,
                "params": r.params,
                "test_error": r.test_error,
                "test_acc": r.test_acc,
            }
            for r in PAPER_CIFAR10
        ]
    )


OFFICIAL_LOG_FILE = "official-wrn-40-4-c10-log.csv"  # in wrn_core/reference_data/, with NOTICE.md
OFFICIAL_LOG_MODEL = WRNConfig(depth=40, widen_factor=4)
OFFICIAL_LOG_TRAIN_IMAGES = 50_000  # the full CIFAR-10 training set, every epoch
OFFICIAL_LOG_LABEL = "WRN-40-4, authors' log (CIFAR-10)"
OFFICIAL_LOG_ATTRIBUTION = (
    "WRN-40-4 on CIFAR-10 (ZCA-whitened, 200 epochs, one run), from the authors' training log "
    "logs/wide-resnet_1121914561/log.txt of github.com/szagoruyko/wide-residual-networks; "
    "BSD 2-Clause License, Copyright (c) 2016, Sergey Zagoruyko"
)
# The x axes the official log can be placed on: epochs directly, images and FLOPs from its fixed
# 50,000 images per epoch. Not training time: its seconds were measured on the authors' 2016 GPU.
OFFICIAL_LOG_X_AXES = ("epoch", "images_seen", "flops")


@functools.lru_cache(maxsize=1)
def _official_log() -> pd.DataFrame:
    source = resources.files("wrn_core") / "reference_data" / OFFICIAL_LOG_FILE
    with resources.as_file(source) as path:
        frame = pd.read_csv(path)
    frame = frame.rename(columns={"loss": "train_loss"})
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["test_acc"] = frame["test_acc"] / 100.0  # percent in the file; fractions in this project
    return frame[["epoch", "test_acc", "train_loss", "lr", "train_time_s"]]


def official_log() -> pd.DataFrame:
    """The authors' WRN-40-4 CIFAR-10 record, one row per epoch (1..200).

    Columns: epoch, test_acc (fraction), train_loss, lr, train_time_s (seconds on the authors' GPU).
    Read once from the packaged CSV; returned as a copy.
    """
    return _official_log().copy()


def official_curve(x: str = "epoch") -> pd.DataFrame | None:
    """The official log's test accuracy against an x axis: columns x, test_acc (fraction).

    x: "epoch"; "images_seen" (50,000 per epoch); "flops" (6 x WRN-40-4's MACs per 32×32 image x
    images seen, the convention of wrn_core.flops). None for an axis it cannot be placed on ("time").
    """
    if x not in OFFICIAL_LOG_X_AXES:
        return None
    log = _official_log()
    epochs = log["epoch"].astype("float64")
    if x == "epoch":
        values = epochs
    else:
        values = epochs * OFFICIAL_LOG_TRAIN_IMAGES
        if x == "flops":
            values = values * float(TRAIN_FLOPS_PER_MAC * macs_per_image(OFFICIAL_LOG_MODEL, 32))
    return pd.DataFrame({"x": values.to_numpy(), "test_acc": log["test_acc"].to_numpy()})
