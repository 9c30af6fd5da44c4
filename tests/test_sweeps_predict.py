"""The predicted map: a GP over a hand-made grid whose accuracy is a known smooth function of N and k, its held-out
error, the front's hypervolume and expected gain, the next cell, and `sweeps show --format json`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from wrn_core.cli import main
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import FINISHED, PENDING, PRUNED, RUNNING
from wrn_core.sweeps import make_sweep, save_sweep
from wrn_core.sweeps.hypervolume import expected_gain, hypervolume
from wrn_core.sweeps.predict import predict_accuracy, sweep_map

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", epochs=4, device="cpu")
BIG = make_sweep("g", BASE, [1, 2, 3, 4, 5], [1, 2, 4, 8, 16])


def smooth(n: int, k: int) -> float:
    """Accuracy as a fraction: more depth and width help, each less as it grows."""
    return 0.35 + 0.06 * n - 0.006 * n * n + 0.07 * math.log2(k) - 0.004 * math.log2(k) ** 2


def frame_with(sweep, finished) -> pd.DataFrame:
    rows = []
    for cell in sweep.cells():
        n, k = cell.values["blocks"], cell.values["widen_factor"]
        done = (n, k) in finished
        rows.append({"run": cell.run, **cell.values, "status": FINISHED if done else PENDING,
                     "best_test_acc": smooth(n, k) if done else None, "train_seconds": None, "true": smooth(n, k)})
    return pd.DataFrame(rows)


def test_the_map_predicts_unseen_cells_of_a_smooth_grid_within_a_point():
    seen = {(n, k) for n in (1, 3, 5) for k in (1, 4, 16)} | {(2, 2), (4, 8)}
    cells = frame_with(BIG, seen)
    prediction = predict_accuracy(BIG, cells)
    merged = cells.merge(prediction.cells, on="run")
    unseen = merged[merged["status"] != FINISHED]
    assert len(unseen) == 25 - len(seen)
    error = (100 * (unseen["predicted_acc"] - unseen["true"]).abs()).mean()
    assert error < 1.0  # points
    assert prediction.heldout_error is not None and prediction.heldout_error < 1.5
    assert prediction.error_text == f"the map is off by about ±{prediction.heldout_error:.1f} points on cells it has seen"
    assert merged.loc[merged["status"] == FINISHED, ["predicted_acc", "predicted_std"]].isna().all().all()


def test_the_std_grows_away_from_the_trained_cells():
    cells = frame_with(BIG, {(n, k) for n in (1, 2) for k in (1, 2, 4, 8, 16)})  # only the shallow rows trained
    merged = cells.merge(predict_accuracy(BIG, cells).cells, on="run")
    std_by_n = merged.groupby("blocks")["predicted_std"].mean()
    assert std_by_n[3] < std_by_n[4] < std_by_n[5]


def test_fewer_than_three_finished_cells_give_no_map_and_say_why():
    cells = frame_with(BIG, {(1, 1), (2, 2)})
    prediction = predict_accuracy(BIG, cells)
    assert prediction.cells[["predicted_acc", "predicted_std"]].isna().all().all()
    assert prediction.reason == "no prediction yet: 2 finished cells, and the map needs 3"
    assert sweep_map(BIG, cells).next.run is None


def test_hypervolume_and_expected_gain_of_a_front():
    ref = (3.0, 10.0)  # cost up to 3, accuracy above 10
    front = [(1.0, 50.0), (2.0, 70.0)]
    # 50-10 over [1, 2), 70-10 over [2, 3): 40 + 60.
    assert hypervolume(front + [(2.5, 60.0)], ref) == pytest.approx(100.0)
    # A sure point at cost 1.5 with 80: it adds (80-50) over [1.5, 2) and (80-70) over [2, 3).
    assert expected_gain(80.0, 0.0, 1.5, front, ref) == pytest.approx(25.0)
    assert hypervolume(front + [(1.5, 80.0)], ref) - hypervolume(front, ref) == pytest.approx(25.0)
    assert expected_gain(40.0, 0.0, 1.5, front, ref) == 0.0
    assert expected_gain(40.0, 10.0, 1.5, front, ref) > 0.0  # uncertain: it might beat the front


def test_sweeps_show_json_gives_each_cell_its_prediction_status_and_whether_it_is_next(tmp_path, capsys):
    sweep = make_sweep("s", BASE, [1, 2, 3], [1, 2, 4])
    save_sweep(tmp_path, sweep)
    store = RunStore(tmp_path)
    cells = {(c.values["blocks"], c.values["widen_factor"]): c for c in sweep.cells()}
    for key in ((1, 1), (1, 4), (3, 1), (3, 4)):
        store.create(cells[key].config, cells[key].run, sweep="s").write_status(FINISHED, epoch=4, best_test_acc=smooth(*key))
    store.create(cells[(2, 1)].config, cells[(2, 1)].run, sweep="s").write_status(PRUNED, epoch=1, best_test_acc=0.2)
    running = store.create(cells[(2, 2)].config, cells[(2, 2)].run, sweep="s", hold="training")
    running.write_status(RUNNING)
    assert main(["sweeps", "show", "s", "--format", "json", "--runs-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {row["run"]: row for row in out["cells"]}
    assert {row["status"] for row in rows.values()} == {FINISHED, PRUNED, RUNNING, PENDING}
    for row in rows.values():
        if row["status"] == FINISHED:
            assert row["predicted_acc"] is None and row["predicted_std"] is None and row["next"] is False
        else:
            assert 0.0 < row["predicted_acc"] < 1.0 and row["predicted_std"] > 0.0
    assert rows[cells[(2, 1)].run]["predicted_acc"] > 0.3  # a pruned cell: what it would have reached
    nexts = [row for row in rows.values() if row["next"]]
    assert len(nexts) == 1 and nexts[0]["status"] == PENDING and out["map"]["next"]["run"] == nexts[0]["run"]
    assert "expected to grow the front" in out["map"]["next"]["reason"]
    assert out["map"]["finished"] == 4 and out["map"]["error"].startswith("the map is off by about ±")
    assert out["search"]["strategy"] == "grid"
    running.release()


def test_the_next_cell_of_a_bayes_sweep_is_the_one_its_search_hands_out(tmp_path):
    pytest.importorskip("optuna")
    from wrn_core.sweeps.search import Search
    from wrn_core.sweeps.search_plan import SearchPlan

    sweep = make_sweep("b", BASE, [1, 2, 3], [1, 2, 4], search=SearchPlan(strategy="bayes", budget_cells=6, seed=5))
    cells = frame_with(sweep, {(1, 1), (2, 2), (3, 4)})
    search = Search(sweep, tmp_path)
    search.record_results(cells)
    shown = sweep_map(sweep, cells, tmp_path)
    assert shown.next.run == search.ask(cells, 1)[0].cell.run
    assert "the map predicts" in shown.next.reason
    assert np.isfinite(shown.cells.loc[shown.cells["next"], "predicted_acc"]).all()
