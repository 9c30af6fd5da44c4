"""wrn_core.plots.groups: mean lines over filled ±std bands per group (members' own curves beneath, colours per run),
and parallel coordinates with labelled categories and whole-number ticks on whole-number axes."""

from __future__ import annotations

import pandas as pd
import pytest

from wrn_core.analysis import group_curves, member_curves, runs_frame
from wrn_core.plots import group_curves_figure, parallel_coordinates_figure

from metric_records import summary


GROUPS = {"WRN-10-1": ["a", "b"], "WRN-10-2": ["c"]}


def curves() -> pd.DataFrame:
    """Test accuracy of runs a, b (WRN-10-1) and c (WRN-10-2) at epochs 1 and 2; b has a third epoch."""
    rows = [("a", 1, 0.2), ("a", 2, 0.4), ("b", 1, 0.4), ("b", 2, 0.6), ("b", 3, 0.65), ("c", 1, 0.5), ("c", 2, 0.7)]
    return pd.DataFrame([(r, "test_acc", "epoch", float(x), v) for r, x, v in rows],
                        columns=["run", "metric", "source", "x", "value"])


def banded() -> pd.DataFrame:
    return group_curves(curves(), GROUPS)


def test_each_group_of_several_runs_has_a_filled_band_under_its_mean_line():
    fig = group_curves_figure(banded(), "test_acc")
    assert len(fig.data) == 4  # the pair: upper edge, filled lower edge, mean; the single run: its line alone
    upper, lower, mean, single = fig.data
    assert lower.fill == "tonexty" and lower.fillcolor.startswith("rgba(") and upper.fill is None
    assert list(mean.y) == pytest.approx([30.0, 50.0])  # accuracies in percent
    assert list(upper.y) == pytest.approx([30.0 + 14.1421, 50.0 + 14.1421], abs=1e-3)
    assert list(lower.y) == pytest.approx([30.0 - 14.1421, 50.0 - 14.1421], abs=1e-3)
    assert mean.name == "WRN-10-1 (n=2)" and single.name == "WRN-10-2 (n=1)" and single.fill is None
    assert mean.line.color != single.line.color
    assert fig.layout.yaxis.title.text == "test accuracy (%)" and fig.layout.xaxis.title.text == "epoch"
    timed = group_curves_figure(banded(), "test_acc", x="time")
    assert timed.layout.xaxis.title.text == "training time (s)"  # with its unit, as the per-run view says it
    empty = group_curves_figure(banded(), "train_loss")
    assert len(empty.data) == 0 and empty.layout.annotations


def test_members_own_curves_lie_under_their_band_in_their_run_colours():
    colors = {"a": "#111111", "b": "#222222", "c": "#333333", "WRN-10-1": "#636efa", "WRN-10-2": "#333333"}
    fig = group_curves_figure(banded(), "test_acc", colors=colors, members=member_curves(curves(), GROUPS))
    names = [t.name for t in fig.data]
    # Per group, its members first (under the band), then the band's edges, then the mean line.
    assert names == ["a", "b", "WRN-10-1 (n=2) +std", "WRN-10-1 (n=2) -std", "WRN-10-1 (n=2)", "c", "WRN-10-2 (n=1)"]
    a, b = fig.data[0], fig.data[1]
    assert list(a.x) == [1.0, 2.0] and list(a.y) == pytest.approx([20.0, 40.0])  # percent, where the run has points
    assert list(b.x) == [1.0, 2.0, 3.0] and list(b.y) == pytest.approx([40.0, 60.0, 65.0])  # past the band's end
    assert (a.line.color, b.line.color) == ("#111111", "#222222") and a.opacity < 1 and a.showlegend is False
    assert a.legendgroup == b.legendgroup == "WRN-10-1"  # the group's legend entry hides them with it
    mean, single = fig.data[4], fig.data[6]
    assert mean.line.color == "#636efa" and single.line.color == fig.data[5].line.color == "#333333"
    assert [t.name for t in group_curves_figure(banded(), "test_acc", colors=colors).data] == [
        "WRN-10-1 (n=2) +std", "WRN-10-1 (n=2) -std", "WRN-10-1 (n=2)", "WRN-10-2 (n=1)"]  # members off


