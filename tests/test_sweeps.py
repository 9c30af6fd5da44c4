"""Tests for sweeps: the grid and its run names, the sweep file, Pareto flags, pre-flight, and the CLI end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from polling import wait_until
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.store import RunStore, RunStoreError
from wrn_core.sweeps import (
    SWEEP_SUFFIX,
    Sweep,
    cells_frame,
    cells_table,
    default_sweep_name,
    grid_frame,
    group_columns,
    group_label,
    load_sweep,
    make_sweep,
    pareto_front,
    preflight_frame,
    preflight_summary,
    probe,
    recent_sweep_names,
    save_sweep,
    seed_band,
    seed_stats,
    sweep_counts,
    sweep_names,
    tradeoff_points,
    unfinished_points,
)

REPO = Path(__file__).resolve().parents[1]
BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, batch_size=32,
                   epochs=1, device="cpu", log_every=1)
TINY = ["--synthetic-train", "160", "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu", "--log-every", "1"]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_cells_run_names_and_configs():
    sweep = make_sweep("grid", BASE, [1, 2], [1, 4], seeds=[0, 1], dropout=[0.0, 0.3])
    cells = sweep.cells()
    assert len(cells) == 16
    assert cells[0].run == "grid-n1-k1-d0-s0" and cells[-1].run == "grid-n2-k4-d0.3-s1"
    last = cells[-1].config
    assert (last.model.depth, last.model.widen_factor, last.model.dropout, last.seed) == (16, 4, 0.3, 1)
    assert last.synthetic_train == 160 and last.epochs == 1  # the rest comes from the base
    assert sweep.varied == ["blocks", "widen_factor", "dropout", "seed"]
    # A changed optimizer without a learning rate takes that optimizer's defaults.
    adam = make_sweep("opt", BASE, [1], [1], optimizer=["sgd-nesterov", "adam"]).cells()[1]
    assert adam.run == "opt-n1-k1-adam-s0" and adam.config.effective_lr == 1e-3


def test_bad_sweeps_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="lists a value twice"):
        make_sweep("dup", BASE, [1, 1], [1])
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        make_sweep("opt", BASE, [1], [1], optimizer=["rmsprop"])
    with pytest.raises(RunStoreError, match="invalid sweep name 'bad/name'"):
        make_sweep("bad/name", BASE, [1], [1])
    with pytest.raises(RunStoreError, match="sweep name 'x+' is too long: its cells' run names"):
        make_sweep("x" * 95, BASE, [1], [1])


def test_pareto_front():
    # (params, accuracy): the third is dominated by the second (fewer params, more accurate).
    assert pareto_front([(1, 0.5), (2, 0.8), (3, 0.7), (4, 0.9)]) == [True, True, False, True]
    assert pareto_front([(1, 0.5), (1, 0.5)]) == [True, True]  # ties dominate nobody


def test_the_sweep_file_round_trips_and_refuses_a_different_sweep_of_the_same_name(tmp_path):
    sweep = make_sweep("keep", BASE, [1, 2], [1, 2])
    save_sweep(tmp_path, sweep)
    assert load_sweep(tmp_path, "keep").cells() == sweep.cells()
    save_sweep(tmp_path, sweep)  # the same again is fine
    with pytest.raises(RunStoreError, match="a different sweep named 'keep' already exists"):
        save_sweep(tmp_path, make_sweep("keep", BASE, [1], [1]))
    assert sweep_names(tmp_path) == ["keep"]
    with pytest.raises(RunStoreError, match="no sweep named 'gone'"):
        load_sweep(tmp_path, "gone")


def test_preflight_sizes_and_a_measured_time():
    sweep = make_sweep("plan", BASE, [1, 2], [1, 2])
    measured = probe(sweep, steps=1, measure_startup=False)
    assert len(measured.seconds_per_step) == 4 and all(v > 0 for v in measured.seconds_per_step.values())
    plan = preflight_frame(sweep, measured)
    assert list(plan["params"]) == [77850, 303706, 175066, 691674]
    assert plan["fits"].all() and (plan["memory_mb"] > 0).all()
    assert (plan["steps"] == 5).all() and (plan["predicted_s"] > 0).all()
    # Each cell's prediction is its own measured step and evaluation times over its 5 steps and 50 test images.
    for cell, predicted in zip(sweep.cells(), plan["predicted_s"]):
        m = cell.config.model
        step_s = measured.seconds_per_step[(m.blocks, m.widen_factor, m.dropout, 32)]
        eval_s = measured.seconds_per_eval_image[(m.blocks, m.widen_factor, m.dropout)] * 50
        assert predicted == pytest.approx(5 * step_s + eval_s)


def test_a_fresh_process_gives_its_own_age_as_the_startup_instead_of_starting_an_interpreter(monkeypatch):
    import subprocess

    sweep = make_sweep("plan", BASE, [1], [1])

    def no_interpreter(*args, **kwargs):
        raise AssertionError("probe started an interpreter although the caller measured its own imports")

    monkeypatch.setattr(subprocess, "run", no_interpreter)
    import wrn_core.data

    loaded = []
    real_load = wrn_core.data.load_dataset
    monkeypatch.setattr(wrn_core.data, "load_dataset", lambda config: loaded.append(config) or real_load(config))
    measured = probe(sweep, steps=1, import_seconds=2.5)
    # The startup is the caller's imports plus one load of the sweep's data.
    assert loaded == [sweep.base] and measured.startup_seconds >= 2.5
    plan = preflight_frame(sweep, measured)
    assert plan.loc[0, "predicted_s"] > measured.startup_seconds


def test_a_2x2_sweep_end_to_end_then_stop_and_resume(tmp_path):
    runs = str(tmp_path / "runs")
    done = cli("sweep", "full", "--blocks", "1,2", "--widen-factor", "1,2", *TINY, "--epochs", "1", "--runs-dir", runs)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "predicted time for the 4 cell(s) left" in done.stdout and "full-n2-k2-s0" in done.stdout
    shown = json.loads(cli("sweeps", "show", "full", "--format", "json", "--runs-dir", runs).stdout)
    assert shown["name"] == "full" and shown["axes"] == {"blocks": [1, 2], "widen_factor": [1, 2], "seed": [0]}
    cells = shown["cells"]
    assert [c["run"] for c in cells] == ["full-n1-k1-s0", "full-n1-k2-s0", "full-n2-k1-s0", "full-n2-k2-s0"]
    for cell in cells:
        for key in ("run", "blocks", "widen_factor", "seed", "status", "params", "macs", "best_test_acc",
                    "final_test_acc", "train_seconds", "images_per_s", "pareto"):
            assert key in cell, key
        assert cell["status"] == "finished" and cell["best_test_acc"] is not None
    points = [(c["params"], c["best_test_acc"]) for c in cells]
    assert [c["pareto"] for c in cells] == pareto_front(points)
    assert cells[0]["pareto"]  # the smallest model is always on the front
    store = RunStore(runs)
    assert store.summary("full-n1-k1-s0").status == "finished"
    assert json.loads(store.get("full-n1-k1-s0").status_path.read_text())["sweep"] == "full"

    # Ctrl-C while the second cell trains: it stops, the rest stay pending; --resume finishes them once.
    proc = subprocess.Popen([sys.executable, "-m", "wrn_core", "sweep", "cut", "--blocks", "1,2", "--widen-factor", "1,2",
                             *TINY, "--epochs", "6", "--no-probe", "--runs-dir", runs],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: store.exists("cut-n1-k2-s0") and any(r["kind"] == "step" for r in store.get("cut-n1-k2-s0").read_metrics()),
               "the second cell's first step", timeout=300, proc=proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert "left; continue with `python -m wrn_core sweep cut --resume" in err
    statuses = {c: (store.summary(c).status if store.exists(c) else "pending")
                for c in ("cut-n1-k1-s0", "cut-n1-k2-s0", "cut-n2-k1-s0", "cut-n2-k2-s0")}
    assert "stopped" in statuses.values() and statuses["cut-n2-k2-s0"] == "pending", statuses
    finished_before = {c: store.get(c).metrics_path.read_bytes() for c, s in statuses.items() if s == "finished"}

    resumed = cli("sweep", "cut", "--resume", "--no-probe", "--runs-dir", runs, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    for cell in statuses:
        run = store.get(cell)
        assert run.read_status()["status"] == "finished"
        epochs = [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"]
        assert epochs == list(range(1, 7)), cell  # every epoch once: no cell trained twice
    for cell, before in finished_before.items():
        assert store.get(cell).metrics_path.read_bytes() == before  # untouched by the resume


def test_grid_and_seed_statistics(tmp_path):
    sweep = make_sweep("stats", BASE, [1, 2], [1, 2], seeds=[0, 1])
    frame = cells_frame(RunStore(tmp_path), sweep)
    assert list(frame["status"].unique()) == ["pending"] and not frame["pareto"].any()
    frame["best_test_acc"] = [0.1, 0.2, 0.3, 0.5, 0.5, 0.6, 0.7, 0.9]
    assert grid_frame(frame, "best_test_acc").isna().all().all()  # accuracies of cells not finished: no results
    assert grid_frame(frame, "params").notna().all().all()  # the model's size is known before training
    frame["status"] = "finished"
    grid = grid_frame(frame, "best_test_acc")
    assert grid.loc[1, 1] == pytest.approx(0.15) and grid.loc[2, 2] == pytest.approx(0.8)
    stats = seed_stats(frame)
    row = stats[(stats["blocks"] == 2) & (stats["widen_factor"] == 2)].iloc[0]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1414, abs=1e-3) and row["count"] == 2


def test_recent_sweep_names_and_default_name(tmp_path):
    old = make_sweep("old", BASE, [1], [1])
    new = make_sweep("new", BASE, [1], [1])
    save_sweep(tmp_path, Sweep(old.name, old.base, old.axes, created_at=100.0))
    save_sweep(tmp_path, Sweep(new.name, new.base, new.axes, created_at=200.0))
    (tmp_path / f"broken{SWEEP_SUFFIX}").write_text("{not json")
    assert recent_sweep_names(tmp_path) == ["new", "old", "broken"]  # unreadable last
    assert recent_sweep_names(tmp_path / "missing") == []
    name = default_sweep_name(now=0.0)
    assert name.startswith("sweep-") and make_sweep(name, BASE, [1], [1]).name == name  # a valid run name


def finished_frame(tmp_path, seeds=(0, 1)):
    """A 2 × 2 cells_frame with made-up accuracies and times (no training)."""
    frame = cells_frame(RunStore(tmp_path), make_sweep("view", BASE, [1, 2], [1, 2], seeds=list(seeds)))
    n = len(frame)
    frame["status"] = ["finished"] * (n - 1) + ["running"]
    frame["best_test_acc"] = [0.1, 0.2, 0.3, 0.5, 0.5, 0.6, 0.7, 0.9][:n]
    frame["final_test_acc"] = frame["best_test_acc"] - 0.05
    frame["train_seconds"] = [1.0, 3.0, 2.0, 4.0, 5.0, 7.0, 6.0, 8.0][:n]
    return frame


def test_group_labels_counts_and_cells_table(tmp_path):
    assert group_label({"blocks": 2, "widen_factor": 8}) == "WRN-16-8"
    assert group_label({"blocks": 1, "widen_factor": 2, "dropout": 0.3, "optimizer": "adam", "lr": 0.01,
                        "batch_size": 64}) == "WRN-10-2 d0.3 adam lr0.01 b64"
    frame = finished_frame(tmp_path)
    assert group_columns(frame) == ["blocks", "widen_factor"]
    counts = sweep_counts(frame)
    assert counts == {"total": 8, "ended": 7, "finished": 7, "pruned": 0, "running": 1, "queued": 0, "paused": 0,
                      "pending": 0}
    table = cells_table(frame)
    assert list(table["model"][:2]) == ["WRN-10-1", "WRN-10-1"] and list(table["seed"][:2]) == [0, 1]
    assert table["best test acc (%)"].tolist()[:2] == pytest.approx([10.0, 20.0])
    assert table["epoch"].tolist()[0] == "0/1"


def test_tradeoff_points_average_seeds_and_mark_the_front(tmp_path):
    frame = finished_frame(tmp_path)
    points = tradeoff_points(frame, "params")
    # Sorted by params: WRN-10-1 (77,850), WRN-16-1 (175,066), WRN-10-2 (303,706), WRN-16-2 (691,674).
    # WRN-16-2's second seed is still running: neither of its seeds is a point (its mean would be one seed's).
    assert points["label"].tolist() == ["WRN-10-1", "WRN-16-1", "WRN-10-2"]
    assert points["mean"].tolist() == pytest.approx([0.15, 0.55, 0.4])
    assert points["count"].tolist() == [2, 2, 2] and points["std"].iloc[0] == pytest.approx(0.0707, abs=1e-4)
    assert points["pareto"].tolist() == [True, True, False]  # WRN-10-2 is bigger and worse than WRN-16-1
    rest = unfinished_points(frame, "params")
    assert rest["label"].tolist() == ["WRN-16-2 s0 · finished", "WRN-16-2 s1 · running at 0/1"]
    assert rest["value"].tolist() == pytest.approx([0.7, 0.9]) and rest["x"].tolist() == [691674, 691674]
    frame.loc[frame.index[-1], "status"] = "finished"
    assert tradeoff_points(frame, "params")["mean"].tolist() == pytest.approx([0.15, 0.55, 0.4, 0.8])
    assert unfinished_points(frame, "params").empty
    by_time = tradeoff_points(frame, "train_seconds")
    assert by_time["x"].tolist() == pytest.approx([2.0, 3.0, 6.0, 7.0])  # the mean time over the seeds
    assert by_time["label"].tolist() == ["WRN-10-1", "WRN-10-2", "WRN-16-1", "WRN-16-2"]
    assert by_time["pareto"].all()  # each slower one is more accurate
    with pytest.raises(ValueError, match="unknown trade-off axis"):
        tradeoff_points(frame, "depth")
    empty = tradeoff_points(cells_frame(RunStore(tmp_path), make_sweep("none", BASE, [1], [1])), "macs")
    assert empty.empty and "pareto" in empty.columns


def test_grid_spread_seed_band_and_preflight_summary(tmp_path):
    frame = finished_frame(tmp_path)
    spread = grid_frame(frame, "best_test_acc", agg="std")
    assert spread.loc[1, 1] == pytest.approx(0.0707, abs=1e-4) and pd.isna(spread.loc[2, 2])  # one seed still runs
    frame["status"] = "finished"
    assert grid_frame(frame, "best_test_acc", agg="std").loc[2, 2] == pytest.approx(0.1414, abs=1e-4)
    one_seed = grid_frame(finished_frame(tmp_path, seeds=(0,)), "best_test_acc", agg="std")
    assert one_seed.isna().all().all()  # one value per square: no spread

    a = pd.DataFrame({"epoch": [1.0, 2.0], "test_acc": [0.2, 0.4]})
    b = pd.DataFrame({"epoch": [1.0], "test_acc": [0.4]})
    band = seed_band([a, b, pd.DataFrame(columns=["epoch", "test_acc"])])
    assert band["epoch"].tolist() == [1.0, 2.0] and band["count"].tolist() == [2, 1]
    assert band["mean"].tolist() == pytest.approx([0.3, 0.4]) and band["std"].tolist() == pytest.approx([0.1414, 0.0], abs=1e-4)
    assert seed_band([]).empty

    plan = preflight_frame(make_sweep("plan", BASE, [1, 2], [1]))
    summary = preflight_summary(plan)
    assert summary["cells"] == 2 and summary["predicted_s"] is None and summary["misfits"] == []
    plan["predicted_s"] = [2.0, 3.5]
    plan.loc[1, "fits"] = False
    summary = preflight_summary(plan)
    assert summary["predicted_s"] == pytest.approx(5.5) and summary["misfits"] == ["plan-n2-k1-s0"]


def _saved_without_training(monkeypatch) -> None:
    """`sweep` checks its sweep as usual and saves it (as the executor's start does), then trains nothing."""
    from wrn_core.cli import sweep as sweep_command

    monkeypatch.setattr(sweep_command, "_run_cells", lambda store, sweep, placement: save_sweep(store.root, sweep) or True)


def test_dropout_optimizer_lr_and_batch_size_take_lists_that_become_axes(tmp_path, monkeypatch):
    from itertools import product

    from wrn_core.cli import main

    _saved_without_training(monkeypatch)
    runs = str(tmp_path / "runs")
    small = ["--synthetic-train", "160", "--synthetic-test", "50", "--device", "cpu", "--no-probe", "--runs-dir", runs]
    assert main(["sweep", "lists", "--blocks", "1", "--widen-factor", "1", "--dropout", "0,0.3", "--optimizer", "sgd,adam",
                 "--lr", "0.1,0.05", "--batch-size", "32,64", *small]) == 0
    sweep = load_sweep(runs, "lists")
    assert {axis: list(values) for axis, values in sweep.axes.items() if axis not in ("blocks", "widen_factor", "seed")} == {
        "dropout": [0.0, 0.3], "optimizer": ["sgd", "adam"], "lr": [0.1, 0.05], "batch_size": [32, 64]}
    cells = [cell.config for cell in sweep.cells()]
    assert sorted((c.model.dropout, c.optimizer, c.lr, c.batch_size) for c in cells) == sorted(
        product([0.0, 0.3], ["sgd", "adam"], [0.1, 0.05], [32, 64]))
    # One value is the base config's, not an axis.
    assert main(["sweep", "single", "--blocks", "1", "--widen-factor", "1", "--lr", "0.2", "--optimizer", "adam", *small]) == 0
    single = load_sweep(runs, "single")
    assert set(single.axes) == {"blocks", "widen_factor", "seed"} and (single.base.lr, single.base.optimizer) == (0.2, "adam")


def test_sweeps_list_counts_each_sweeps_finished_cells(tmp_path, capsys):
    from wrn_core.cli import main

    assert main(["sweeps", "list", "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no sweeps in {tmp_path}\n"
    save_sweep(tmp_path, make_sweep("wide", BASE, [1], [1, 2]))
    grid = make_sweep("grid", BASE, [1, 2], [1, 2])
    save_sweep(tmp_path, grid)
    store = RunStore(tmp_path)
    first = grid.cells()[0]
    store.create(first.config, first.run).write_status("finished", "finished 1 epoch", epoch=1)
    assert main(["sweeps", "list", "--runs-dir", str(tmp_path)]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["grid: 1/4 cells finished", "wide: 0/2 cells finished"]


def test_resuming_an_ended_grid_with_a_failed_cell_exits_1_as_the_sweep_itself_did(tmp_path, capsys):
    from wrn_core.cli import main
    from wrn_core.store.records import FAILED, FINISHED

    grid = make_sweep("ended", BASE, [1], [1, 2])
    save_sweep(tmp_path, grid)
    store = RunStore(tmp_path)
    first, second = grid.cells()
    store.create(first.config, first.run).write_status(FINISHED, "finished 1 epoch", epoch=1)
    store.create(second.config, second.run).write_status(FAILED, "the data could not be read", epoch=0)
    assert main(["sweep", "ended", "--resume", "--no-probe", "--runs-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is complete" in err and "1 failed" in err and "1 finished" in err


def test_a_cell_that_already_finished_does_not_block_a_resume_by_not_fitting_now(tmp_path, monkeypatch):
    """Memory is predicted from what is free now (a GPU another job fills): only the cells left must fit."""
    import wrn_core.sweeps as sweeps_module
    from wrn_core.cli.sweep import _preflight_plan

    grid = make_sweep("busy", BASE, [1], [1, 2])
    first, second = grid.cells()
    real = sweeps_module.preflight_frame

    def first_does_not_fit(sweep, measured, gpu_share=1.0):
        frame = real(sweep, measured, gpu_share)
        frame["fits"] = frame["run"] != first.run
        return frame

    monkeypatch.setattr(sweeps_module, "preflight_frame", first_does_not_fit)
    _preflight_plan(grid, [second], None, False, 1.0)  # the first finished: not trained again, not checked
    with pytest.raises(ConfigError, match=f"1 cell\\(s\\) are predicted not to fit in memory \\({first.run}\\)"):
        _preflight_plan(grid, [first, second], None, False, 1.0)


def test_a_sweep_file_the_disk_refuses_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from disk_full import filling_open, install
    from wrn_core.store import RunWriteError

    install(filling_open(lambda path: path.startswith(str(tmp_path)), 16), monkeypatch)  # room for 16 bytes
    with pytest.raises(RunWriteError, match="^no space left on device while writing the sweep file of full$"):
        save_sweep(tmp_path, make_sweep("full", BASE, [1], [1]))
    assert list(tmp_path.iterdir()) == []


def test_a_minutes_budget_resumed_without_its_kept_predictions_measures_them_again(tmp_path, monkeypatch, capsys):
    from wrn_core.cli import main
    from wrn_core.sweeps import load_predicted_seconds
    from wrn_core.sweeps.sweep_file import PREDICTED_SUFFIX

    _saved_without_training(monkeypatch)
    runs = str(tmp_path / "runs")
    assert main(["sweep", "timed", "--blocks", "1", "--widen-factor", "1,2", *TINY, "--search", "random",
                 "--budget-minutes", "30", "--runs-dir", runs]) == 0
    (tmp_path / "runs" / f"timed{PREDICTED_SUFFIX}").unlink()  # lost, as a copied runs directory may lose it
    capsys.readouterr()
    assert main(["sweep", "timed", "--resume", "--runs-dir", runs]) == 0, capsys.readouterr().err
    assert set(load_predicted_seconds(runs, "timed")) == {cell.run for cell in load_sweep(runs, "timed").cells()}
