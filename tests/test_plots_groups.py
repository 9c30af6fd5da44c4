"""wrn_core.plots.groups: mean lines over filled ±std bands per group, and parallel coordinates with labelled categories."""

from __future__ import annotations

import pandas as pd
import pytest

from wrn_core.analysis import group_curves, runs_frame
from wrn_core.plots import group_curves_figure, parallel_coordinates_figure

from metric_records import summary


def banded() -> pd.DataFrame:
    rows = [("a", 1, 0.2), ("a", 2, 0.4), ("b", 1, 0.4), ("b", 2, 0.6), ("c", 1, 0.5), ("c", 2, 0.7)]
    curves = pd.DataFrame([(r, "test_acc", "epoch", float(x), v) for r, x, v in rows],
                          columns=["run", "metric", "source", "x", "value"])
    return group_curves(curves, {"WRN-10-1": ["a", "b"], "WRN-10-2": ["c"]})


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
    assert fig.layout.yaxis.title.text == "test accuracy (%)"
    empty = group_curves_figure(banded(), "train_loss")
    assert len(empty.data) == 0 and empty.layout.annotations


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
    assert width.ticktext is None and sorted(width.values) == [1.0, 2.0, 2.0]
    assert target.label == "best test acc (%)" and sorted(target.values) == pytest.approx([50.0, 60.0, 70.0])
    assert list(trace.line.color) == list(target.values)
    nothing = parallel_coordinates_figure(frame.iloc[0:0], ["optimizer"])
    assert len(nothing.data) == 0 and nothing.layout.annotations
    # A sweep's cells_frame holds fractions: the same percent axis as everywhere else.
    cells = pd.DataFrame({"widen_factor": [1, 2], "best_test_acc": [0.326, 0.5]})
    (swept,) = parallel_coordinates_figure(cells, ["widen_factor"]).data
    assert swept.dimensions[-1].label == "best test acc (%)" and list(swept.dimensions[-1].values) == pytest.approx([32.6, 50.0])
