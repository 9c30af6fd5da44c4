"""Searches run for real by `python -m wrn_core sweep`: bayes within a budget of cells, Ctrl-C and --resume with the
journal lost, asha pruning ending a cell `pruned` that --resume leaves alone, random on a local Ray of 2 CPUs with 2
cells at once, and bayes on real CIFAR-10 JPEGs (tiny models, subsets)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.shared_data import cifar_jpeg_root
from wrn_core.store import RunStore
from wrn_core.store.records import EPOCH, FINISHED, PENDING, PRUNED
from wrn_core.sweeps import load_sweep

optuna = pytest.importorskip("optuna")

from wrn_core.sweeps.search import Search, study_path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--synthetic-test", "64", "--batch-size", "32", "--device", "cpu", "--log-every", "1"]


def sweep_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "wrn_core", "sweep", *args]


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def epochs_of(store: RunStore, run: str) -> list[int]:
    return [r["epoch"] for r in store.get(run).read_metrics() if r["kind"] == EPOCH]


def started_cells(store: RunStore, sweep) -> list[str]:
    return [cell.run for cell in sweep.cells() if store.exists(cell.run)]


def trial_runs(root: Path, name: str) -> list[str]:
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(study_path(root, name))))
    return sorted(t.user_attrs["run"] for t in optuna.load_study(study_name=name, storage=storage).trials)


def first_pick(sweep) -> str:
    """The cell a fresh search of this sweep starts first (its sampler is seeded)."""
    frame = pd.DataFrame([{"run": c.run, "status": PENDING, "best_test_acc": None, "train_seconds": None}
                          for c in sweep.cells()])
    return Search(sweep).ask(frame, 1)[0].cell.run


def test_bayes_with_4_cells_of_3x3_trains_4_and_ctrl_c_then_resume_without_the_journal_trains_none_twice(tmp_path):
    runs = tmp_path / "runs"
    store = RunStore(runs)
    proc = subprocess.Popen(sweep_cmd("b", "--blocks", "1,2,3", "--widen-factor", "1,2,4", *TINY, "--synthetic-train",
                                      "96", "--epochs", "3", "--no-probe", "--search", "bayes", "--budget-cells", "4",
                                      "--runs-dir", str(runs)),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    sweep = None
    while time.monotonic() < deadline:  # until the second cell the search picked has trained a step
        if sweep is None and (runs / "b.sweep.json").exists():
            sweep = load_sweep(runs, "b")
        started = started_cells(store, sweep) if sweep else []
        if len(started) >= 2 and any(r["kind"] == "step" for s in started for r in store.get(s).read_metrics()
                                     if store.summary(s).status != FINISHED):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    assert "continue with `python -m wrn_core sweep b --resume" in err
    assert first_pick(sweep) in started_cells(store, sweep)  # the seeded sampler's first cell
    cut = started_cells(store, sweep)
    assert 2 <= len(cut) <= 4 and any(store.summary(r).status == "stopped" for r in cut), \
        {r: store.summary(r).status for r in cut}
    study_path(runs, "b").unlink()  # the journal lost: the resume rebuilds the study from the store

    resumed = run_cli("sweep", "b", "--resume", "--no-probe", "--runs-dir", str(runs))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "the budget of 4 cells is spent (4 started)" in resumed.stderr
    trained = started_cells(store, sweep)
    assert len(trained) == 4 and set(cut) <= set(trained)
    for run in trained:
        assert store.summary(run).status == FINISHED
        assert epochs_of(store, run) == [1, 2, 3], run  # every epoch once: no cell trained twice
    assert trial_runs(runs, "b") == sorted(trained)  # optuna.load_study opens the rebuilt journal, one trial per cell

    shown = json.loads(run_cli("sweeps", "show", "b", "--format", "json", "--runs-dir", str(runs)).stdout)
    cells = {c["run"]: c for c in shown["cells"]}
    assert shown["search"]["strategy"] == "bayes" and shown["search"]["budget_cells"] == 4
    assert shown["map"]["next"]["run"] is None and "budget of 4 cells is spent" in shown["map"]["next"]["reason"]
    for run, cell in cells.items():
        assert (cell["predicted_acc"] is None) == (run in trained)  # predicted where no run was made
        assert cell["status"] == (FINISHED if run in trained else PENDING) and cell["next"] is False
    again = run_cli("sweep", "b", "--resume", "--no-probe", "--runs-dir", str(runs))
    assert again.returncode == 0 and "is complete" in again.stderr


def test_asha_prunes_a_cell_that_trails_and_resume_leaves_it_pruned(tmp_path):
    runs = tmp_path / "runs"
    store = RunStore(runs)
    # Two cells in grid order: lr 0.1 learns, then lr 1e-6 barely moves; successive halving's first rung is epoch 4
    # of 8, where the second trails the first and is stopped.
    done = run_cli("sweep", "p", "--blocks", "1", "--widen-factor", "1", "--lr", "0.1,0.000001", *TINY,
                   "--synthetic-train", "960", "--schedule", "constant", "--epochs", "8", "--no-probe",
                   "--prune", "asha", "--runs-dir", str(runs))
    assert done.returncode == 0, done.stderr[-2000:]
    good, weak = (cell.run for cell in load_sweep(runs, "p").cells())
    assert store.summary(good).status == FINISHED and epochs_of(store, good) == list(range(1, 9))
    pruned = store.get(weak).read_status()
    assert pruned["status"] == PRUNED, pruned
    assert "successive halving" in pruned["message"] and "epoch 4" in pruned["message"]
    assert 4 <= len(epochs_of(store, weak)) < 8 and store.get(weak).checkpoint_path.exists()
    before = store.get(weak).metrics_path.read_bytes()
    again = run_cli("sweep", "p", "--resume", "--no-probe", "--runs-dir", str(runs))
    assert again.returncode == 0 and "is complete" in again.stderr, again.stderr[-2000:]
    assert store.get(weak).metrics_path.read_bytes() == before  # not resumed


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray of 2 CPUs for the module; the sweep connects to it."""
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_a_random_search_on_ray_runs_2_cells_at_once_within_its_budget(tmp_path, ray_address):
    runs = tmp_path / "runs"
    store = RunStore(runs)
    done = run_cli("sweep", "r", "--blocks", "1,2", "--widen-factor", "1,2", *TINY, "--synthetic-train", "64",
                   "--epochs", "2", "--no-probe", "--search", "random", "--budget-cells", "3", "--executor", "ray",
                   "--ray-address", ray_address, "--runs-dir", str(runs))
    assert done.returncode == 0, done.stderr[-2000:]
    sweep = load_sweep(runs, "r")
    trained = started_cells(store, sweep)
    assert len(trained) == 3 and all(store.summary(r).status == FINISHED for r in trained)
    spans = sorted((store.get(r).read_status()["started_at"], store.get(r).read_status()["finished_at"]) for r in trained)
    assert spans[1][0] < spans[0][1]  # the first two trained at the same time: asked for together


def test_bayes_on_real_cifar10_jpegs_trains_its_budget(tmp_path, tmp_path_factory):
    root = cifar_jpeg_root(tmp_path_factory)
    runs = tmp_path / "runs"
    done = run_cli("sweep", "c", "--blocks", "1,2", "--widen-factor", "1,2", "--dataset", "folder", "--data-dir",
                   str(root), "--subset-train", "256", "--subset-test", "128", "--batch-size", "64", "--epochs", "2",
                   "--device", "cpu", "--no-probe", "--search", "bayes", "--budget-cells", "2", "--runs-dir", str(runs))
    assert done.returncode == 0, done.stderr[-2000:]
    store = RunStore(runs)
    trained = started_cells(store, load_sweep(runs, "c"))
    assert len(trained) == 2
    for run in trained:
        assert store.summary(run).status == FINISHED and epochs_of(store, run) == [1, 2]
        assert store.get(run).read_config().dataset == "folder"
