"""The search over a sweep's cells: the plan in the sweep file, bad input, grid/random/bayes asks within a budget, the
Optuna journal in the runs directory, and the pruner's decisions (no training: results are written by hand)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from wrn_core.cli import main
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.store import RunStore, RunStoreError
from wrn_core.store.records import FINISHED, PENDING, PRUNED, RUNNING, epoch_record
from wrn_core.sweeps import load_sweep, make_sweep, save_sweep
from wrn_core.sweeps.search_plan import SearchPlan

optuna = pytest.importorskip("optuna")

from wrn_core.sweeps.pruning import CellPruner, cells_to_prune, request_prunes  # noqa: E402
from wrn_core.sweeps.search import Search, study_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", synthetic_train=64, synthetic_test=32,
                   batch_size=32, epochs=4, device="cpu")


def grid3(name: str = "s", **plan) -> object:
    return make_sweep(name, BASE, [1, 2, 3], [1, 2, 4], search=SearchPlan(**plan))


def true_acc(values: dict) -> float:
    """A smooth accuracy surface: deeper and wider is better, with diminishing returns."""
    return 0.40 + 0.05 * values["blocks"] + 0.07 * math.log2(values["widen_factor"]) - 0.005 * values["blocks"] ** 2


def empty_frame(sweep) -> pd.DataFrame:
    return pd.DataFrame([{"run": c.run, **c.values, "status": PENDING, "best_test_acc": None, "train_seconds": None}
                         for c in sweep.cells()])


def finish(frame: pd.DataFrame, sweep, runs, seconds: float = 10.0) -> None:
    cells = {c.run: c for c in sweep.cells()}
    for run in runs:
        frame.loc[frame["run"] == run, ["status", "best_test_acc", "train_seconds"]] = [FINISHED, true_acc(cells[run].values), seconds]


def replay(search: Search, sweep, frame: pd.DataFrame, at_once: int = 1) -> list[str]:
    """Ask until the search stops, finishing each batch of cells before the next ask."""
    order = []
    while picks := search.ask(frame, at_once):
        order += [p.cell.run for p in picks]
        finish(frame, sweep, [p.cell.run for p in picks])
    return order


# -- the plan, in the sweep file and on the command line ------------------------------------------------


def test_the_plan_is_kept_in_the_sweep_file_and_a_file_without_one_is_a_grid(tmp_path):
    sweep = grid3(strategy="bayes", budget_cells=4, prune="asha", seed=7)
    save_sweep(tmp_path, sweep)
    loaded = load_sweep(tmp_path, "s")
    assert loaded.search == SearchPlan(strategy="bayes", budget_cells=4, prune="asha", seed=7)
    with pytest.raises(RunStoreError, match="different sweep"):  # the same name with another budget is another sweep
        save_sweep(tmp_path, grid3(strategy="bayes", budget_cells=5, prune="asha", seed=7))
    data = json.loads((tmp_path / "s.sweep.json").read_text())
    del data["search"]  # as every sweep file written before searches
    (tmp_path / "old.sweep.json").write_text(json.dumps({**data, "name": "old"}))
    assert load_sweep(tmp_path, "old").search == SearchPlan() and SearchPlan().is_grid


@pytest.mark.parametrize("plan, says", [
    (dict(budget_cells=0), "a budget of 0 cells starts nothing"),
    (dict(budget_minutes=0), "a budget of 0 minutes starts nothing"),
    (dict(budget_cells=2, budget_minutes=5), "not both"),
])
def test_a_plan_that_cannot_run_is_refused_in_one_line(plan, says):
    with pytest.raises(ConfigError, match=says):
        grid3(**plan)


def _sweep_cli(tmp_path, *flags: str, capsys) -> tuple[int, str]:
    code = main(["sweep", "s", "--blocks", "1,2", "--widen-factor", "1", "--synthetic-train", "64", "--synthetic-test",
                 "32", "--device", "cpu", "--runs-dir", str(tmp_path / "runs"), *flags])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flags, says", [
    (["--budget-cells", "0"], "a budget of 0 cells starts nothing"),
    (["--search", "grid", "--prune", "median", "--epochs", "1"], "a sweep of 1 epoch has none"),
    (["--search", "bayes", "--budget-minutes", "30", "--no-probe"], "--budget-minutes counts predicted training time"),
    (["--search", "random", "--objective", "time", "--no-probe"], "--objective time minimises predicted training time"),
    (["--search", "annealing"], "invalid choice"),
])
def test_bad_search_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, flags, says):
    code, err = _sweep_cli(tmp_path, *flags, capsys=capsys)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_without_optuna_the_line_says_what_to_install(tmp_path):
    fake = tmp_path / "site" / "optuna"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "wrn_core", "sweep", "s", "--blocks", "1,2", "--widen-factor", "1",
                           "--search", "bayes", "--budget-cells", "2", "--runs-dir", str(tmp_path / "runs")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: --search bayes needs Optuna, which is not installed: "
                                                "pip install 'optuna>=4'"]
    assert not (tmp_path / "runs").exists()


# -- asking for cells ---------------------------------------------------------------------------------------


def test_grid_and_random_orders_are_seeded_and_cover_every_cell():
    sweep = grid3(strategy="grid")
    assert replay(Search(sweep), sweep, empty_frame(sweep)) == [c.run for c in sweep.cells()]
    random_sweep = grid3(strategy="random", seed=1)
    first = replay(Search(random_sweep), random_sweep, empty_frame(random_sweep))
    assert sorted(first) == sorted(c.run for c in sweep.cells()) and first != [c.run for c in sweep.cells()]
    assert replay(Search(random_sweep), random_sweep, empty_frame(random_sweep)) == first
    other = grid3(strategy="random", seed=2)
    assert replay(Search(other), other, empty_frame(other)) != first


def test_bayes_with_a_budget_of_4_cells_asks_exactly_4_and_is_reproducible():
    sweep = grid3(strategy="bayes", budget_cells=4, seed=3)
    frame = empty_frame(sweep)
    search = Search(sweep)
    order = replay(search, sweep, frame)
    assert len(order) == 4 and len(set(order)) == 4
    assert search.ask(frame, 5) == [] and "budget of 4 cells is spent" in search.stopped_because(frame)
    again = grid3(strategy="bayes", budget_cells=4, seed=3)
    assert replay(Search(again), again, empty_frame(again)) == order  # the same seed, the same cells
    other = grid3(strategy="bayes", budget_cells=4, seed=4)
    assert replay(Search(other), other, empty_frame(other)) != order


def test_several_cells_are_asked_at_once_without_results_and_none_twice():
    sweep = make_sweep("s", BASE, [1, 2, 3], [1, 2, 4], seeds=[0, 1], search=SearchPlan(strategy="bayes", budget_cells=7))
    frame = empty_frame(sweep)
    search = Search(sweep)
    first = search.ask(frame, 3)  # nothing has a result yet: three distinct cells to run side by side
    assert len({p.cell.run for p in first}) == 3
    frame.loc[frame["run"].isin([p.cell.run for p in first]), "status"] = RUNNING
    finish(frame, sweep, [first[0].cell.run])
    second = search.ask(frame, 3)
    assert len(second) == 3 and not {p.cell.run for p in second} & {p.cell.run for p in first}
    assert [len(search.ask(frame, 3)), len(search.ask(frame, 3))] == [1, 0]  # 7 in all


def test_bayes_tries_every_model_once_before_it_repeats_a_seed():
    sweep = make_sweep("s", BASE, [1, 2, 3], [1, 2, 4], seeds=[0, 1], search=SearchPlan(strategy="bayes", seed=2))
    frame = empty_frame(sweep)
    search = Search(sweep)
    order = []
    for _ in range(10):
        pick = search.ask(frame, 1)[0]
        order.append(pick.cell)
        finish(frame, sweep, [pick.cell.run])
    assert [cell.values["seed"] for cell in order[:9]] == [0] * 9  # the 9 models, each once
    assert len({(c.values["blocks"], c.values["widen_factor"]) for c in order[:9]}) == 9
    assert order[9].values["seed"] == 1


def test_a_minutes_budget_counts_measured_and_predicted_time_and_starts_nothing_that_does_not_fit():
    sweep = grid3(strategy="grid", budget_minutes=1.0)  # 60 s
    predicted = {c.run: 10.0 * c.values["widen_factor"] for c in sweep.cells()}  # k=1: 10 s, k=2: 20 s, k=4: 40 s
    frame = empty_frame(sweep)
    search = Search(sweep, predicted_s=predicted)
    picks = search.ask(frame, 2)
    assert [p.cell.run for p in picks] == ["s-n1-k1-s0", "s-n1-k2-s0"]  # 10 + 20 s predicted
    finish(frame, sweep, ["s-n1-k1-s0"], seconds=25.0)  # it took 25 s: 25 + 20 counted, 15 s left
    assert search.spent_seconds(frame) == pytest.approx(45.0)
    # n1-k4 (40 s) would not fit: the next cell that does, n2-k1 (10 s), and then nothing does (5 s left).
    assert [p.cell.run for p in search.ask(frame, 3)] == ["s-n2-k1-s0"]
    assert "no cell left is predicted to fit the 0.1 minutes left of 1 minutes" in search.stopped_because(frame)


# -- the study in the runs directory ------------------------------------------------------------------------


def _journal(root: Path, name: str = "s"):
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(study_path(root, name))))


def test_the_study_is_a_journal_file_that_optuna_load_study_opens_with_each_run_name(tmp_path):
    sweep = grid3(strategy="bayes", budget_cells=3, seed=0)
    frame = empty_frame(sweep)
    search = Search(sweep, tmp_path)
    picks = search.ask(frame, 3)
    finish(frame, sweep, [picks[0].cell.run])
    frame.loc[frame["run"] == picks[1].cell.run, ["status", "best_test_acc"]] = [PRUNED, 0.2]
    search.record_results(frame)
    study = optuna.load_study(study_name="s", storage=_journal(tmp_path))
    trials = {t.user_attrs["run"]: t for t in study.trials}
    assert list(trials) == [p.cell.run for p in picks]
    done = trials[picks[0].cell.run]
    assert done.state.name == "COMPLETE" and done.values[0] == pytest.approx(true_acc(picks[0].cell.values))
    assert done.params == {"blocks": picks[0].cell.values["blocks"], "widen_factor": picks[0].cell.values["widen_factor"]}
    assert trials[picks[1].cell.run].state.name == "PRUNED" and trials[picks[2].cell.run].state.name == "RUNNING"
    assert study.metric_names == ["best test accuracy", "log10 MACs per image"]
    assert study.user_attrs["strategy"] == "bayes" and study.user_attrs["budget_cells"] == 3


def test_a_resumed_search_hands_out_what_was_asked_and_never_started_and_stays_within_budget(tmp_path):
    sweep = grid3(strategy="bayes", budget_cells=4, seed=0)
    frame = empty_frame(sweep)
    asked = [p.cell.run for p in Search(sweep, tmp_path).ask(frame, 2)]  # the driver died before starting them
    again = Search(sweep, tmp_path)  # `sweep --resume`: a new driver
    assert [p.cell.run for p in again.ask(frame, 2)] == asked
    finish(frame, sweep, asked)
    rest = [p.cell.run for p in again.ask(frame, 5)]
    assert len(rest) == 2 and not set(rest) & set(asked)


def test_a_lost_journal_is_rebuilt_from_the_store(tmp_path):
    sweep = grid3(strategy="bayes", budget_cells=5, seed=0)
    frame = empty_frame(sweep)
    trained = replay(Search(sweep, tmp_path), sweep, frame)[:3]
    frame.loc[~frame["run"].isin(trained), ["status", "best_test_acc"]] = [PENDING, None]  # 3 trained, 2 asked
    study_path(tmp_path, "s").unlink()
    search = Search(sweep, tmp_path)
    search.record_results(frame)
    study = optuna.load_study(study_name="s", storage=_journal(tmp_path))
    assert sorted(t.user_attrs["run"] for t in study.trials) == sorted(trained)
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    picks = search.ask(frame, 5)
    assert len(picks) == 2 and not {p.cell.run for p in picks} & set(trained)


# -- pruning ----------------------------------------------------------------------------------------------


def _curve(final: float, epochs: int) -> list[float]:
    return [final * (e / epochs) ** 0.5 for e in range(1, epochs + 1)]


@pytest.mark.parametrize("kind", ["median", "asha"])
def test_the_pruner_stops_a_running_cell_that_trails_the_finished_ones(kind):
    sweep = make_sweep("s", BASE.replace(epochs=9), [1, 2, 3], [1, 2], search=SearchPlan(prune=kind))
    pruner = CellPruner(sweep)
    cells = sweep.cells()
    for cell, final in zip(cells[:5], (0.60, 0.62, 0.64, 0.66, 0.68)):
        assert pruner.judge(cell.run, _curve(final, 9), FINISHED) is None
    weak = cells[5].run
    decisions = [pruner.judge(weak, _curve(0.30, 9)[:e], RUNNING) for e in range(1, 5)]
    assert decisions[:3] == [None, None, None]  # not judged before half its 9 epochs
    decision = decisions[3]
    assert decision.run == weak and decision.epoch == 4 and decision.test_acc == pytest.approx(_curve(0.30, 9)[3])
    assert "at epoch 4" in decision.message
    # Asked again while it still runs: the same decision; once it reads pruned, it is settled.
    assert pruner.judge(weak, _curve(0.30, 9)[:5], RUNNING) == decision
    assert pruner.judge(weak, _curve(0.30, 9)[:5], PRUNED) is None and pruner.settled(weak)


def test_median_spares_a_cell_at_the_median_or_above_and_every_cell_before_half_its_epochs():
    sweep = make_sweep("s", BASE.replace(epochs=9), [1, 2, 3], [1, 2, 4], search=SearchPlan(prune="median"))
    pruner = CellPruner(sweep)
    cells = sweep.cells()
    for cell, final in zip(cells[:5], (0.60, 0.62, 0.64, 0.66, 0.68)):
        pruner.judge(cell.run, _curve(final, 9), FINISHED)
    weak, strong = cells[5].run, cells[6].run
    assert [pruner.judge(weak, _curve(0.01, 9)[:e], RUNNING) for e in range(1, 4)] == [None, None, None]
    assert pruner.judge(weak, _curve(0.01, 9)[:4], RUNNING).epoch == 4
    assert all(pruner.judge(strong, _curve(0.70, 9)[:e], RUNNING) is None for e in range(1, 9))


def test_cells_to_prune_reads_the_store_and_the_request_ends_the_cell_pruned(tmp_path):
    sweep = make_sweep("s", BASE.replace(epochs=9), [1, 2, 3], [1, 2], search=SearchPlan(prune="median"))
    store = RunStore(tmp_path)
    cells = sweep.cells()
    for cell, final in zip(cells, (0.60, 0.62, 0.64, 0.66, 0.68, 0.30)):
        curve = _curve(final, 9) if final > 0.5 else _curve(final, 9)[:5]  # the weak one runs, past half its epochs
        run = store.create(cell.config, cell.run, sweep="s", hold="training" if final < 0.5 else None)
        run.append_metrics([epoch_record(e, 10 * e, 640 * e, float(e), 1.0, 0.5, 1.0, acc, 0.1, 1.0, None, None)
                            for e, acc in enumerate(curve, start=1)])
        if final > 0.5:
            run.write_status(FINISHED, epoch=9, best_test_acc=max(curve))
        else:
            run.write_status(RUNNING, epoch=5)
    decisions = cells_to_prune(store, sweep, CellPruner(sweep, tmp_path))
    assert [d.run for d in decisions] == [cells[5].run]
    request_prunes(store, decisions)
    assert store.get(cells[5].run).read_stop_request() == (PRUNED, decisions[0].message)
    study = optuna.load_study(study_name="s:epochs", storage=_journal(tmp_path))
    curves = {t.user_attrs["run"]: t.intermediate_values for t in study.trials}
    assert curves[cells[0].run] == {e: pytest.approx(v) for e, v in enumerate(_curve(0.60, 9), start=1)}
    store.get(cells[5].run).release()


def test_the_preflight_says_what_a_budget_buys_by_the_predicted_times():
    from wrn_core.sweeps import budget_forecast

    plan = pd.DataFrame({"predicted_s": [60.0, 120.0, 300.0, 600.0]})
    assert budget_forecast(plan, SearchPlan(budget_cells=2)) == (
        "a budget of 2 cells: 3.0 to 15.0 min of training, by which cells the search picks (the whole grid, 4 cells: "
        "18.0 min)")
    assert budget_forecast(plan, SearchPlan(budget_cells=9)).startswith("a budget of 9 cells: 18.0 min of training")
    # 7 minutes: the quickest first fit 60 + 120 s (300 more would not); the slowest first skip 600 s, fit 300 + 120 s.
    assert budget_forecast(plan, SearchPlan(budget_minutes=7)).startswith("a budget of 7 minutes: 2 cells")
    assert budget_forecast(plan, SearchPlan(budget_minutes=8)).startswith("a budget of 8 minutes: 3 cells")
    assert budget_forecast(plan, SearchPlan()) is None
    assert budget_forecast(plan.assign(predicted_s=None), SearchPlan(budget_cells=2)) is None  # no probe: no times
