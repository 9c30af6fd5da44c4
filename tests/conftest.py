"""Shared pytest fixtures: no trainer outlives the test that started it; dashboard isolation for the dashboard modules."""

from __future__ import annotations

import os
import time

import psutil
import pytest

# Modules whose names start so are the dashboard tests: test_app, test_app_runs, test_browser, test_browser_walk, ...
DASHBOARD_TEST_PREFIXES = ("test_app", "test_browser")


def _clear_streamlit_caches() -> None:
    import streamlit as st

    # on_release of the cached job manager shuts it down (stops its training threads).
    st.cache_resource.clear()
    st.cache_data.clear()


def stop_trainers(runs_dir) -> None:
    """Kill the training processes that hold runs in runs_dir: jobs outlive the dashboard that started them."""
    import os
    import signal
    from pathlib import Path

    from wrn_core.store import RunStore

    store = RunStore(Path(runs_dir))
    for name in store.names():
        owner = store.get(name).owner()
        if owner is not None and owner.pid and owner.pid != os.getpid():
            try:
                os.kill(owner.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(autouse=True)
def _dashboard_isolation(request, tmp_path, monkeypatch):
    """Dashboard tests: runs go to a fresh tmp dir and no job manager outlives a test."""
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
        stop_trainers(runs)


# Command-line words of the processes a test starts to train: `python -m wrn_core ...` and torchrun.
TRAINER_MARKS = (("-m", "wrn_core"), ("-m", "torch.distributed.run"))


def is_trainer(cmdline: list[str]) -> bool:
    """Whether a command line is a training process (or its launcher) that a test may have started."""
    pairs = set(zip(cmdline, cmdline[1:]))
    return any(mark in pairs for mark in TRAINER_MARKS) or any(part.endswith("torchrun") for part in cmdline[:2])


def _trainers() -> dict[int, psutil.Process]:
    """Training processes descending from this pytest process, by pid (a job manager's children start
    their own session, yet stay our descendants; so do torchrun's ranks and a test server's jobs)."""
    found = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if is_trainer(proc.cmdline()):
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


@pytest.fixture(autouse=True)
def _no_trainer_outlives_its_test():
    """Kill the `python -m wrn_core` and torchrun processes a test started and left behind (a failed
    assertion, a timeout). Servers kept by module fixtures (streamlit, chromium) are not trainers;
    a trainer a module fixture started before this test is left alone."""
    before = set(_trainers()) | {os.getpid()}
    yield
    kill_new_trainers(before)
