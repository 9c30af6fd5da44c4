"""The dashboard test modules' isolation, for modules conftest's list does not name: import `isolated_runs`."""

from __future__ import annotations

import pytest

try:
    from conftest import _clear_streamlit_caches, stop_trainers
except ImportError:  # tests/ imported as a package
    from tests.conftest import _clear_streamlit_caches, stop_trainers


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """Runs go to a fresh tmp dir (the same one conftest's fixture would pick), no job manager outlives a test,
    and no training process either."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("WRN_RUNS_DIR", str(runs))
    _clear_streamlit_caches()
    try:
        yield runs
    finally:
        _clear_streamlit_caches()
        stop_trainers(runs)
