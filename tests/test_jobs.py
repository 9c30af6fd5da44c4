"""Tests for the job manager: training processes, one FIFO queue per device slot, stop, resume, supervision."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

import torch

from polling import wait_until
from wrn_core.jobs import supervisor as jobs_module
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.errors import DataError
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


def recorded(run) -> dict:
    """status.json as the job manager or the trainer wrote it (read_status() would reconcile it with the lock)."""
    return json.loads(run.status_path.read_text())


def stub_python(tmp_path: Path, name: str, body: str) -> str:
    """An executable that stands in for the interpreter a JobManager starts (`<it> -m wrn_core resume NAME ...`)."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return str(path)


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
    status = recorded(run)  # what the manager wrote, not what a read reconciles from the free lock
    assert status["status"] == "interrupted" and "killed by signal 9" in status["message"], status
    manager.resume(name)
    assert manager.wait(name, timeout=120)
    assert run.read_status()["status"] == "finished"
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2, 3]


# A "trainer" that records every signal it gets and ignores SIGINT and SIGTERM; only SIGKILL ends it.
STUBBORN = """
import signal, sys, time
log = open(sys.argv[0] + ".signals", "a", buffering=1)
def note(signum, frame):
    log.write(signal.Signals(signum).name + "\\n")
signal.signal(signal.SIGINT, note)
signal.signal(signal.SIGTERM, note)
log.write("ready\\n")
while True:
    time.sleep(0.05)
"""


