"""wrn_core.flops: closed-form MACs per image against hook and torchinfo counts, and training FLOPs."""

from __future__ import annotations

import pytest
from PIL import Image

from bench.common import count_macs
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.model.flops import input_size, macs_per_image, training_flops_per_image
from wrn_core.model import build_model
from wrn_core.model.tables import layer_table


@pytest.mark.parametrize(
    "config, size",
    [
        (WRNConfig(depth=10, widen_factor=1), 32),
        (WRNConfig(depth=16, widen_factor=2, num_classes=100), 32),
        (WRNConfig(depth=22, widen_factor=1, in_channels=1), 28),
        (WRNConfig(depth=10, widen_factor=2), 17),  # odd sides: the stride-2 convs round up
        (WRNConfig(depth=40, widen_factor=4), 32),
        (WRNConfig(depth=28, widen_factor=10), 32),
    ],
)
def test_closed_form_equals_hook_count_and_torchinfo_without_batchnorm(config, size):
    closed = macs_per_image(config, size)
    assert closed == count_macs(build_model(config, initialize=False), (config.in_channels, size, size))
    table = layer_table(config, size)
    batchnorm = int(table.loc[table["kind"] == "batchnorm", "macs"].sum())  # torchinfo adds 2C per BN layer
    assert closed == int(table["macs"].sum()) - batchnorm


def test_non_square_input_and_the_paper_figure():
    config = WRNConfig(depth=10, widen_factor=1)
    assert macs_per_image(config, 24, 40) == count_macs(build_model(config, initialize=False), (3, 24, 40))
    assert macs_per_image(config, 32, 32) == macs_per_image(config, 32)
    # WRN-28-10 at 32x32: 5.24 G MACs per image, the figure the README quotes (torchinfo adds BN's 17,952).
    assert macs_per_image(WRNConfig(depth=28, widen_factor=10), 32) == 5_243_346_730 - 17_952


def test_training_flops_from_config_and_dict(tmp_path):
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1))
    expected = 6 * macs_per_image(config.model, 32)  # forward 2 FLOPs per MAC, backward twice that: the paper's 6
    assert training_flops_per_image(config) == expected
    assert training_flops_per_image(config.to_dict()) == expected
    # A config.json with a field this version does not know still works (only the model shape matters).
    assert training_flops_per_image({**config.to_dict(), "future_field": 1}) == expected
    resized = config.replace(dataset="folder", data_dir=str(tmp_path), image_size=64)
    assert input_size(resized) == (64, 64)
    assert training_flops_per_image(resized) == 6 * macs_per_image(config.model, 64)
    assert training_flops_per_image({"model": "broken"}) is None
    assert training_flops_per_image({}) is None


def test_folder_size_read_from_the_first_image(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.new("RGB", (40, 24)).save(tmp_path / split / "cat" / "0.png")  # PIL sizes are (width, height)
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="folder", data_dir=str(tmp_path))
    assert input_size(config) == (24, 40)
    assert training_flops_per_image(config) == 6 * macs_per_image(config.model, 24, 40)
    missing = config.replace(data_dir=str(tmp_path / "gone"))
    assert input_size(missing) is None and training_flops_per_image(missing) is None
