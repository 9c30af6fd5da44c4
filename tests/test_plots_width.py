"""The width-over-training figures: where the map draws each layer and epoch, and the runs' per-group panels."""

from __future__ import annotations

import math

import pytest

try:
    from width_runs import width_run
except ImportError:  # tests/ imported as a package
    from tests.width_runs import width_run

from wrn_core.analysis.width import group_frame, width_frame
from wrn_core.plots.width import group_width_figure, width_map
from wrn_core.store import RunStore

LAYERS = ["group1.0.relu1", "group1.0.relu2", "group2.0.relu1", "group2.0.relu2", "group3.0.relu1", "group3.0.relu2",
          "head.relu"]


def fraction(layer: str, epoch: int) -> float:
    """A different value for every (layer, epoch): 0.5 + layer index / 20 − epoch / 100."""
    return 0.5 + LAYERS.index(layer) / 20 - epoch / 100


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path)


def test_the_map_draws_each_layer_in_forward_order_at_its_row_and_each_epoch_at_its_column(store):
    run = width_run(store, "r", k=2, epochs=3, fraction=fraction, planned=10,
                    dead=lambda layer, channels, epoch: 8 if layer == "head.relu" and epoch >= 2 else 0)
    fig = width_map(width_frame(run.read_metrics()), planned_epochs=10)
    heat = fig.data[0]
    assert list(heat.x) == [1, 2, 3] and list(heat.y) == list(range(7))
    assert list(fig.layout.yaxis.ticktext) == LAYERS and list(fig.layout.yaxis.tickvals) == list(range(7))
    assert list(fig.layout.yaxis.range) == [6.5, -0.5]  # forward order from the top
    for row, layer in enumerate(LAYERS):
        for column, epoch in enumerate((1, 2, 3)):
            assert heat.z[row][column] == pytest.approx(fraction(layer, epoch))
    assert list(fig.layout.xaxis.range) == [0.5, 10.5]  # the planned epochs: later columns fill a fixed frame
    assert heat.zmin == 0 and heat.zmax == 1
    # Hover: effective channels, allocated, dead; head.relu (128 channels at k=2) has 8 dead from epoch 2.
    assert list(heat.customdata[6][1][:3]) == pytest.approx([fraction("head.relu", 2) * 128, 128, 8])
    # A line between groups (after group1.0.relu2, group2.0.relu2, group3.0.relu2) and each group named once.
    assert sorted(shape.y0 for shape in fig.layout.shapes) == [1.5, 3.5, 5.5]
    names = {a.text: a.y for a in fig.layout.annotations}
    assert names == {"<b>group 1</b>": 0.5, "<b>group 2</b>": 2.5, "<b>group 3</b>": 4.5, "<b>head</b>": 6}


def test_coloured_by_dead_channels_the_map_shows_their_share(store):
    run = width_run(store, "r", k=1, epochs=2, fraction=fraction,
                    dead=lambda layer, channels, epoch: 16 if layer == "head.relu" and epoch == 2 else 0)
    heat = width_map(width_frame(run.read_metrics()), color_by="dead").data[0]
    assert heat.z[6][1] == pytest.approx(16 / 64) and heat.z[6][0] == 0 and heat.z[0][1] == 0
    assert heat.zmax == pytest.approx(0.25)  # the largest share (above the 10% floor): a few dead are not full red


def test_an_epoch_not_measured_stays_a_blank_column(store):
    run = width_run(store, "r", k=1, epochs=4, fraction=fraction, measured=lambda epoch: epoch % 2 == 0)
    heat = width_map(width_frame(run.read_metrics())).data[0]
    assert list(heat.x) == [1, 2, 3, 4]
    assert all(math.isnan(heat.z[row][0]) and math.isnan(heat.z[row][2]) for row in range(7))
    assert heat.z[0][1] == pytest.approx(fraction(LAYERS[0], 2))


def test_a_run_without_width_records_gets_a_placeholder_not_an_empty_frame(store):
    run = width_run(store, "r", k=1, epochs=2, fraction=fraction, measured=lambda epoch: False)
    fig = width_map(width_frame(run.read_metrics()), planned_epochs=5)
    assert not fig.data and "first epoch" in fig.layout.annotations[0].text
    assert list(fig.layout.xaxis.range) == [0.5, 5.5]


def test_runs_of_different_k_line_up_in_one_panel_per_group(store):
    narrow = width_run(store, "k1", k=1, epochs=3, fraction=fraction)
    wide = width_run(store, "k8", k=8, epochs=2, fraction=lambda layer, epoch: 0.25)
    fig = group_width_figure([("k1", group_frame(narrow.read_metrics()), "#111111"),
                              ("k8", group_frame(wide.read_metrics()), "#222222")])
    assert [a.text for a in fig.layout.annotations] == ["group 1", "group 2", "group 3", "head"]
    by_panel: dict[str, dict[str, object]] = {}
    for trace in fig.data:
        by_panel.setdefault(trace.xaxis, {})[trace.name] = trace
    assert sorted(by_panel) == ["x", "x2", "x3", "x4"]
    group3 = by_panel["x3"]  # group 3: group3.0.relu1 and relu2, the mean of their shares
    assert list(group3["k1"].x) == [1, 2, 3] and list(group3["k8"].x) == [1, 2]
    expected = [100 * (fraction("group3.0.relu1", e) + fraction("group3.0.relu2", e)) / 2 for e in (1, 2, 3)]
    assert list(group3["k1"].y) == pytest.approx(expected)
    assert list(group3["k8"].y) == pytest.approx([25.0, 25.0])
    assert group3["k1"].line.color == "#111111" and group3["k8"].line.color == "#222222"
    assert [t.showlegend for t in fig.data if t.name == "k8"] == [True, False, False, False]  # one legend entry a run
    assert list(fig.layout.yaxis.range) == [0, 105]
    assert list(group3["k8"].customdata[0]) == [32 * 8 + 64 * 8, 0]  # the group's channels and dead, on hover


def test_no_measured_run_gets_a_placeholder():
    fig = group_width_figure([])
    assert not fig.data and "no width records" in fig.layout.annotations[-1].text
