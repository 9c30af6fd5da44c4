"""Tests for the run directory: config, append-only metrics, atomic status, names, reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.runstore import RunStore, RunStoreError, validate_run_name


def _config() -> TrainConfig:
    return TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=2)


def test_create_writes_config_and_queued_status(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "first")
    assert run.read_config() == _config()
    status = run.read_status()
    assert status["status"] == "queued"
    assert status["model_name"] == "WRN-10-1"
    assert store.names() == ["first"]


def test_generated_names_are_unique(tmp_path):
    store = RunStore(tmp_path)
    names = {store.create(_config()).name for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("wrn-10-1-synthetic-") for name in names)


def test_duplicate_name_refused(tmp_path):
    store = RunStore(tmp_path)
    store.create(_config(), "same")
    with pytest.raises(RunStoreError, match="already exists"):
        store.create(_config(), "same")


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "", ".", "..", "/abs", ".hidden", "x" * 101, "a..b", "sp ace"])
def test_unsafe_names_refused(tmp_path, name):
    with pytest.raises(RunStoreError, match="invalid run name"):
        validate_run_name(name)
    if name:  # an empty name asks create() for a generated one
        with pytest.raises(RunStoreError):
            RunStore(tmp_path).create(_config(), name)
    assert not (tmp_path.parent / "evil").exists()


def test_metrics_append_and_torn_last_line(tmp_path):
    run = RunStore(tmp_path).create(_config(), "torn")
    run.append_metrics([{"kind": "step", "step": 1}, {"kind": "step", "step": 2}])
    with open(run.metrics_path, "a") as f:
        f.write('{"kind": "step", "st')  # a crash mid-write
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    # The next append must not glue onto the torn fragment.
    run.append_metrics([{"kind": "step", "step": 3}])
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_truncate_metrics_after_step(tmp_path):
    run = RunStore(tmp_path).create(_config(), "trunc")
    run.append_metrics([{"kind": "step", "step": s} for s in range(1, 11)])
    run.truncate_metrics_after(6)
    assert [r["step"] for r in run.read_metrics()] == list(range(1, 7))


def test_status_is_merged_and_replaced_atomically(tmp_path):
    run = RunStore(tmp_path).create(_config(), "status")
    run.write_status("running", "go", epoch=1)
    run.write_status(best_test_acc=0.5)
    status = json.loads(run.status_path.read_text())
    assert status["status"] == "running" and status["epoch"] == 1 and status["best_test_acc"] == 0.5
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError):
        run.write_status("bogus")


def test_reconcile_marks_dead_runs_interrupted_and_keeps_live_ones(tmp_path):
    store = RunStore(tmp_path)
    dead = store.create(_config(), "dead")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead.write_status("running", pid=proc.pid)
    alive = store.create(_config(), "alive")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive.write_status("running", pid=sleeper.pid)
        mine = store.create(_config(), "mine")
        mine.write_status("running", pid=os.getpid())
        held = store.create(_config(), "held")
        held.write_status("running", pid=os.getpid())
        assert sorted(store.reconcile(live_names=["held"])) == ["dead", "mine"]
        assert dead.read_status()["status"] == "interrupted"
        assert alive.read_status()["status"] == "running"
        assert held.read_status()["status"] == "running"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_summaries_and_delete(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "one")
    run.write_status("finished", epoch=2, best_test_acc=0.4, final_test_acc=0.3, params=123, train_seconds=5.0)
    (summary,) = store.summaries()
    assert (summary.name, summary.status, summary.epoch, summary.best_test_acc, summary.params) == ("one", "finished", 2, 0.4, 123)
    assert summary.model_name == "WRN-10-1" and summary.optimizer == "sgd-nesterov"
    store.delete("one")
    assert store.names() == []
    with pytest.raises(RunStoreError, match="no run named"):
        store.get("one")


def test_delete_refuses_a_live_running_run(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "busy")
    run.write_status("running", pid=os.getpid())
    with pytest.raises(RunStoreError, match="stop it"):
        store.delete("busy")
    assert store.exists("busy")
