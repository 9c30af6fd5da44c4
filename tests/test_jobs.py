"""Tests for the background job manager: threads, FIFO queue per device, stop, resume, reconcile."""

from __future__ import annotations

import os
import threading
import time

import pytest

from wrn_core import train as train_module
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.data import DataError
from wrn_core.jobs import JobManager
from wrn_core.runstore import RunStore, RunStoreError


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", synthetic_train=160, synthetic_test=50,
        epochs=1, batch_size=32, device="cpu", log_every=1, eval_batch_size=50,
    )
    return base.replace(**changes)


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(tmp_path)
    yield jobs
    jobs.shutdown()


@pytest.fixture
def gated(monkeypatch):
    """Make every training step wait for a gate, so tests control when jobs advance."""
    gate = threading.Event()
    real = train_module.train_run

    def slow_train(run, stop_event=None, on_progress=None, resume=False):
        def hook(progress):
            if on_progress:
                on_progress(progress)
            while not gate.is_set() and not (stop_event and stop_event.is_set()):
                time.sleep(0.01)

        return real(run, stop_event=stop_event, on_progress=hook, resume=resume)

    monkeypatch.setattr("wrn_core.jobs.train_run", slow_train)
    return gate


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_submit_runs_in_the_background_to_finished(manager):
    name = manager.submit(tiny_config(), "bg")
    assert manager.wait(name, timeout=60)
    run = manager.store.get(name)
    assert run.read_status()["status"] == "finished"
    assert any(r["kind"] == "epoch" for r in run.read_metrics())
    progress = manager.progress(name)
    assert progress is not None and progress.phase == "done"
    assert not manager.is_active(name) and manager.jobs() == []


def test_one_job_per_device_and_fifo_queue(manager, gated):
    first = manager.submit(tiny_config(), "first")
    second = manager.submit(tiny_config(), "second")
    third = manager.submit(tiny_config(), "third")
    assert wait_for(lambda: manager.progress(first) is not None)
    assert [(j.name, j.state) for j in manager.jobs()] == [("first", "running"), ("second", "queued"), ("third", "queued")]
    assert manager.store.get(second).read_status()["status"] == "queued"
    gated.set()
    for name in (first, second, third):
        assert manager.wait(name, timeout=60)
    started = [manager.store.get(n).read_status()["started_at"] for n in (first, second, third)]
    assert started == sorted(started)


def test_stop_running_and_queued_jobs(manager, gated):
    running = manager.submit(tiny_config(), "running")
    queued = manager.submit(tiny_config(), "queued")
    assert wait_for(lambda: manager.progress(running) is not None)
    assert manager.stop(queued)
    assert manager.store.get(queued).read_status()["status"] == "stopped"
    assert manager.stop(running)
    assert manager.wait(running, timeout=30)
    status = manager.store.get(running).read_status()
    assert status["status"] == "stopped"
    assert manager.store.get(running).has_checkpoint()
    assert not manager.stop("no-such-run")


def test_resume_a_stopped_run_to_the_end(manager, gated):
    name = manager.submit(tiny_config(epochs=2), "resumable")
    assert wait_for(lambda: manager.progress(name) is not None)
    manager.stop(name)
    manager.wait(name, timeout=30)
    assert manager.store.get(name).read_status()["status"] == "stopped"
    assert manager.store.get(name).has_checkpoint()
    gated.set()
    manager.resume(name)
    assert manager.wait(name, timeout=60)
    run = manager.store.get(name)
    assert run.read_status()["status"] == "finished"
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == list(range(1, 11))  # 5 steps per epoch, logged every step, none repeated


def test_resume_refusals(manager):
    name = manager.submit(tiny_config(), "done")
    manager.wait(name, timeout=60)
    with pytest.raises(RunStoreError, match="already finished"):
        manager.resume(name)
    with pytest.raises(RunStoreError, match="already completed 1"):
        manager.resume(name, epochs=1)
    with pytest.raises(RunStoreError, match="no run named"):
        manager.resume("missing")
    manager.resume(name, epochs=2)
    assert manager.wait(name, timeout=60)
    assert manager.store.get(name).read_status()["epoch"] == 2


def test_bad_input_is_refused_before_any_run_exists(manager, tmp_path):
    with pytest.raises(RunStoreError, match="invalid run name"):
        manager.submit(tiny_config(), "../escape")
    with pytest.raises(DataError, match="does not exist"):
        manager.submit(tiny_config(dataset="folder", data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(DataError):
        manager.submit(tiny_config(dataset="cifar10", data_dir=str(tmp_path / "empty")))
    if not train_module.torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            manager.submit(tiny_config(device="cuda"))
    assert manager.store.names() == []


def test_a_new_manager_reports_orphaned_runs_interrupted_and_can_resume_them(tmp_path):
    store = RunStore(tmp_path)
    orphan = store.create(tiny_config(), "orphan")
    orphan.write_status("running", "training", pid=os.getpid())  # this process, but no live job holds it
    manager = JobManager(tmp_path)
    try:
        assert orphan.read_status()["status"] == "interrupted"
        manager.resume("orphan")
        assert manager.wait("orphan", timeout=60)
        assert orphan.read_status()["status"] == "finished"
    finally:
        manager.shutdown()
