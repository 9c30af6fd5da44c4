"""Shared pytest fixtures: a test that leaves a trainer or a JobManager running fails; dashboard isolation for the dashboard modules."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

# Ray reads this once, when it is first imported (ray_constants.ENABLE_RAY_CLUSTER): set before any test module
# imports ray, every Ray node a test starts in this process or its children takes 127.0.0.1, never the machine's
# interface address (seen on a CI machine with a default route: worker nodes on its public address).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Modules whose names start so are the dashboard tests: test_app, test_app_runs, test_browser, test_browser_walk, ...
DASHBOARD_TEST_PREFIXES = ("test_app", "test_browser")


def _clear_streamlit_caches() -> None:
    import streamlit as st

    # on_release of the cached job manager shuts it down: queued jobs stop, running ones train on (as they
    # outlive a dashboard), for the leak guard to report.
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture(autouse=True)
def _dashboard_isolation(request, tmp_path, monkeypatch, _no_trainer_outlives_its_test):
    """Dashboard tests: runs go to a fresh tmp dir, and the page's cached job manager is released after the
    test (queued jobs stop; a job still training is the leak guard's to report: it is set up first, so it looks after this)."""
    if not request.module.__name__.rsplit(".", 1)[-1].startswith(DASHBOARD_TEST_PREFIXES):
        yield None
        return
    runs = tmp_path / "runs"
    monkeypatch.setenv("WRN_RUNS_DIR", str(runs))
    _clear_streamlit_caches()
    try:
        yield runs
    finally:
        _clear_streamlit_caches()


# Command-line words of the processes a test starts to train: `python -m wrn_core ...` and torchrun.
TRAINER_MARKS = (("-m", "wrn_core"), ("-m", "torch.distributed.run"))
# A process a test starts to run the CLI some other way (`python -c` with a patched engine) carries this in
# its environment: trainer_env() gives it; its children inherit it.
TRAINER_ENV = "WRN_TEST_TRAINER"
# A trainer that recorded its end may still be exiting when its test returns: seconds it gets to be gone.
LEAK_GRACE_S = float(os.environ.get("WRN_TEST_LEAK_GRACE_S", "10"))


def trainer_env(**extra: str) -> dict[str, str]:
    """os.environ plus TRAINER_ENV (and `extra`): for a `python -c` process that trains, so is_trainer knows it."""
    return {**os.environ, TRAINER_ENV: "1", **extra}


def is_trainer(cmdline: list[str], environ: dict[str, str] | None = None) -> bool:
    """Whether a process is a training process (or its launcher) that a test may have started: by its command
    line, or by TRAINER_ENV in its environment."""
    pairs = set(zip(cmdline, cmdline[1:]))
    return (any(mark in pairs for mark in TRAINER_MARKS) or any(part.endswith("torchrun") for part in cmdline[:2])
            or (environ or {}).get(TRAINER_ENV) == "1")


def _trainers() -> dict[int, psutil.Process]:
    """Training processes descending from this pytest process, by pid (a job manager's children start
    their own session, yet stay our descendants; so do torchrun's ranks, a test server's jobs and Ray's cells)."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if _alive(proc) and is_trainer(proc.cmdline(), proc.environ()):
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_new_trainers(before: set[int]) -> list[int]:
    """SIGKILL every training process that appeared since `before` (pids); returns their pids."""
    new = [proc for pid, proc in _trainers().items() if pid not in before]
    for proc in new:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + 10
    while any(_alive(proc) for proc in new) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [proc.pid for proc in new]


def _alive(proc: psutil.Process) -> bool:
    """Running, as opposed to gone or a zombie: the zombie is left to whoever started it (its Popen) to reap."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _job_managers() -> dict[threading.Thread, object]:
    """The JobManagers of this process whose supervisor thread runs, by that thread (its target is the
    manager's bound _supervise)."""
    return {thread: getattr(getattr(thread, "_target", None), "__self__", None)
            for thread in threading.enumerate() if thread.name == "wrn-jobs" and thread.is_alive()}


def _described(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline())}"
    except psutil.Error:
        return f"pid {proc.pid}"


def leftovers(trainers_before: set[int], managers_before: set[threading.Thread]) -> list[str]:
    """What a test left running, one line each: training processes that appeared since `trainers_before` and
    are still alive after LEAK_GRACE_S, and JobManagers (not in `managers_before`) never shut down (one that
    was, but whose jobs still train, shows through those jobs)."""
    new = [proc for pid, proc in _trainers().items() if pid not in trainers_before]
    _, alive = psutil.wait_procs(new, timeout=LEAK_GRACE_S) if new else ([], [])
    found = [f"a training process, {_described(proc)}" for proc in alive if _alive(proc)]
    for thread, manager in _job_managers().items():
        if thread not in managers_before and not getattr(manager, "_closed", True):  # shut down: its thread is ending
            found.append(f"a JobManager over {manager.store.root} that was never shut down")
    return found


@pytest.fixture(autouse=True)
def _no_trainer_outlives_its_test():
    """A test that leaves a training process (`python -m wrn_core`, torchrun, a Ray cell, a `python -c` trainer
    with TRAINER_ENV) or a JobManager running fails, naming each with its command line. They are then killed
    and shut down all the same (a safety net for the tests after it). Servers kept by module fixtures
    (streamlit, chromium) are not trainers; a trainer or manager that existed before this test is left alone."""
    trainers_before = set(_trainers()) | {os.getpid()}
    managers_before = set(_job_managers())
    yield
    left = leftovers(trainers_before, managers_before)
    kill_new_trainers(trainers_before)
    for thread, manager in _job_managers().items():
        if thread not in managers_before and manager is not None:
            manager.shutdown(timeout=10)
    if left:
        pytest.fail("left running by this test (now killed):\n  " + "\n  ".join(left), pytrace=False)
