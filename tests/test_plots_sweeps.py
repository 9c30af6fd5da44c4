"""wrn_core.plots.sweeps: the N × k heatmap, the accuracy trade-off and the small multiples per cell."""

from __future__ import annotations

import pandas as pd
import pytest

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.plots import sweep_heatmap, sweep_small_multiples, sweep_tradeoff_figure
from wrn_core.reference import OFFICIAL_LOG_LABEL, PAPER_CAPTION, official_curve
from wrn_core.store import RunStore
from wrn_core.sweeps import cells_frame, grid_frame, make_sweep

from figures import titles, traces_by_axis
from metric_records import epoch


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


def unfinished_cells(tmp_path) -> pd.DataFrame:
    """The reported sweep: two cells finished, one stopped at epoch 1 of 2 (25.0% so far), one running (14.6%)."""
    frame = sweep_cells(tmp_path, accuracies=[0.20, 0.30, 0.25, 0.146])  # WRN-10-1, WRN-10-2, WRN-16-1, WRN-16-2
    frame["status"] = ["finished", "finished", "stopped", "running"]
    frame["epochs"] = 2
    frame["epoch"] = [2, 2, 1, 1]
    return frame


def test_unfinished_cells_are_drawn_apart_from_results_never_on_the_colour_scale_or_the_front(tmp_path):
    from wrn_core.plots.sweeps import FRONT_COLOR, OFF_FRONT_COLOR, UNFINISHED_FILL
    from wrn_core.sweeps import cells_table, unfinished_grid

    frame = unfinished_cells(tmp_path)
    fig = sweep_heatmap(grid_frame(frame, "best_test_acc"), "best_test_acc", unfinished=unfinished_grid(frame))
    results, pale = fig.data
    assert [list(row) for row in results.z] == [pytest.approx([20.0, 30.0]), [None, None]]  # on the colour scale: finished only
    assert [list(row) for row in results.text] == [["20.0%", "30.0%"], ["", ""]]
    assert [list(row) for row in pale.z] == [[None, None], [0.0, 0.0]]
    assert [list(row) for row in pale.text] == [["", ""], ["stopped at 1/2", "running at 1/2"]]
    assert pale.showscale is False and {c[1] for c in pale.colorscale} == {UNFINISHED_FILL}
    # Parameters are the model's, known before training: every square on the scale, none pale.
    params = sweep_heatmap(grid_frame(frame, "params"), "params", unfinished=unfinished_grid(frame))
    assert len(params.data) == 1 and all(v is not None for row in params.data[0].z for v in row)

    fig = sweep_tradeoff_figure(frame, "params")
    cells = next(t for t in fig.data if t.name == "cell")
    assert list(cells.x) == [77850, 303706] and list(cells.y) == pytest.approx([20, 30])  # the finished cells only
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [77850, 303706]
    rest = next(t for t in fig.data if t.name.startswith("not finished"))
    assert list(rest.x) == [175066, 691674] and list(rest.y) == pytest.approx([25.0, 14.6])
    assert list(rest.text) == ["WRN-16-1 · stopped at 1/2", "WRN-16-2 · running at 1/2"]
    assert rest.marker.symbol == "circle-open" and rest.marker.color not in (FRONT_COLOR, OFF_FRONT_COLOR)
    drawn_as_results = [t for t in fig.data if t is not rest and t.x is not None and t.name != PAPER_CAPTION]
    assert not {175066, 691674} & {x for t in drawn_as_results for x in t.x}
    assert [p is None for p in cells_table(frame)["pareto"]] == [False, False, True, True]  # neither on nor off the front

    seeds = sweep_cells(tmp_path, seeds=(0, 1), accuracies=[0.1, 0.3, 0.5, 0.5, 0.2, 0.2, 0.8, 0.9])
    seeds.loc[seeds.index[-1], "status"] = "running"  # WRN-16-2's second seed: its square waits for it
    seeds["epoch"], seeds["epochs"] = 1, 2
    fig = sweep_heatmap(grid_frame(seeds, "best_test_acc"), "best_test_acc", unfinished=unfinished_grid(seeds))
    assert fig.data[0].z[1][1] is None and fig.data[1].text[1][1] == "1/2 finished, 1 running"
    traces = sweep_tradeoff_figure(seeds).data
    assert len(next(t for t in traces if t.name == "each seed").x) == 6  # the finished groups' seeds only