def test_whole_number_axes_have_whole_number_ticks():
    frame = runs_frame([
        summary(f"r{i}", widen_factor=k, depth=6 * n + 4, epochs=e, lr=lr, best_test_acc=0.4 + 0.05 * i)
        for i, (k, n, e, lr) in enumerate([(1, 1, 2, 0.1), (2, 2, 3, 0.05), (4, 1, 2, 0.1), (8, 3, 3, 0.05)])
    ])
    fig = parallel_coordinates_figure(frame, ["widen_factor", "blocks", "planned_epochs", "lr"])
    k, n, epochs, lr, target = fig.data[0].dimensions
    assert list(k.tickvals) == [1, 2, 4, 8] and list(k.ticktext) == ["1", "2", "4", "8"]
    assert list(n.tickvals) == [1, 2, 3] and list(epochs.tickvals) == [2, 3] and list(epochs.ticktext) == ["2", "3"]
    assert all(float(t).is_integer() for d in (k, n, epochs) for t in d.tickvals)
    assert lr.tickvals is None  # a learning rate is a real number: plotly's own ticks
    assert target.tickformat == ".2f"
    assert fig.data[0].labelangle == -25 and fig.data[0].labelside == "top"  # axis names tilted: neighbours never overlap
    assert list(parallel_coordinates_figure(frame.assign(planned_epochs=[10, 200, 55, 120]), ["planned_epochs"])
                .data[0].dimensions[0].tickvals) == [10, 55, 120, 200]  # few values: each one
    long = runs_frame([summary(f"e{e}", epochs=e, best_test_acc=0.5 + e / 1000) for e in range(10, 210, 10)])
    ticks = list(parallel_coordinates_figure(long, ["planned_epochs"]).data[0].dimensions[0].tickvals)
    assert ticks[0] == 10 and len(ticks) <= 12 and all(isinstance(t, int) for t in ticks)  # 20 values: a stride
    assert len({b - a for a, b in zip(ticks, ticks[1:])}) == 1


def test_parallel_coordinates_label_categorical_params_and_colour_by_the_target():
    frame = runs_frame([
        summary("a", optimizer="sgd", widen_factor=1, best_test_acc=0.5),
        summary("b", optimizer="adam", widen_factor=2, best_test_acc=0.7),
        summary("c", optimizer="sgd", widen_factor=2, best_test_acc=0.6),
        summary("d", optimizer="adamw", widen_factor=4, best_test_acc=None),  # no target: left out
    ])
    fig = parallel_coordinates_figure(frame, ["optimizer", "widen_factor"])
    (trace,) = fig.data
    assert trace.type == "parcoords"
    optimizer, width, target = trace.dimensions
    assert optimizer.label == "optimizer" and list(optimizer.ticktext) == ["adam", "sgd"]
    assert list(optimizer.tickvals) == [0, 1]
    labels = [optimizer.ticktext[v] for v in optimizer.values]
    by_name = dict(zip(frame["name"], frame["optimizer"]))
    kept = [n for n in frame["name"] if n != "d"]
    assert labels == [by_name[n] for n in kept]
    assert list(width.ticktext) == ["1", "2"] and sorted(width.values) == [1.0, 2.0, 2.0]
    assert target.label == "best test acc (%)" and sorted(target.values) == pytest.approx([50.0, 60.0, 70.0])
    assert list(trace.line.color) == list(target.values)
    nothing = parallel_coordinates_figure(frame.iloc[0:0], ["optimizer"])
    assert len(nothing.data) == 0 and nothing.layout.annotations
    # A sweep's cells_frame holds fractions: the same percent axis as everywhere else.
    cells = pd.DataFrame({"widen_factor": [1, 2], "best_test_acc": [0.326, 0.5]})
    (swept,) = parallel_coordinates_figure(cells, ["widen_factor"]).data
    assert swept.dimensions[-1].label == "best test acc (%)" and list(swept.dimensions[-1].values) == pytest.approx([32.6, 50.0])
