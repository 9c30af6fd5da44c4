"""Tests for the job manager: training processes, one FIFO queue per device slot, stop, resume, supervision."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import torch

from wrn_core.jobs import supervisor as jobs_module
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.data import DataError
from wrn_core.jobs import JobManager
from wrn_core.store import RunStore, RunStoreError

REPO = Path(__file__).resolve().parents[1]


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", synthetic_train=160, synthetic_test=50,
        epochs=1, batch_size=32, device="cpu", log_every=1, eval_batch_size=50,
    )
    return base.replace(**changes)


LONG = {"epochs": 500}  # a job that keeps its slot busy until it is stopped


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(tmp_path / "runs")
    yield jobs
    jobs.shutdown(timeout=60)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def trained_steps(run) -> list[int]:
    return [r["step"] for r in run.read_metrics() if r["kind"] == "step"]


def test_a_job_trains_in_its_own_process_to_finished(manager):
    name = manager.submit(tiny_config(), "bg")
    assert wait_for(lambda: manager.jobs() and manager.jobs()[0].pid is not None)
    (job,) = manager.jobs()
    assert job.state == "running" and job.pid != os.getpid() and job.device == "cpu"
    assert manager.wait(name, timeout=120)
    run = manager.store.get(name)
    status = run.read_status()
    assert status["status"] == "finished" and status["pid"] == job.pid
    assert any(r["kind"] == "epoch" for r in run.read_metrics())
    progress = manager.progress(name)  # from the trainer's heartbeat.json
    assert progress is not None and progress.phase == "done" and progress.step == 5
    assert (run.path / "job.log").exists()
    assert not manager.is_active(name) and manager.jobs() == []


def test_one_job_per_slot_and_a_fifo_queue(manager):
    first = manager.submit(tiny_config(**LONG), "first")
    second = manager.submit(tiny_config(), "second")
    third = manager.submit(tiny_config(), "third")
    assert [(j.name, j.state) for j in manager.jobs()] == [("first", "running"), ("second", "queued"), ("third", "queued")]
    status = manager.store.get(second).read_status()
    assert status["status"] == "queued" and status["owner"]["pid"] == os.getpid()
    assert wait_for(lambda: (manager.progress(first) or 0) and manager.progress(first).step >= 2)
    manager.stop(first)
    for name in (first, second, third):
        assert manager.wait(name, timeout=120)
    assert manager.store.get(first).read_status()["status"] == "stopped"
    started = [manager.store.get(n).read_status()["started_at"] for n in (second, third)]
    finished = [manager.store.get(n).read_status()["finished_at"] for n in (second, third)]
    assert started[0] < finished[0] <= started[1]  # one after the other


def test_stop_a_running_job_checkpoints_and_resume_continues_every_step_once(manager):
    name = manager.submit(tiny_config(epochs=3), "resumable")
    assert wait_for(lambda: manager.progress(name) is not None and manager.progress(name).step >= 3)
    assert manager.stop(name)
    assert manager.wait(name, timeout=120)
    run = manager.store.get(name)
    assert run.read_status()["status"] == "stopped" and run.has_checkpoint()
    assert manager.resume(name) is None
    assert manager.wait(name, timeout=120)
    assert run.read_status()["status"] == "finished"
    assert trained_steps(run) == list(range(1, 16))  # 5 steps per epoch, every one logged once


def test_a_stop_as_the_process_starts_ends_stopped_and_resumes(manager):
    # Stop the instant the process exists: the SIGINT lands before its handler is installed (CPython's
    # default then ends the process by SIGINT). It was asked to stop, so it reads stopped, not interrupted.
    name = manager.submit(tiny_config(**LONG), "early")
    assert manager.jobs()[0].pid is not None  # started at once: its slot was free
    assert manager.stop(name)
    assert manager.wait(name, timeout=120)
    run = manager.store.get(name)
    status = run.read_status()
    assert status["status"] == "stopped", status
    assert run.owner() is None
    assert manager.resume(name) is None  # and it can be resumed
    assert wait_for(lambda: (manager.progress(name) or 0) and manager.progress(name).step >= 1)
    assert manager.stop(name) and manager.wait(name, timeout=120)
    assert run.read_status()["status"] == "stopped"


def test_stop_a_queued_job(manager):
    manager.submit(tiny_config(**LONG), "busy")
    queued = manager.submit(tiny_config(), "queued")
    assert manager.stop(queued)
    status = manager.store.get(queued).read_status()
    assert status["status"] == "stopped" and "before it started" in status["message"]
    assert "owner" not in status  # the queue let go of it
    assert not manager.stop("no-such-run")


def test_resume_refusals(manager):
    name = manager.submit(tiny_config(), "done")
    assert manager.wait(name, timeout=120)
    with pytest.raises(RunStoreError, match="already finished"):
        manager.resume(name)
    with pytest.raises(RunStoreError, match="already completed 1"):
        manager.resume(name, epochs=1)
    with pytest.raises(RunStoreError, match="no run named"):
        manager.resume("missing")
    assert manager.resume(name, epochs=2) is None
    with pytest.raises(RunStoreError, match="already running|already queued"):
        manager.resume(name, epochs=3)
    assert manager.wait(name, timeout=120)
    assert manager.store.get(name).read_status()["epoch"] == 2


def test_bad_input_is_refused_before_any_run_exists(manager, tmp_path):
    with pytest.raises(RunStoreError, match="invalid run name"):
        manager.submit(tiny_config(), "../escape")
    with pytest.raises(DataError, match="does not exist"):
        manager.submit(tiny_config(dataset="folder", data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(DataError):
        manager.submit(tiny_config(dataset="cifar10", data_dir=str(tmp_path / "empty")))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            manager.submit(tiny_config(device="cuda"))
    assert manager.store.names() == []


def test_two_cpu_slots_train_two_jobs_at_once(tmp_path):
    manager = JobManager(tmp_path / "runs", slots=["cpu#0", "cpu#1"])
    try:
        a = manager.submit(tiny_config(**LONG), "a")
        b = manager.submit(tiny_config(**LONG), "b")
        assert sorted((j.name, j.device, j.state) for j in manager.jobs()) == [("a", "cpu#0", "running"), ("b", "cpu#1", "running")]
        # Both train at the same time: each has logged steps while the other is still running.
        assert wait_for(lambda: all((manager.progress(n) or 0) and manager.progress(n).step >= 2 for n in (a, b)))
        assert {manager.store.get(n).read_status()["status"] for n in (a, b)} == {"running"}
        c = manager.submit(tiny_config(), "c")  # both busy: c waits on the least-loaded slot
        assert [j.state for j in manager.jobs() if j.name == c] == ["queued"]
    finally:
        manager.shutdown(timeout=60)
    assert {manager.store.get(n).read_status()["status"] for n in ("a", "b", "c")} == {"stopped"}


def test_a_killed_job_process_is_recorded_interrupted_and_resumes(manager):
    name = manager.submit(tiny_config(epochs=3), "killed")
    assert wait_for(lambda: manager.progress(name) is not None and manager.progress(name).epoch >= 1)
    (job,) = manager.jobs()
    os.kill(job.pid, signal.SIGKILL)
    assert manager.wait(name, timeout=60)
    run = manager.store.get(name)
    status = run.read_status()
    assert status["status"] == "interrupted" and "killed by signal 9" in status["message"]
    manager.resume(name)
    assert manager.wait(name, timeout=120)
    assert run.read_status()["status"] == "finished"
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2, 3]


def test_stop_escalates_to_sigterm_and_sigkill(tmp_path, monkeypatch):
    # A "trainer" that takes the lock, then ignores SIGINT and SIGTERM.
    stubborn = tmp_path / "stubborn.py"
    stubborn.write_text(
        "import signal, sys, time\n"
        "from wrn_core.store import RunStore\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "run = RunStore(sys.argv[sys.argv.index('--runs-dir') + 1]).get(sys.argv[sys.argv.index('resume') + 1])\n"
        "run.acquire('training')\n"
        "run.write_status('running', 'stubborn', pid=__import__('os').getpid())\n"
        "time.sleep(300)\n"
    )
    wrapper = tmp_path / "python"
    wrapper.write_text(f"#!/bin/sh\nshift 2\nexec {sys.executable} {stubborn} \"$@\"\n")  # drops '-m wrn_core'
    wrapper.chmod(0o755)
    monkeypatch.setattr(jobs_module, "STOP_GRACE_S", 0.5)
    monkeypatch.setattr(jobs_module, "KILL_GRACE_S", 0.5)
    manager = JobManager(tmp_path / "runs", python=str(wrapper))
    try:
        name = manager.submit(tiny_config(), "stubborn")
        assert wait_for(lambda: manager.store.get(name).read_status().get("message") == "stubborn", timeout=60)
        manager.stop(name)
        assert manager.wait(name, timeout=30)
        status = manager.store.get(name).read_status()
        assert status["status"] == "interrupted" and "killed by signal 9" in status["message"]
    finally:
        manager.shutdown(timeout=10)


def test_a_new_manager_sees_a_run_it_did_not_start_and_can_stop_it(tmp_path):
    first = JobManager(tmp_path / "runs")
    name = first.submit(tiny_config(**LONG), "outlives")
    assert wait_for(lambda: first.progress(name) is not None and first.progress(name).step >= 2)
    # A restarted dashboard: a new manager over the same directory, knowing nothing of the job.
    second = JobManager(tmp_path / "runs")
    try:
        status = second.store.get(name).read_status()
        assert status["status"] == "running" and status["owner"]["role"] == "training"
        step = second.progress(name).step
        assert wait_for(lambda: second.progress(name).step > step)  # live, from the heartbeat
        assert second.stop(name)
        run = second.store.get(name)
        assert wait_for(lambda: run.read_status()["status"] == "stopped", timeout=60)
        assert run.has_checkpoint()
    finally:
        second.shutdown(timeout=10)
        first.shutdown(timeout=60)


def test_a_cli_run_is_stopped_through_its_lock_owner(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wrn_core", "train", "--blocks", "1", "--widen-factor", "1", "--synthetic-train", "160",
         "--synthetic-test", "50", "--batch-size", "32", "--epochs", "500", "--device", "cpu", "--runs-dir",
         str(runs_dir), "--name", "cli", "--quiet"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    manager = JobManager(runs_dir)
    try:
        assert wait_for(lambda: manager.progress("cli") is not None and manager.progress("cli").step >= 2)
        assert not manager.is_active("cli") and manager.stop("cli")
        assert proc.wait(timeout=60) == 0
        status = manager.store.get("cli").read_status()
        assert status["status"] == "stopped" and status["host"] == socket.gethostname()
    finally:
        if proc.poll() is None:
            proc.kill()
        manager.shutdown(timeout=10)


def test_a_new_manager_reports_orphaned_runs_interrupted_and_can_resume_them(tmp_path):
    store = RunStore(tmp_path)
    orphan = store.create(tiny_config(), "orphan")
    orphan.write_status("running", "training", pid=999_999_999)  # left behind by a process that is gone
    manager = JobManager(tmp_path)
    try:
        assert orphan.read_status()["status"] == "interrupted"
        manager.resume("orphan")
        assert manager.wait("orphan", timeout=120)
        assert orphan.read_status()["status"] == "finished"
    finally:
        manager.shutdown()
