"""Tests for the width meter: its per-channel sums against a direct computation, and the participation ratio."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wrn_core.engine.width import WidthMeter, _channel_sums, group_totals
from wrn_core.model.names import group_of


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(7, 5, 6, 4), (3, 2, 300, 300)])  # one part; many parts on the CPU
def test_channel_sums_match_a_direct_computation(channels_last, shape):
    x = torch.relu(torch.randn(*shape, generator=torch.Generator().manual_seed(0)))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    zeros, squares, positions = _channel_sums(x)
    assert positions == shape[0] * shape[2] * shape[3]
    assert zeros.tolist() == x.eq(0).sum(dim=(0, 2, 3)).tolist()
    assert squares.tolist() == pytest.approx(x.double().square().sum(dim=(0, 2, 3)).tolist(), rel=1e-4)  # float32 sums within a part


def test_effective_width_is_the_participation_ratio_and_dead_channels_are_counted():
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    meter = WidthMeter(model)
    x = torch.zeros(10, 4, 3, 3)
    x[:, 0] = 1.0  # e = 1
    x[:, 1] = 1.0  # e = 1
    x[0, 2, 0, 0] = 3.0  # zero at 89/90 positions (98.9%): alive, e = 0.1
    # channel 3: always zero -> dead
    model(x)
    (row,) = meter.rows()
    meter.remove()
    energy = torch.tensor([1.0, 1.0, 9.0 / 90, 0.0])
    assert row["effective_width"] == pytest.approx(float(energy.sum() ** 2 / energy.square().sum()))
    assert row["dead_channels"] == 1 and row["dead_indices"] == [3] and row["active_fraction"] == 0.75
    assert row["layer"] == "1" and row["channels"] == 4


def test_group_names_and_totals():
    assert group_of("group2.0.relu1") == "group 2" and group_of("head.relu") == "head"
    rows = [{"layer": "group1.0.relu1", "group": "group 1", "channels": 16, "dead_channels": 4, "effective_width": 8.0},
            {"layer": "group1.0.relu2", "group": "group 1", "channels": 32, "dead_channels": 0, "effective_width": 32.0}]
    (total,) = group_totals(rows)
    assert total["channels"] == 48 and total["dead_channels"] == 4
    assert total["active_fraction"] == pytest.approx(44 / 48) and total["effective_fraction"] == pytest.approx(0.75)
