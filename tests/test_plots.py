"""wrn_core.plots: the live 2x2 figure, run overlays, the width chart, accuracy vs parameters and the sweep figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from wrn_core.analysis import runs_frame
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.plots import (
    PANEL_TITLES,
    acc_vs_params_figure,
    compare_figure,
    live_figure,
    sweep_heatmap,
    sweep_small_multiples,
    sweep_tradeoff_figure,
    width_figure,
)
from wrn_core.reference import OFFICIAL_LOG_LABEL, PAPER_CAPTION, official_curve
from wrn_core.store import RunStore
from wrn_core.sweeps import cells_frame, grid_frame, make_sweep

from metric_records import RECORDS, epoch, summary




def traces_by_axis(fig: go.Figure) -> dict[str, list]:
    axes: dict[str, list] = {}
    for trace in fig.data:
        axes.setdefault(trace.xaxis or "x", []).append(trace)
    return axes


def titles(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


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


def layer_table_like(widths: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": range(len(widths)),
            "group": [g for g, _ in widths],
            "layer": [f"l{i}" for i in range(len(widths))],
            "kind": ["conv3x3"] * len(widths),
            "output_shape": ["?"] * len(widths),
            "out_channels": [w for _, w in widths],
        }
    )


def test_width_figure_step_chart_with_groups_and_jumps():
    table = layer_table_like(
        [("stem", 16), ("group 1", 16), ("group 1", 128), ("group 2", 128), ("group 2", 256), ("group 3", 256), ("group 3", 512), ("head", 10)]
    )
    fig = width_figure(table)
    assert len(fig.data) == 1
    assert fig.data[0].line.shape == "hv"
    assert list(fig.data[0].y) == [16, 16, 128, 128, 256, 256, 512, 10]
    texts = titles(fig)
    assert any("group 1" in t for t in texts) and any("group 3" in t for t in texts)
    assert {"16→128", "128→256", "256→512"} <= set(texts)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) >= 5 + 3  # 5 shaded groups + 3 boxed jumps

    narrow = layer_table_like([("stem", 16), ("group 1", 16), ("group 2", 32), ("group 3", 64), ("head", 10)])
    both = width_figure([("wide", table), ("narrow", narrow)])
    assert [t.name for t in both.data] == ["wide", "narrow"]
    assert both.data[0].line.color != both.data[1].line.color


def test_width_figure_from_real_layer_table():
    summary_module = pytest.importorskip("wrn_core.summary")
    from wrn_core.config import WRNConfig

    table = summary_module.layer_table(WRNConfig(depth=10, widen_factor=2))
    fig = width_figure(table)
    assert max(fig.data[0].y) == 128  # 64k with k=2
    assert {"16→32", "32→64", "64→128"} <= set(titles(fig))


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
    fig = acc_vs_params_figure(runs_frame([summary("a")]))
    paper = [t for t in fig.data if t.name == PAPER_CAPTION]
    assert PAPER_CAPTION == "paper, 200 epochs" and len(paper) == 1
    assert list(paper[0].text) == ["WRN-40-4", "WRN-16-8", "WRN-28-10"]  # labelled points
    assert list(paper[0].x) == [8_949_210, 10_961_370, 36_479_194]
    assert list(paper[0].y) == pytest.approx([95.47, 95.73, 96.00])
    assert paper[0].marker.symbol != [t for t in fig.data if t.name != PAPER_CAPTION][0].marker.symbol
    assert fig.layout.showlegend
    empty = acc_vs_params_figure(runs_frame([]))
    assert [t.name for t in empty.data] == [PAPER_CAPTION] and any("no run" in t for t in titles(empty))



# ---------------------------------------------------------------------------------------------
# Sweep figures

SWEEP_BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, epochs=2,
                         device="cpu")


def sweep_cells(tmp_path, seeds=(0,), accuracies=None) -> pd.DataFrame:
    """A 2 × 2 (× seeds) cells_frame with made-up results; None leaves a cell pending."""
    frame = cells_frame(RunStore(tmp_path), make_sweep("fig", SWEEP_BASE, [1, 2], [1, 2], seeds=list(seeds)))
    accuracies = accuracies if accuracies is not None else [0.1 * (i + 1) for i in range(len(frame))]
    frame["best_test_acc"] = accuracies
    frame["final_test_acc"] = accuracies
    frame["train_seconds"] = [None if a is None else 10.0 * (i + 1) for i, a in enumerate(accuracies)]
    frame["status"] = ["pending" if a is None else "finished" for a in accuracies]
    return frame


def cell_records(accuracies: list[float]) -> list[dict]:
    return [epoch(e, 5 * e, acc) for e, acc in enumerate(accuracies, start=1)]


def test_sweep_heatmap_values_blanks_and_spread(tmp_path):
    frame = sweep_cells(tmp_path, accuracies=[0.1, 0.2, 0.3, None])
    fig = sweep_heatmap(grid_frame(frame, "best_test_acc"), "best_test_acc")
    heat = fig.data[0]
    assert heat.type == "heatmap"
    assert list(heat.y) == ["N=1 (depth 10)", "N=2 (depth 16)"] and list(heat.x) == ["k=1", "k=2"]
    assert [list(row) for row in heat.z] == [pytest.approx([10.0, 20.0]), [pytest.approx(30.0), None]]  # percent; pending blank
    assert heat.text[0][0] == "10.0%" and heat.text[1][1] == ""
    params = sweep_heatmap(grid_frame(frame, "params"), "params").data[0]
    assert params.z[1][1] == 691674 and params.text[1][1] == "0.69 M"  # known before training
    assert "training time" in sweep_heatmap(grid_frame(frame, "train_seconds"), "train_seconds").layout.title.text

    seeds = sweep_cells(tmp_path, seeds=(0, 1), accuracies=[0.1, 0.3, 0.5, 0.5, 0.2, 0.2, 0.8, 0.9])
    fig = sweep_heatmap(grid_frame(seeds, "best_test_acc"), "best_test_acc", grid_frame(seeds, "best_test_acc", agg="std"))
    assert fig.data[0].text[0][0] == "20.0% ± 14.1" and fig.data[0].text[0][1] == "50.0%"  # equal seeds: no ±
    empty = sweep_heatmap(grid_frame(sweep_cells(tmp_path, accuracies=[None] * 4), "best_test_acc"), "best_test_acc")
    assert any("no cell has" in t for t in titles(empty))


def test_sweep_tradeoff_front_paper_and_error_bars(tmp_path):
    frame = sweep_cells(tmp_path, accuracies=[0.2, 0.3, 0.5, 0.4])  # params: 77,850 / 303,706 / 175,066 / 691,674
    fig = sweep_tradeoff_figure(frame, "params")
    paper = [t for t in fig.data if t.name == PAPER_CAPTION]
    assert len(paper) == 1 and list(paper[0].text) == ["WRN-40-4", "WRN-16-8", "WRN-28-10"]
    cells = next(t for t in fig.data if t.name == "cell")
    assert list(cells.x) == [77850, 175066, 303706, 691674] and list(cells.y) == pytest.approx([20, 50, 30, 40])
    assert not cells.error_y.visible  # one seed: no error bars
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [77850, 175066] and list(front.y) == pytest.approx([20, 50])  # the bigger ones are worse
    assert fig.layout.xaxis.type == "log"

    macs = sweep_tradeoff_figure(frame, "macs")
    paper_macs = next(t for t in macs.data if t.name == PAPER_CAPTION)
    assert list(paper_macs.x) == [macs_per_image(WRNConfig(depth=d, widen_factor=k), 32) for d, k in ((40, 4), (16, 8), (28, 10))]
    timed = sweep_tradeoff_figure(frame, "train_seconds")
    assert not [t for t in timed.data if t.name == PAPER_CAPTION]  # the paper's times are not comparable
    assert timed.layout.xaxis.type == "linear"

    seeds = sweep_tradeoff_figure(sweep_cells(tmp_path, seeds=(0, 1), accuracies=[0.1, 0.3, 0.5, 0.5, 0.2, 0.2, 0.8, 0.9]))
    means = next(t for t in seeds.data if t.name == "mean ± std over seeds")
    assert means.error_y.visible and list(means.error_y.array)[0] == pytest.approx(14.142, abs=1e-3)
    assert len(next(t for t in seeds.data if t.name == "each seed").x) == 8
    empty = sweep_tradeoff_figure(sweep_cells(tmp_path, accuracies=[None] * 4))
    assert [t.name for t in empty.data] == [PAPER_CAPTION] and any("no cell" in t for t in titles(empty))


def test_sweep_small_multiples_panels_bands_and_reference(tmp_path):
    frame = sweep_cells(tmp_path, accuracies=[0.2, 0.3, 0.4, None])
    records = {run: cell_records([0.1 * (i + 1), 0.1 * (i + 2)]) for i, run in enumerate(frame["run"][:3])}  # one pending
    fig = sweep_small_multiples(frame, records)
    assert titles(fig) == ["WRN-10-1", "WRN-10-2", "WRN-16-1", "WRN-16-2 · pending"]  # N down, k across
    by_axis = {axis: [t for t in traces if len(t.y)] for axis, traces in traces_by_axis(fig).items()}
    assert sorted(by_axis) == ["x", "x2", "x3", "x4"]  # every panel has axes…
    assert not by_axis["x4"] and all(by_axis[a] for a in ("x", "x2", "x3"))  # …the pending cell's has no points
    assert list(by_axis["x3"][0].y) == pytest.approx([30.0, 40.0])  # WRN-16-1, in percent
    assert list(fig.layout.xaxis.range) == [0.5, 2.5]  # the sweep's 2 epochs
    assert fig.layout.yaxis4.range[1] >= 40.0  # every panel shows every point
    assert sum(bool(t.showlegend) for t in fig.data) == 1  # "seed 0", once

    seeds = sweep_cells(tmp_path, seeds=(0, 1))
    seeds.loc[7, "status"] = "running"
    records = {run: cell_records([0.2, 0.1 * (i + 1)]) for i, run in enumerate(seeds["run"])}
    fig = sweep_small_multiples(seeds, records, reference=official_curve("epoch"))
    assert titles(fig)[-1] == "WRN-16-2 · 1/2 ended"
    first = traces_by_axis(fig)["x"]
    assert [t.name for t in first if t.name and t.name.startswith("seed")] == ["seed 0", "seed 1"]
    band = [t for t in first if t.fill == "tonexty"]
    assert len(band) == 1 and list(band[0].y) == pytest.approx([20.0, 15.0 - 7.0711], abs=1e-3)  # mean - std
    reference = [t for t in fig.data if t.name == OFFICIAL_LOG_LABEL]
    assert len(reference) == 4 and len(reference[0].x) == 200 and sum(bool(t.showlegend) for t in reference) == 1
    assert any("waiting" in t for t in titles(sweep_small_multiples(frame, {})))
