"""wrn_core.plots.training: the live 2x2 figure and run overlays."""

from __future__ import annotations

import pytest

from wrn_core.plots import PANEL_TITLES, compare_figure, live_figure
from wrn_core.reference import OFFICIAL_LOG_LABEL, official_curve

from figures import titles, traces_by_axis
from metric_records import RECORDS


def test_live_figure_four_panels_with_points():
    fig = live_figure(RECORDS)
    for title in PANEL_TITLES:
        assert title in titles(fig)
    axes = traces_by_axis(fig)
    assert set(axes) == {"x", "x2", "x3", "x4"}
    for axis, traces in axes.items():
        assert any(len(t.x) > 0 for t in traces), axis
    train_acc = [t for t in axes["x"] if t.name == "train (per step)"][0]
    assert list(train_acc.x) == [0.5, 1.0, 1.5, 2.0]
    assert list(train_acc.y) == pytest.approx([20.0, 30.0, 40.0, 50.0])  # percent
    test_acc = [t for t in axes["x3"] if t.name == "test (per epoch)"][0]
    assert list(test_acc.y) == pytest.approx([25.0, 45.0])
    best = [t for t in fig.data if t.name and t.name.startswith("best")]
    assert len(best) == 1 and list(best[0].x) == [2.0] and list(best[0].y) == pytest.approx([45.0])
    assert any("best 45.00%" in text for text in titles(fig))


def test_live_figure_empty_and_steps_only():
    empty = live_figure([])
    assert all(len(t.x) == 0 for t in empty.data)
    assert any("waiting" in text for text in titles(empty))
    steps_only = live_figure([r for r in RECORDS if r["kind"] == "step"])
    assert not [t for t in steps_only.data if t.name and t.name.startswith("best")]


def test_compare_figure_one_colour_per_run():
    other = [dict(r, test_acc=r.get("test_acc", 0) / 2) if r["kind"] == "epoch" else r for r in RECORDS]
    fig = compare_figure({"a": RECORDS, "b": other}, x="time", smoothing=0.3, log_cost=True)
    for title in PANEL_TITLES:
        assert title in titles(fig)
    colours = {}
    for trace in fig.data:
        colours.setdefault(trace.name, set()).add(trace.line.color)
    assert set(colours) == {"a", "b"}
    assert all(len(c) == 1 for c in colours.values()) and colours["a"] != colours["b"]
    assert sum(1 for t in fig.data if t.showlegend) == 2
    assert fig.layout.yaxis2.type == "log" and fig.layout.yaxis4.type == "log"
    assert fig.layout.yaxis.type != "log"
    assert fig.layout.xaxis3.title.text == "training time (s)"
    assert len(compare_figure({}).data) == 0


def test_compare_figure_flops_axis_and_reference_curve():
    reference = official_curve("flops")
    fig = compare_figure({"a": RECORDS}, x="flops", flops_per_image={"a": 6.0e6}, reference=reference, log_x=True)
    assert fig.layout.xaxis3.title.text == "training FLOPs (6 × MACs × images seen)"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis4.type == "log"
    run_test = [t for t in fig.data if t.name == "a" and t.xaxis == "x3"][0]
    assert list(run_test.x) == pytest.approx([128 * 6.0e6, 256 * 6.0e6])
    ref = [t for t in fig.data if t.name == OFFICIAL_LOG_LABEL]
    assert len(ref) == 1 and ref[0].xaxis == "x3" and ref[0].line.dash == "dash"  # the test-accuracy panel only
    assert len(ref[0].x) == 200 and ref[0].y[-1] == pytest.approx(94.89)  # percent, like the runs
    assert not [t for t in compare_figure({"a": RECORDS}).data if t.name == OFFICIAL_LOG_LABEL]


def test_live_panels_share_one_x_range_of_the_planned_epochs():
    # Two of 8 epochs done: the test panels have points at 1 and 2 only, the train panels at 0.5 … 2.
    fig = live_figure(RECORDS, epochs=8)
    ranges = [tuple(getattr(fig.layout, axis).range) for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4")]
    assert len(set(ranges)) == 1, ranges
    low, high = ranges[0]
    assert low <= 0 < 8 <= high < 8.5  # the whole run, a little padding so the end markers are drawn whole
    for trace in fig.data:
        assert all(low < x < high for x in trace.x)
    best = next(a for a in fig.layout.annotations if a.text.startswith("best"))
    assert best.xanchor == "center"  # epoch 2 of 8: room either side
    ended = live_figure(RECORDS, epochs=2)  # the best at the last epoch, the panel's right edge
    assert next(a for a in ended.layout.annotations if a.text.startswith("best")).xanchor == "right"


def test_live_panels_stretch_to_points_beyond_the_plan():
    # An extended run, or no plan known: the shared range reaches the last point.
    for epochs in (1, None):
        fig = live_figure(RECORDS, epochs=epochs)
        ranges = {tuple(getattr(fig.layout, axis).range) for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4")}
        assert len(ranges) == 1 and 2.0 < ranges.pop()[1] < 2.5
