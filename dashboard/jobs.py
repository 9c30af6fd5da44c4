"""The server process's one job manager and one sweep executor for the runs directory, shared by every session.

Both live in st.cache_resource: callers only call their methods. Training processes outlive the
dashboard; a restarted one sees them through the run store.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from wrn_core.jobs import JobManager
from wrn_core.jobs.executor import LOCAL, RAY
from wrn_core.jobs.ray_processes import RaySweepProcesses
from wrn_core.jobs.sweep_executors import SweepExecutors
from wrn_core.jobs.sweep_runner import SweepRunner
from wrn_core.store import default_runs_dir


def runs_dir() -> Path:
    """The run directory: $WRN_RUNS_DIR or ./runs, resolved."""
    return default_runs_dir().resolve()


def _release(manager: JobManager) -> None:
    # Queued runs are this process's and stop; training processes outlive the dashboard.
    manager.shutdown(stop_running=False)


@st.cache_resource(show_spinner=False, on_release=_release)
def _job_manager(path: str) -> JobManager:
    return JobManager(path)


def get_job_manager() -> JobManager:
    """The process-wide job manager for runs_dir() (st.cache_resource; callers only call its methods)."""
    return _job_manager(str(runs_dir()))


@st.cache_resource(show_spinner=False, on_release=lambda executors: executors.shutdown())
def _sweep_executor(path: str, manager_id: int, _manager: JobManager) -> SweepExecutors:
    # Ray's executor here starts each sweep's driver as a process of its own (it imports no ray itself).
    return SweepExecutors(_manager.store, {LOCAL: SweepRunner(_manager), RAY: RaySweepProcesses(path)})


def get_sweep_executor() -> SweepExecutors:
    """The process-wide sweep executor: starts a sweep where its Placement says (this machine's job manager, or a
    Ray sweep process), and stops and watches sweeps wherever they train (st.cache_resource)."""
    manager = get_job_manager()
    return _sweep_executor(str(runs_dir()), id(manager), manager)
