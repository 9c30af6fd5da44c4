"""Tests for wrn_core.model.tables: torchinfo layer table, aggregations, totals and memory estimates."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wrn_core.config import ConfigError, WRNConfig
from wrn_core.model import build_model, count_parameters
from wrn_core.model.tables import (
    LAYER_COLUMNS,
    ModelTotals,
    block_table,
    format_table,
    group_table,
    layer_table,
    summary_dict,
    totals,
    training_memory_mb,
)

SMALL = [
    WRNConfig.from_blocks(1, 1),
    WRNConfig.from_blocks(2, 2, num_classes=100),
    WRNConfig.from_blocks(1, 2, dropout=0.3, in_channels=1),
]


@pytest.mark.parametrize("config", SMALL, ids=lambda c: c.name)
def test_params_equal_model(config: WRNConfig) -> None:
    table = layer_table(config)
    assert int(table["params"].sum()) == count_parameters(build_model(config))
    assert totals(config, table=table).total_params == count_parameters(build_model(config))


def test_wrn_28_10_totals() -> None:
    config = WRNConfig(depth=28, widen_factor=10)
    table = layer_table(config)
    result = totals(config, table=table)
    assert result.total_params == 36_479_194
    assert abs(result.total_macs - 5.24e9) / 5.24e9 < 0.01
    assert result.model_size_mb == pytest.approx(36_479_194 * 4 / 2**20)
    assert "Total params: 36,479,194" in format_table(table, result)


def test_columns_and_types() -> None:
    table = layer_table(SMALL[0])
    assert tuple(table.columns) == LAYER_COLUMNS
    assert str(table["block"].dtype) == "Int64"
    assert list(table["index"]) == list(range(len(table)))
    for column in ("params", "macs", "out_c", "out_h", "out_w", "in_channels", "out_channels", "stride"):
        assert pd.api.types.is_integer_dtype(table[column])
    assert table.loc[table["group"].isin(["stem", "head"]), "block"].isna().all()
    assert table.loc[table["group"].str.startswith("group"), "block"].notna().all()


def test_groups_in_forward_order() -> None:
    table = layer_table(WRNConfig.from_blocks(2, 1))
    # Consecutive distinct groups, in order.
    groups = [g for i, g in enumerate(table["group"]) if i == 0 or g != table["group"].iloc[i - 1]]
    assert groups == ["stem", "group 1", "group 2", "group 3", "head"]
    assert table.iloc[0]["layer"] == "stem" and table.iloc[0]["kind"] == "conv3x3"
    assert list(table["layer"].iloc[-5:]) == ["head.bn", "head.relu", "head.pool", "head.flatten", "head.fc"]
    assert list(table["kind"].iloc[-5:]) == ["batchnorm", "relu", "avgpool", "flatten", "linear"]
    blocks = table[table["group"] == "group 2"]["block"]
    assert list(blocks.unique()) == [1, 2]


@pytest.mark.parametrize("k", [1, 2])
def test_widths_and_shapes(k: int) -> None:
    table = layer_table(WRNConfig.from_blocks(1, k))
    groups = group_table(table).set_index("group")
    assert groups.loc["stem", "out_channels"] == 16
    assert groups.loc["group 1", "out_channels"] == 16 * k
    assert groups.loc["group 2", "out_channels"] == 32 * k
    assert groups.loc["group 3", "out_channels"] == 64 * k
    assert groups.loc["group 1", "output_shape"] == f"{16 * k}×32×32"
    assert groups.loc["group 2", "output_shape"] == f"{32 * k}×16×16"
    assert groups.loc["group 3", "output_shape"] == f"{64 * k}×8×8"
    assert groups.loc["head", "output_shape"] == "10"
    flatten = table[table["kind"] == "flatten"].iloc[0]
    assert flatten["output_shape"] == str(64 * k) and (flatten["out_h"], flatten["out_w"]) == (1, 1)


def test_convs_strides_and_channels() -> None:
    table = layer_table(WRNConfig.from_blocks(2, 2))
    row = table.set_index("layer")
    assert row.loc["group2.0.conv1", "stride"] == 2
    assert row.loc["group2.0.conv1", "in_channels"] == 32
    assert row.loc["group2.0.conv1", "out_channels"] == 64
    assert row.loc["group2.1.conv1", "stride"] == 1
    assert row.loc["group2.0.bn1", "in_channels"] == row.loc["group2.0.bn1", "out_channels"] == 32
    assert row.loc["head.fc", "in_channels"] == 128 and row.loc["head.fc", "out_channels"] == 10
    # MACs of a conv = params x output H x W.
    conv = row.loc["group3.1.conv2"]
    assert conv["macs"] == conv["params"] * conv["out_h"] * conv["out_w"]


@pytest.mark.parametrize(("k", "expected"), [(1, ["group2.0.shortcut", "group3.0.shortcut"]),
                                             (2, ["group1.0.shortcut", "group2.0.shortcut", "group3.0.shortcut"])])
def test_projection_rows(k: int, expected: list[str]) -> None:
    table = layer_table(WRNConfig.from_blocks(2, k))
    projections = table[table["kind"] == "conv1x1 (projection)"]
    assert list(projections["layer"]) == expected
    assert list(projections["block"]) == [1] * len(expected)
    blocks = block_table(table)
    assert int(blocks["projection"].sum()) == len(expected)


def test_dropout_rows_only_with_dropout() -> None:
    assert not (layer_table(WRNConfig.from_blocks(1, 1))["kind"] == "dropout").any()
    table = layer_table(WRNConfig.from_blocks(1, 1, dropout=0.3))
    dropouts = table[table["kind"] == "dropout"]
    assert len(dropouts) == 3  # one per block
    assert (dropouts["params"] == 0).all()


@pytest.mark.parametrize("config", SMALL, ids=lambda c: c.name)
def test_aggregations_sum_to_totals(config: WRNConfig) -> None:
    table = layer_table(config)
    total = totals(config, table=table)
    groups = group_table(table)
    blocks = block_table(table)
    assert list(groups["group"]) == ["stem", "group 1", "group 2", "group 3", "head"]
    assert list(groups["blocks"]) == [0, config.blocks, config.blocks, config.blocks, 0]
    assert int(groups["params"].sum()) == total.total_params
    assert int(groups["macs"].sum()) == total.total_macs
    assert groups["params_pct"].sum() == pytest.approx(100.0)
    assert groups["macs_pct"].sum() == pytest.approx(100.0)
    assert len(blocks) == 2 + 3 * config.blocks
    assert int(blocks["params"].sum()) == total.total_params
    assert int(blocks["macs"].sum()) == total.total_macs
    assert groups.iloc[0]["in_channels"] == config.in_channels


def test_other_resolutions() -> None:
    config = WRNConfig.from_blocks(1, 1)
    small = layer_table(config, image_size=8)
    large = layer_table(config, image_size=64)
    assert small["params"].sum() == large["params"].sum()
    assert group_table(small).set_index("group").loc["group 3", "output_shape"] == "64×2×2"
    assert group_table(large).set_index("group").loc["group 3", "output_shape"] == "64×16×16"
    assert totals(config, 64, large).total_macs > 10 * totals(config, 8, small).total_macs
    with pytest.raises(ConfigError):
        layer_table(config, image_size=7)


def test_memoized_copy_is_independent() -> None:
    config = WRNConfig.from_blocks(1, 1)
    first = layer_table(config)
    first.loc[0, "params"] = -1
    assert layer_table(config).loc[0, "params"] == 432


def test_totals_fields() -> None:
    config = WRNConfig.from_blocks(1, 1, num_classes=5)
    result = totals(config, image_size=16)
    assert isinstance(result, ModelTotals)
    assert (result.name, result.depth, result.blocks, result.widen_factor) == ("WRN-10-1", 10, 1, 1)
    assert (result.num_classes, result.image_size) == (5, 16)
    assert result.activation_mb_per_image > 0


def test_training_memory() -> None:
    result = totals(WRNConfig.from_blocks(1, 2))
    small = training_memory_mb(result, 32)
    large = training_memory_mb(result, 256)
    adam = training_memory_mb(result, 32, optimizer="adam")
    fp32 = training_memory_mb(result, 32, amp=False)
    keys = {"weights", "gradients", "optimizer_state", "activations", "workspace", "total"}
    assert set(small) == keys
    assert large["total"] > small["total"]
    assert large["activations"] == pytest.approx(8 * small["activations"])
    assert adam["total"] > small["total"]
    assert adam["optimizer_state"] == pytest.approx(2 * small["optimizer_state"])
    assert fp32["activations"] == pytest.approx(2 * small["activations"])
    assert small["total"] == pytest.approx(sum(v for k, v in small.items() if k != "total"))
    with pytest.raises(ConfigError):
        training_memory_mb(result, 32, optimizer="lion")
    with pytest.raises(ConfigError):
        training_memory_mb(result, 0)


def test_summary_dict_is_json() -> None:
    config = WRNConfig.from_blocks(1, 1, dropout=0.3)
    data = summary_dict(config)
    text = json.dumps(data)
    assert json.loads(text) == data
    for key in ("name", "depth", "blocks", "widen_factor", "num_classes", "dropout", "image_size",
                "total_params", "total_macs", "model_size_mb", "groups", "layers"):
        assert key in data
    assert data["total_params"] == count_parameters(build_model(config))
    assert data["dropout"] == 0.3
    assert len(data["groups"]) == 5
    layer = data["layers"][0]
    for key in ("out_channels", "output_shape", "params", "macs", "layer", "kind", "group", "block"):
        assert key in layer
    assert layer["block"] is None  # stem
    assert data["layers"][1]["block"] == 1
    assert sum(row["params"] for row in data["layers"]) == data["total_params"]


def test_format_table() -> None:
    config = WRNConfig.from_blocks(1, 1)
    table = layer_table(config)
    text = format_table(table, totals(config, table=table))
    assert text.startswith("WRN-10-1")
    assert f"Total params: {count_parameters(build_model(config)):,}" in text
    assert "Multiply-accumulates per image:" in text
    assert "group2.0.shortcut" in text


def _autograd_saved_bytes_per_image(config: WRNConfig, image_size: int) -> float:
    """Bytes that torch's autograd really saves for backward (parameters excluded), per image."""
    import torch
    import torch.nn.functional as F

    model = build_model(config, initialize=False).train()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[tuple[int, torch.dtype], int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[(storage.data_ptr(), tensor.dtype)] = storage.nbytes()
        return tensor

    images = torch.randn(2, config.in_channels, image_size, image_size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        F.cross_entropy(model(images), torch.tensor([0, 1]))
    return sum(saved.values()) / 2


@pytest.mark.parametrize(
    "config, image_size",
    [
        (WRNConfig(depth=10, widen_factor=1), 32),
        (WRNConfig(depth=16, widen_factor=2, dropout=0.3), 32),
        (WRNConfig(depth=10, widen_factor=2, num_classes=100, in_channels=1), 20),
    ],
)
def test_activation_memory_matches_what_autograd_saves(config, image_size):
    predicted = totals(config, image_size=image_size).activation_mb_per_image * 2**20
    measured = _autograd_saved_bytes_per_image(config, image_size)
    assert predicted == pytest.approx(measured, rel=0.02)
