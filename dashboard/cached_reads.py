"""Cached reads of the run store for pages that poll it: records, statuses, heartbeats, findings and their figures.

Each cache is keyed by what it depends on (metrics.jsonl's mtime and size, a run's path), so a live view
that reruns every second re-reads a file only when it changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import streamlit as st

from wrn_core.analysis import Finding, diagnose
from wrn_core.plots import live_figure, sweep_small_multiples
from wrn_core.reference import official_curve
from wrn_core.store import Run, RunStore, RunStoreError
from wrn_core.store.records import ACTIVE_STATUSES, EVENT, RUNNING, Progress, has_points, of_kind, progress_from_heartbeat

def progress_of(run: Run) -> Progress | None:
    """What the run's trainer last reported (heartbeat.json), whichever process trains it."""
    return progress_from_heartbeat(run.read_heartbeat())


def active_runs(store) -> list[tuple[str, str, Progress | None]]:
    """(name, queued|running, progress) of every run some process holds: the same facts the pages show."""
    rows = []
    for summary in store.summaries():
        if summary.status in ACTIVE_STATUSES:
            run = Run(store.root / summary.name)
            rows.append((summary.name, summary.status, progress_of(run) if summary.status == RUNNING else None))
    return rows


@st.cache_data(show_spinner=False, max_entries=10_000)
def _created_at(run_path: str) -> float:
    """A run's creation time from status.json (it never changes, so it is read once per run)."""
    return Run(Path(run_path)).status().created_at or 0.0


def recent_run_names(store) -> list[str]:
    """Run names, newest first; a directory listing plus one cached read per new run (cheap to poll)."""
    names = store.names()
    return sorted(names, key=lambda name: (_created_at(str(store.root / name)), name), reverse=True)


def file_stamp(path: Path) -> tuple[int, int]:
    """A file's (mtime ns, size), (0, 0) when it is missing or unreadable: a replaced file gets a new stamp (the key
    of a cached read of it)."""
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def metrics_stamp(run: Run) -> tuple[str, tuple[int, int]]:
    """(the run's path, its metrics.jsonl (mtime ns, size)): what a cached view of its curves depends on."""
    return str(run.path), file_stamp(run.metrics_path)


@st.cache_data(show_spinner=False, max_entries=64)
def _records_cached(path: str, stamp: tuple[int, int]) -> list[dict[str, Any]]:
    return Run(Path(path)).read_metrics()


@st.cache_data(show_spinner=False, max_entries=64)
def _warning_cached(path: str, stamp: tuple[int, int]) -> str | None:
    return Run(Path(path)).read_metrics_log().warning


def metrics_warning(run: Run) -> str | None:
    """'2 unreadable lines in metrics.jsonl (skipped)', or None; re-read only when the file changed."""
    return _warning_cached(str(run.path), file_stamp(run.metrics_path))


def read_records(run: Run) -> list[dict[str, Any]]:
    """A run's metrics records, re-read only when metrics.jsonl changed."""
    return _records_cached(str(run.path), file_stamp(run.metrics_path))


def read_runs(store: RunStore, names: Iterable[str]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """(records by name, config dicts by name) of these runs; a run that is gone is left out of both, one
    whose config.json is unreadable out of the configs only (its one-line problem is shown with the run)."""
    records, configs = {}, {}
    for name in names:
        try:
            run = store.get(name)
        except RunStoreError:
            continue
        records[name] = read_records(run)
        try:
            configs[name] = run.read_config_dict()
        except RunStoreError:
            pass
    return records, configs


def newest_with_data(store: RunStore, names: list[str], active: Iterable[str] = ()) -> str | None:
    """The first of these run names (newest first) whose metrics hold step or epoch records, or that is
    `active` (queued or training: its records are coming), else None."""
    active = set(active)
    for name in names:
        if name in active:
            return name
        try:
            run = store.get(name)
        except RunStoreError:
            continue
        if has_points(read_records(run)):
            return name
    return None


def events(records: list[dict[str, Any]]) -> list[str]:
    """Messages of a run's event records (e.g. the torch.compile warm-up), oldest first."""
    return [str(r.get("message") or r.get("event")) for r in of_kind(records, EVENT)]


# cache_resource, not cache_data: cache_data hands back an unpickled copy, and unpickling a
# plotly Figure re-validates it (~0.1 s here, every second the live view polls). The figure is
# shared, so nobody may mutate it; st.plotly_chart only serialises it.
@st.cache_resource(show_spinner=False, max_entries=16)
def _live_figure_cached(path: str, stamp: tuple[int, int], epochs: int | None):
    return live_figure(Run(Path(path)).read_metrics(), epochs=epochs)


def cached_live_figure(run: Run, epochs: int | None = None):
    """live_figure for a run of `epochs` planned epochs, rebuilt only when metrics.jsonl or the plan changed
    (the live view polls every second)."""
    return _live_figure_cached(str(run.path), file_stamp(run.metrics_path), int(epochs) if epochs else None)


# Shared like _live_figure_cached (cache_resource: no unpickling; nobody mutates it). The key is
# what the figure shows: the sweep, each cell's status (panel titles), planned epochs and
# metrics.jsonl stamp, and the reference.
@st.cache_resource(show_spinner=False, max_entries=8)
def _small_multiples_cached(sweep_key: tuple, stamps: tuple, reference: bool, _cells, _records):
    return sweep_small_multiples(_cells, _records, official_curve("epoch") if reference else None)


def cached_small_multiples(store, sweep_key: tuple, cells, reference: bool):
    """sweep_small_multiples of a sweep's cells (records via read_records), rebuilt only when a cell's
    status, planned epochs or metrics.jsonl changed; reference overlays the authors' WRN-40-4 curve."""
    records = {}
    stamps = []
    for run_name, status, epochs in zip(cells["run"], cells["status"], cells["epochs"]):
        run = Run(store.root / run_name)
        stamps.append((run_name, str(status), int(epochs), file_stamp(run.metrics_path)))
        if run.path.is_dir():
            records[run_name] = read_records(run)
    return _small_multiples_cached(sweep_key, tuple(stamps), bool(reference), cells, records)


@st.cache_data(show_spinner=False, max_entries=256)
def _findings_cached(path: str, stamp: tuple[int, int]) -> list[Finding]:
    run = Run(Path(path))
    try:
        config = run.read_config_dict()
    except RunStoreError:  # a damaged config.json: judge with the default number of classes
        config = None
    return diagnose(run.read_metrics(), config)


def run_findings(run: Run) -> list[Finding]:
    """diagnose() for a run, recomputed only when metrics.jsonl changed (cheap to poll every second)."""
    return _findings_cached(str(run.path), file_stamp(run.metrics_path))