class FakeClock:
    """The supervisor's monotonic clock, moved by the test alone: the stop's grace periods pass when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_stop_sends_sigint_then_sigterm_then_sigkill(tmp_path, monkeypatch):
    python = stub_python(tmp_path, "stubborn", STUBBORN)
    signals = Path(python + ".signals")
    clock = FakeClock()
    monkeypatch.setattr(jobs_module, "time", SimpleNamespace(monotonic=clock.monotonic, sleep=time.sleep, time=time.time))
    manager = JobManager(tmp_path / "runs", python=python)
    looks: list[bool] = []
    manager.add_watcher(looks.append)  # called after every look the supervisor takes at its processes
    proc = None

    def after_two_more_looks() -> None:
        """Until the supervisor has looked twice more (once wholly after now) at the clock as it stands."""
        seen = len(looks)
        wait_until(lambda: len(looks) >= seen + 2, "the supervisor to look at its jobs")

    def noted() -> list[str]:
        return signals.read_text().split() if signals.exists() else []

    try:
        name = manager.submit(tiny_config(), "stubborn")
        proc = manager._jobs[name].proc
        wait_until(lambda: noted() == ["ready"], "the stub to start", timeout=60)
        assert manager.stop(name)
        wait_until(lambda: noted() == ["ready", "SIGINT"], "the stub to note SIGINT")
        after_two_more_looks()
        assert noted() == ["ready", "SIGINT"] and proc.poll() is None  # within its grace: nothing more is sent
        clock.now += jobs_module.STOP_GRACE_S + 1
        wait_until(lambda: noted() == ["ready", "SIGINT", "SIGTERM"], "SIGTERM once the stop's grace has passed")
        after_two_more_looks()
        assert proc.poll() is None  # SIGTERM's own grace: not killed yet
        clock.now += jobs_module.KILL_GRACE_S + 1
        assert manager.wait(name, timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert noted() == ["ready", "SIGINT", "SIGTERM"]
        status = recorded(manager.store.get(name))
        assert status["status"] == "interrupted" and "killed by signal 9" in status["message"], status
    finally:
        manager.shutdown(timeout=10)
        if proc is not None and proc.poll() is None:
            proc.kill()


def test_a_process_that_exits_before_recording_an_end_is_failed_with_its_code(tmp_path):
    manager = JobManager(tmp_path / "runs", python=stub_python(tmp_path, "crash", "import sys\nsys.exit(3)\n"))
    try:
        name = manager.submit(tiny_config(), "crash")
        assert manager.wait(name, timeout=60)
        status = recorded(manager.store.get(name))
        assert status["status"] == "failed" and status["error_kind"] == "exception", status
        assert "exited with code 3 before recording an end" in status["message"]
        assert manager.store.get(name).owner() is None and manager.jobs() == []
    finally:
        manager.shutdown(timeout=10)


def test_a_process_that_cannot_start_is_failed_and_the_queue_moves_on(tmp_path):
    manager = JobManager(tmp_path / "runs", python=str(tmp_path / "nonexistent" / "python"))
    try:
        first = manager.submit(tiny_config(), "first")
        second = manager.submit(tiny_config(), "second")  # its slot is free again at once
        for name in (first, second):
            status = recorded(manager.store.get(name))
            assert status["status"] == "failed" and status["error_kind"] == "exception", status
            assert status["message"].startswith("could not start the training process: ")
            assert manager.store.get(name).owner() is None and not manager.is_active(name)
        assert manager.jobs() == []
    finally:
        manager.shutdown(timeout=10)


def test_a_device_without_a_job_queue_is_refused_before_any_run_exists(tmp_path):
    manager = JobManager(tmp_path / "runs", slots=["cuda:0"])  # a GPU queue only; the config asks for the CPU
    try:
        with pytest.raises(RunStoreError, match=r"^no job queue for device 'cpu' here \(queues: cuda:0\)$"):
            manager.submit(tiny_config(device="cpu"), "nowhere")
        assert manager.store.names() == []
    finally:
        manager.shutdown(timeout=10)


def test_a_data_parallel_job_holds_every_slot_of_its_kind(tmp_path):
    manager = JobManager(tmp_path / "runs", slots=["cpu#0", "cpu#1"])
    try:
        single = manager.submit(tiny_config(**LONG), "single")
        ddp = manager.submit(tiny_config(**LONG), "ddp", nproc=2)
        # cpu#1 is idle, yet the 2-process job waits: it needs both CPU slots.
        assert [(j.name, j.device, j.state) for j in manager.jobs()] == [
            ("single", "cpu#0", "running"), ("ddp", "cpu#1", "queued")]
        after = manager.submit(tiny_config(), "after")  # on cpu#0, behind single; it must not overtake ddp
        assert wait_for(lambda: (manager.progress(single) or 0) and manager.progress(single).step >= 1)
        manager.stop(single)
        assert manager.wait(single, timeout=120)
        assert wait_for(lambda: (manager.progress(ddp) or 0) and manager.progress(ddp).step >= 2, timeout=240)
        # While the data-parallel job trains, a one-process job waits although its own slot is free.
        states = {j.name: (j.device, j.state) for j in manager.jobs()}
        assert states == {"ddp": ("cpu#1", "running"), "after": ("cpu#0", "queued")}, states
        manager.stop(ddp)
        assert manager.wait(ddp, timeout=120) and manager.wait(after, timeout=120)
        assert recorded(manager.store.get(after))["status"] == "finished"
        assert recorded(manager.store.get(after))["started_at"] >= recorded(manager.store.get(ddp))["finished_at"]
    finally:
        manager.shutdown(timeout=60)


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
        assert recorded(orphan)["status"] == "interrupted"  # the new manager reconciled the file itself
        manager.resume("orphan")
        assert manager.wait("orphan", timeout=120)
        assert orphan.read_status()["status"] == "finished"
    finally:
        manager.shutdown()


def test_a_trainer_left_behind_by_a_test_is_killed_and_nothing_else():
    from conftest import is_trainer, kill_new_trainers, trainer_env

    assert is_trainer([sys.executable, "-m", "torch.distributed.run", "--standalone", "-m", "wrn_core", "train"])
    assert not is_trainer([sys.executable, "-m", "streamlit", "run", "dashboard/app.py"])
    assert is_trainer([sys.executable, "-c", "from wrn_core.cli import main; main()"], trainer_env())  # marked
    assert not is_trainer([sys.executable, "-c", "import time"], dict(os.environ))
    before = {os.getpid()}
    trainer = subprocess.Popen([sys.executable, "-m", "wrn_core", "train", "--epochs", "500", "--device", "cpu", "--quiet",
                                "--runs-dir", os.devnull + "-not-a-dir"], cwd=REPO, stderr=subprocess.DEVNULL)
    patched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=trainer_env())
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        assert sorted(kill_new_trainers(before)) == sorted([trainer.pid, patched.pid])
        assert trainer.wait(timeout=30) == -signal.SIGKILL and patched.wait(timeout=30) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for proc in (bystander, trainer, patched):
            proc.kill()
            proc.wait()


LEAKY_TESTS = """
import subprocess, sys
from conftest import trainer_env
from wrn_core.jobs import JobManager

def test_leaves_a_trainer():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "left-by-a-test"], env=trainer_env())

def test_leaves_a_job_manager(tmp_path):
    JobManager(tmp_path / "runs", slots=["cpu"])

def test_shuts_its_job_manager_down(tmp_path):
    JobManager(tmp_path / "runs", slots=["cpu"]).shutdown()
"""


def test_a_test_that_leaves_a_trainer_or_a_job_manager_running_fails_naming_it(tmp_path):
    """The leak guard (conftest) in a pytest run of its own: each leak fails its own test, naming what was left
    (which is then killed or shut down); a test that cleans up passes."""
    (tmp_path / "test_leaky.py").write_text(LEAKY_TESTS)
    env = {**os.environ, "WRN_TEST_LEAK_GRACE_S": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_leaky.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "3 passed, 2 errors" in out, out  # two tests pass their checks and error at teardown
    assert "ERROR at teardown of test_leaves_a_trainer" in out and "ERROR at teardown of test_leaves_a_job_manager" in out
    assert "a training process, pid " in out and "-c import time; time.sleep(120) left-by-a-test" in out, out
    assert "a JobManager over " in out and "that was never shut down" in out, out
    assert not [p for p in psutil.process_iter(["cmdline"]) if "left-by-a-test" in (p.info["cmdline"] or [])]
