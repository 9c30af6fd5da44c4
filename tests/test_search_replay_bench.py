"""bench.search_replay: the reference grid exported from a store, the goals it measures, and a replay end to end on a
small hand-made reference (no training)."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("optuna")

from bench.search_replay import Reference, cells_to_goals, export_reference, main, replay_pruning  # noqa: E402
from wrn_core.config import TrainConfig, WRNConfig  # noqa: E402
from wrn_core.store import RunStore  # noqa: E402
from wrn_core.store.records import FINISHED, epoch_record  # noqa: E402
from wrn_core.sweeps import make_sweep, save_sweep  # noqa: E402

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", epochs=4, device="cpu")


def final_acc(n: int, k: int, seed: int) -> float:
    return round(0.40 + 0.03 * n + 0.05 * math.log2(k) + 0.01 * seed, 4)


def trained_store(tmp_path, unfinished=()):
    """A 3 x 3 sweep (2 seeds) whose cells carry curves rising to final_acc, as a trained grid would."""
    sweep = make_sweep("ref", BASE, [1, 2, 3], [1, 2, 4], seeds=[0, 1])
    save_sweep(tmp_path, sweep)
    store = RunStore(tmp_path)
    for cell in sweep.cells():
        if cell.run in unfinished:
            continue
        final = final_acc(cell.values["blocks"], cell.values["widen_factor"], cell.values["seed"])
        curve = [final * (0.55 + 0.15 * e) for e in range(4)]
        run = store.create(cell.config, cell.run, sweep="ref")
        run.append_metrics([epoch_record(e, 10 * e, 100 * e, 5.0 * e, 1.0, 0.5, 1.0, acc, 0.1, 5.0, None, None)
                            for e, acc in enumerate(curve, start=1)])
        run.write_status(FINISHED, epoch=4, best_test_acc=max(curve), final_test_acc=curve[-1], train_seconds=20.0)
    return store


def test_export_keeps_every_cell_with_its_curve_and_marks_the_unfinished(tmp_path):
    trained_store(tmp_path, unfinished={"ref-n3-k4-s1"})
    data = export_reference(tmp_path, "ref")
    assert data["finished"] == 17 and len(data["cells"]) == 18 and data["recipe"]["epochs"] == 4
    cells = {c["run"]: c for c in data["cells"]}
    assert cells["ref-n3-k4-s1"]["finished"] is False and cells["ref-n3-k4-s1"]["curve"] == []
    first = cells["ref-n1-k1-s0"]
    assert len(first["curve"]) == 4 and first["best_test_acc"] == pytest.approx(first["curve"][-1])
    assert first["macs"] < cells["ref-n3-k4-s0"]["macs"] and first["params"] > 0
    assert Reference(data).partial


def test_the_goals_are_reached_where_the_front_and_the_best_cell_are(tmp_path):
    trained_store(tmp_path)
    reference = Reference(export_reference(tmp_path, "ref"))
    everything = list(reference.finished_cells()["run"])
    best = "ref-n3-k4-s1"
    # The best cell alone holds the top of the front but not its cheap end: 95% needs more cells than it.
    first = cells_to_goals(reference, [best] + [r for r in everything if r != best])
    assert first["to_best_cell"] == 1 and first["to_best_model"] == 1 and first["to_95_hypervolume"] > 1
    assert first["to_95_model_hypervolume"] > 1
    in_order = cells_to_goals(reference, everything)
    assert in_order["to_best_cell"] == everything.index(best) + 1
    assert in_order["to_best_model"] == everything.index("ref-n3-k4-s0") + 1
    # Every cell trained: the whole front, over cells and over models.
    assert in_order["to_95_hypervolume"] <= 18 and in_order["to_95_model_hypervolume"] <= 18


def test_pruning_saves_epochs_and_counts_them(tmp_path):
    trained_store(tmp_path)
    reference = Reference(export_reference(tmp_path, "ref"))
    order = list(reference.finished_cells()["run"])[::-1]  # the best cells first: later, weaker ones get pruned
    result = replay_pruning(reference, "asha", order)
    assert result["epochs_full"] == 18 * 4 and 0 < result["pruned"] < 18
    assert result["epochs_trained"] < result["epochs_full"] and result["saved"] == pytest.approx(
        1 - result["epochs_trained"] / result["epochs_full"])
    assert result["best_kept"]


def test_replay_end_to_end_writes_its_figures(tmp_path, capsys):
    trained_store(tmp_path / "runs", unfinished={"ref-n3-k4-s1"})
    reference, out = tmp_path / "reference.json", tmp_path / "replay.json"
    assert main(["export", "--runs-dir", str(tmp_path / "runs"), "--sweep", "ref", "--out", str(reference)]) == 0
    assert main(["replay", "--reference", str(reference), "--seeds", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["reference"]["partial"] and result["reference"]["finished"] == 17
    for strategy in ("grid", "random", "bayes"):
        figures = result["search"][strategy]
        for goal in ("to_95_hypervolume", "to_95_model_hypervolume", "to_best_cell", "to_best_model"):
            assert 1 <= figures[goal]["mean"] <= 17
    assert len(result["search"]["bayes"]["runs"]) == 2
    assert result["map"]["leave_one_cell_out"] < 3.0
    assert set(result["pruning"]) == {f"{k} {o} order" for k in ("asha", "median") for o in ("grid", "random")} | {
        f"asha first rung at epoch {e}, all orders" for e in (1, 2, 3)}
    assert result["pruning"]["asha first rung at epoch 1, all orders"]["orders"] == 3  # the grid order and 2 random
    printed = capsys.readouterr().out
    assert "PARTIAL" in printed and "| bayes: 95% hypervolume (models) |" in printed
