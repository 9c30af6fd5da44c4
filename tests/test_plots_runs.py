"""wrn_core.plots.runs: best test accuracy against parameters, with the paper's results."""

from __future__ import annotations

import pytest

from wrn_core.analysis import runs_frame
from wrn_core.plots import acc_vs_params_figure
from wrn_core.reference import PAPER_CAPTION

from figures import titles
from metric_records import summary


def test_acc_vs_params_figure():
    frame = runs_frame(
        [
            summary("a"),
            summary("b", model_name="WRN-16-8", params=11_000_000, best_test_acc=0.9),
            summary("c", best_test_acc=None),
        ]
    )
    fig = acc_vs_params_figure(frame, paper=False)
    assert fig.layout.xaxis.type == "log"
    points = {name for trace in fig.data for name in trace.text}
    assert points == {"a", "b"}  # c has no accuracy yet
    empty = acc_vs_params_figure(runs_frame([]), paper=False)
    assert len(empty.data) == 0 and any("no run" in t for t in titles(empty))


def test_acc_vs_params_figure_marks_the_papers_results():
    fig = acc_vs_params_figure(runs_frame([summary("a", dataset="cifar10")]))
    paper = [t for t in fig.data if t.name == PAPER_CAPTION]
    assert PAPER_CAPTION == "paper, 200 epochs" and len(paper) == 1
    assert list(paper[0].text) == ["WRN-40-4", "WRN-16-8", "WRN-28-10"]  # labelled points
    assert list(paper[0].x) == [8_949_210, 10_961_370, 36_479_194]
    assert list(paper[0].y) == pytest.approx([95.47, 95.73, 96.00])
    assert paper[0].marker.symbol != [t for t in fig.data if t.name != PAPER_CAPTION][0].marker.symbol
    assert fig.layout.showlegend
    empty = acc_vs_params_figure(runs_frame([]))  # the paper's CIFAR-10 points only beside CIFAR-10 runs
    assert [t.name for t in empty.data] == [] and any("no run" in t for t in titles(empty))
