"""Shared pytest fixtures; the dashboard ones apply only to the dashboard test modules."""

from __future__ import annotations

import pytest

DASHBOARD_TEST_MODULES = ("test_app", "test_app_train", "test_browser")


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
    if request.module.__name__.rsplit(".", 1)[-1] not in DASHBOARD_TEST_MODULES:
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
