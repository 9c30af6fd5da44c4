"""wrn_core.reference: the paper's published points and the authors' packaged WRN-40-4 training log."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from wrn_core.config import WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.model import build_model, count_parameters
from wrn_core.reference import (
    OFFICIAL_LOG_FILE,
    OFFICIAL_LOG_TRAIN_IMAGES,
    PAPER_CIFAR10,
    official_curve,
    official_log,
    paper_points,
)

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "wrn_core" / "reference_data"


@pytest.mark.parametrize("result", PAPER_CIFAR10, ids=lambda r: r.model)
def test_paper_parameter_counts_are_this_projects_models(result):
    config = WRNConfig(depth=result.depth, widen_factor=result.widen_factor)
    assert config.name == result.model
    assert count_parameters(build_model(config, initialize=False)) == result.params


def test_paper_points():
    points = paper_points()
    assert list(points["model"]) == ["WRN-40-4", "WRN-16-8", "WRN-28-10"]
    # The paper rounds its parameter counts to 8.9M, 11.0M and 36.5M.
    assert [round(p / 1e6, 1) for p in points["params"]] == [8.9, 11.0, 36.5]
    assert list(points["test_error"]) == [4.53, 4.27, 4.00]
    assert list(points["test_acc"]) == pytest.approx([95.47, 95.73, 96.00])


def test_official_log_loads_all_200_epochs():
    log = official_log()
    assert list(log.columns) == ["epoch", "test_acc", "train_loss", "lr", "train_time_s"]
    assert log["epoch"].tolist() == list(range(1, 201))
    assert log["test_acc"].iloc[-1] == pytest.approx(0.9489)  # fractions, as everywhere in this project
    assert log["test_acc"].max() == pytest.approx(0.9508)  # epoch 185 (the shared README says 95.07)
    assert sorted(log["lr"].unique()) == pytest.approx([0.0008, 0.004, 0.02, 0.1])  # x0.2 at 60/120/160
    log.loc[0, "test_acc"] = 0.0
    assert official_log().loc[0, "test_acc"] == pytest.approx(0.5857)  # callers get a copy


def test_official_curve_on_each_axis():
    by_epoch = official_curve("epoch")
    assert by_epoch["x"].tolist() == [float(e) for e in range(1, 201)]
    images = official_curve("images_seen")
    assert images["x"].iloc[-1] == 200 * OFFICIAL_LOG_TRAIN_IMAGES
    flops = official_curve("flops")
    per_image = 6 * macs_per_image(WRNConfig(depth=40, widen_factor=4), 32)
    assert flops["x"].iloc[0] == pytest.approx(OFFICIAL_LOG_TRAIN_IMAGES * per_image)
    assert flops["test_acc"].tolist() == by_epoch["test_acc"].tolist()
    assert official_curve("time") is None  # its seconds are the authors' 2016 GPU's


def test_log_ships_with_its_licence_notice():
    assert (DATA_DIR / OFFICIAL_LOG_FILE).is_file()
    notice = (DATA_DIR / "NOTICE.md").read_text()
    assert "BSD 2-Clause License" in notice and "Copyright (c) 2016, Sergey Zagoruyko" in notice
    assert "logs/wide-resnet_1121914561/log.txt" in notice
    # pyproject's package-data must cover both files, or an installed package lacks them.
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["wrn_core"]
    for name in (OFFICIAL_LOG_FILE, "NOTICE.md"):
        assert any(fnmatch.fnmatch(f"reference_data/{name}", pattern) for pattern in patterns), name
