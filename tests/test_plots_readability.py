"""Figures a first-time user reads right: smoothing never rewrites per-epoch points, runs on different data
are told apart, and log axes label every tick in full."""

from __future__ import annotations

import pytest

from wrn_core.analysis import runs_frame
from wrn_core.plots import acc_vs_params_figure, compare_figure
from wrn_core.plots.style import log_ticks, tick_label
from wrn_core.reference import PAPER_CAPTION

from figures import traces_by_axis
from metric_records import epoch, step, summary

# A run whose test accuracy climbs to 98.8% over eight epochs, with per-step train points.
CLIMB = [0.30, 0.55, 0.70, 0.80, 0.88, 0.93, 0.96, 0.988]
RECORDS = [r for n, acc in enumerate(CLIMB, start=1)
           for r in (step(4 * n - 2, n - 0.5, 2.0 / n, acc - 0.05), step(4 * n, n, 1.9 / n, acc), epoch(n, 4 * n, acc, 1.3 - 0.05 * n))]


def test_smoothing_leaves_the_per_epoch_test_curve_as_measured():
    fig = compare_figure({"a": RECORDS}, smoothing=0.9)
    test_acc = [t for t in traces_by_axis(fig)["x3"] if t.name == "a"]
    assert len(test_acc) == 1 and list(test_acc[0].y) == pytest.approx([100 * acc for acc in CLIMB])
    assert test_acc[0].y[-1] == pytest.approx(98.8)  # not ~92%, as an EMA over 8 epochs drew it


def test_smoothed_step_curves_keep_the_raw_curve_faintly_behind():
    fig = compare_figure({"a": RECORDS}, smoothing=0.9)
    train_acc = traces_by_axis(fig)["x"]
    raw = [t for t in train_acc if t.opacity is not None and t.opacity < 1]
    smoothed = [t for t in train_acc if t.opacity is None]
    assert len(raw) == 1 and len(smoothed) == 1 and raw[0].line.color == smoothed[0].line.color
    assert raw[0].y[-1] == pytest.approx(98.8) and smoothed[0].y[-1] < raw[0].y[-1]
    assert fig.data.index(raw[0]) < fig.data.index(smoothed[0])  # drawn first: behind
    assert not [t for t in compare_figure({"a": RECORDS}).data if t.opacity is not None]  # no smoothing: one curve


def _frame():
    return runs_frame([
        summary("syn", dataset="synthetic", params=78_000, best_test_acc=0.988),
        summary("c10", dataset="cifar10", model_name="WRN-16-8", params=11_000_000, best_test_acc=0.27),
    ])


def test_acc_vs_params_marks_each_dataset_apart():
    fig = acc_vs_params_figure(_frame())
    runs = [t for t in fig.data if t.name != PAPER_CAPTION]
    assert sorted(t.name for t in runs) == ["CIFAR-10 runs", "synthetic runs"]
    assert runs[0].marker.color != runs[1].marker.color and runs[0].marker.symbol != runs[1].marker.symbol
    assert [list(t.text) for t in runs if t.name == "synthetic runs"] == [["syn"]]


def test_the_papers_cifar10_points_show_only_beside_cifar10_runs():
    assert [t for t in acc_vs_params_figure(_frame()).data if t.name == PAPER_CAPTION]
    synthetic_only = runs_frame([summary("syn", dataset="synthetic", params=78_000)])
    assert not [t for t in acc_vs_params_figure(synthetic_only).data if t.name == PAPER_CAPTION]


def test_parameter_axis_labels_every_tick_in_full():
    axis = acc_vs_params_figure(_frame()).layout.xaxis
    assert axis.type == "log" and axis.tickvals and len(axis.tickvals) == len(axis.ticktext)
    assert {"100k", "1M", "10M"} <= set(axis.ticktext)
    assert all(text == tick_label(value) for value, text in zip(axis.tickvals, axis.ticktext))


def test_log_cost_axis_reads_0_9_not_9():
    fig = compare_figure({"a": RECORDS}, log_cost=True)
    axis = fig.layout.yaxis4  # test cost: 1.25 down to 0.9
    assert axis.type == "log" and "0.9" in axis.ticktext and "1" in axis.ticktext


@pytest.mark.parametrize("values, expected", [
    ((20_000, 3_000_000), ["20k", "50k", "100k", "200k", "500k", "1M", "2M"]),
    ((0.85, 1.3), ["0.8", "0.9", "1"]),
    ((0.92, 0.98), ["0.92", "0.94", "0.96", "0.98"]),  # under one tick per mantissa: values across the range
    ((1e10, 1e15), ["10G", "100G", "1T", "10T", "100T", "1P"]),
])
def test_log_ticks_are_full_values(values, expected):
    assert [tick_label(v) for v in log_ticks(values)] == expected
