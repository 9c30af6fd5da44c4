"""Shared dashboard helpers: the cached job manager, cached metrics reads, formatting and flash messages."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from wrn_core.analysis import Finding, diagnose
from wrn_core.config import ConfigError, TrainConfig
from wrn_core.errors import DataError
from wrn_core.errors import one_line  # noqa: F401 - pages call lab_ui.one_line
from wrn_core.jobs import JobManager
from wrn_core.jobs.sweep_runner import SweepRunner
from wrn_core.plots import live_figure, sweep_small_multiples
from wrn_core.reference import official_curve
from wrn_core.store import Run, RunStore, RunStoreError, default_runs_dir
from wrn_core.store.records import (
    ACTIVE_STATUSES,
    DIVERGED,
    EPOCH,
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STEP,
    Progress,
    progress_from_heartbeat,
)
from wrn_core.sweeps import cell_statuses, load_sweep

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
# Session-state keys of value widgets that must survive a page switch (see keep_form_state).
PERSISTENT_PREFIXES = ("arch_", "train_f_", "runs_v_", "sweep_f_", "sweep_v_")

OPTIMIZER_LABELS = {"sgd-nesterov": "SGD-Nesterov", "adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
SCHEDULE_LABELS = {
    "step": "step (×0.2 at 30/60/80%)",
    "cosine": "cosine",
    "onecycle": "one-cycle",
    "constant": "constant",
}
DATASET_LABELS = {
    "synthetic": "Synthetic shapes (built in)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "folder": "Image folder",
}
DDP_CHOICE = "ddp"  # the device box's "all GPUs (DDP)": config device cuda, one process per GPU


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


@st.cache_resource(show_spinner=False, on_release=lambda runner: runner.shutdown())
def _sweep_runner(path: str, manager_id: int, _manager: JobManager) -> SweepRunner:
    return SweepRunner(_manager)


def get_sweep_runner() -> SweepRunner:
    """The process-wide sweep runner on get_job_manager() (st.cache_resource; callers only call its methods)."""
    manager = get_job_manager()
    return _sweep_runner(str(runs_dir()), id(manager), manager)


@st.cache_resource(show_spinner=False)
def _ray_sweeps(path: str):
    from wrn_core.jobs.ray_processes import RaySweepProcesses  # imports no ray: the sweep processes do

    return RaySweepProcesses(path)


def get_ray_sweeps():
    """The process-wide RaySweepProcesses for runs_dir(): sweeps launched on a Ray cluster (background processes)."""
    return _ray_sweeps(str(runs_dir()))


def keep_form_state() -> None:
    """Re-own form values so Streamlit keeps them while their page is not shown.

    Streamlit drops a widget's state at the end of a run in which the widget was not drawn;
    assigning the value to its key turns it into ordinary session state that survives.
    """
    for key in list(st.session_state.keys()):
        if not (isinstance(key, str) and key.startswith(PERSISTENT_PREFIXES)):
            continue
        value = st.session_state[key]
        # Only plain input values; element states (table selections, charts) are not assignable.
        if value is None or isinstance(value, (bool, int, float, str, list, tuple)):
            st.session_state[key] = value


@st.cache_resource(show_spinner=False)
def cuda_description() -> str:
    """'cuda (NVIDIA H100 …)' or 'cpu only' — checked once per process."""
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps (Apple GPU)"
    unusable = unusable_gpu()
    if unusable:
        return f"cpu only: {unusable}"
    return "cpu only (no CUDA GPU)"


@st.cache_resource(show_spinner=False)
def unusable_gpu() -> str | None:
    """Why an NVIDIA GPU on this machine cannot be used by this torch, with the fix (one line), or None."""
    from wrn_core.engine.devices import unusable_gpu_reason

    return unusable_gpu_reason()


@st.cache_data(show_spinner=False, ttl=10)
def device_choices() -> dict[str, str]:
    """Device box options (value -> label): auto, every real device with its free memory, and
    "all GPUs (DDP)" where there are two or more. Re-read at most every 10 s."""
    from wrn_core.engine.devices import list_devices

    devices = list_devices()
    gpus = [d for d in devices if d.kind == "cuda"]
    choices = {"auto": f"auto ({'the least loaded GPU' if gpus else 'the CPU'})"}
    choices.update({d.name: d.label() for d in devices})
    if len(gpus) >= 2:
        choices[DDP_CHOICE] = f"all {len(gpus)} GPUs (DDP, one process per GPU)"
    return choices


def gpu_count() -> int:
    return sum(1 for value in device_choices() if value.startswith("cuda:"))


@st.cache_data(show_spinner=False, ttl=5, max_entries=64)
def _launch_problem_cached(config_json: str) -> str | None:
    from wrn_core.engine.resume import preflight

    try:
        preflight(TrainConfig.from_dict(json.loads(config_json)))
    except (ConfigError, DataError) as exc:
        return one_line(exc)
    return None


def launch_problem(config: TrainConfig) -> str | None:
    """What Launch would refuse this config for before training (no such device, the data missing, a batch that
    does not divide over the GPUs), in one line, or None; the same check Launch makes, re-made at most every 5 s."""
    return _launch_problem_cached(json.dumps(config.to_dict(), sort_keys=True))


def forget_launch_problems() -> None:
    """Check again at once (after a download put the data in place)."""
    _launch_problem_cached.clear()


# The predicted training time, as the Sweep page's pre-flight makes it (wrn_core.sweeps.probe): timed steps of
# the engine's own train step on the run's device, plus a new process's start-up. Timed beside the page (a wide
# model on a CPU takes minutes to time, and the page must not wait), one probe at a time, shared by every session.
# Unlike the Sweep page it loads no data (an image folder's first decode can take minutes): that comes on top.
PROBE_STEPS = 1  # timed steps after the warm-up one: the Train page times every model the form settles on
PROBE_TTL_S = 1800  # seconds a timing is trusted


@st.cache_resource(show_spinner=False)
def _probe_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="time-probe")


def _one_cell(config: TrainConfig):
    from wrn_core.sweeps import make_sweep

    return make_sweep("predicted-time", config, [config.model.blocks], [config.model.widen_factor], [config.seed])


def _probe(config: TrainConfig):
    """(Probe, '') or (None, why it could not time the steps, in one line)."""
    from wrn_core.sweeps import probe

    try:
        return probe(_one_cell(config), steps=PROBE_STEPS, measure_startup=False), ""
    except Exception as exc:  # noqa: BLE001 - any failure is a line beside Launch, never a dead thread
        return None, one_line(exc)


# ttl: a time measured while the machine was busy (another run training, say) is measured again later.
@st.cache_resource(show_spinner=False, max_entries=32, ttl=PROBE_TTL_S)
def _probe_future(key: str, _config: TrainConfig) -> Future:
    return _probe_executor().submit(_probe, _config)


@st.cache_resource(show_spinner=False, ttl=PROBE_TTL_S)
def _interpreter_future() -> Future:
    from wrn_core.sweeps.probe import interpreter_seconds

    return _probe_executor().submit(interpreter_seconds)


def predicted_time(config: TrainConfig) -> tuple[float | None, str | None]:
    """(predicted seconds to train, None) once this model, batch, optimizer, device and image size have been
    timed; (None, None) while they are; (None, the reason) when they could not be. Loading the data is left out."""
    from wrn_core.model.flops import input_size

    values = config.to_dict()
    key = json.dumps([values["model"], values["batch_size"], values["optimizer"], values["device"],
                      input_size(config)], sort_keys=True)
    startup, future = _interpreter_future(), _probe_future(key, config)
    if not (future.done() and startup.done()):
        return None, None
    measured, reason = future.result()
    if measured is None:
        return None, reason
    return _predicted_cached(json.dumps(values, sort_keys=True), key, startup.result(), measured, config)


# ttl: an image folder's size is listed again now and then (images may be added).
@st.cache_data(show_spinner=False, ttl=10, max_entries=64)
def _predicted_cached(config_json: str, key: str, startup_s: float, _measured, _config: TrainConfig):
    from dataclasses import replace

    from wrn_core.sweeps import preflight_frame

    try:
        plan = preflight_frame(_one_cell(_config), replace(_measured, startup_seconds=startup_s))
    except (ConfigError, DataError, OSError) as exc:
        return None, one_line(exc)
    return float(plan["predicted_s"].iloc[0]), None


@st.cache_data(show_spinner=False, ttl=5)
def _measured_memory_cached(root: str, model) -> list[dict[str, Any]]:
    from wrn_core.engine.monitor import measured_memory
    from wrn_core.store import RunStore

    return measured_memory(RunStore(Path(root)), model)


def measured_memory(model) -> list[dict[str, Any]]:
    """Runs of this model with their measured peak memory (re-read at most every 5 s)."""
    return _measured_memory_cached(str(get_job_manager().store.root), model)


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


def stop_sweep(runner: SweepRunner, name: str) -> set[str]:
    """Stop starting the sweep's cells and stop its running ones, also those another (or an earlier)
    dashboard process started, which this runner does not drive; returns the runs asked to stop."""
    manager = runner.manager
    stopped = set(runner.stop(name))
    try:
        statuses = cell_statuses(manager.store, load_sweep(manager.store.root, name))
    except RunStoreError:
        statuses = {}
    for run, status in statuses.items():
        if status in ACTIVE_STATUSES and run not in stopped and manager.stop(run):
            stopped.add(run)
    return stopped


@st.cache_data(show_spinner=False, max_entries=10_000)
def _created_at(run_path: str) -> float:
    """A run's creation time from status.json (it never changes, so it is read once per run)."""
    value = Run(Path(run_path)).read_status().get("created_at")
    return float(value) if isinstance(value, (int, float)) else 0.0


def recent_run_names(store) -> list[str]:
    """Run names, newest first; a directory listing plus one cached read per new run (cheap to poll)."""
    names = store.names()
    return sorted(names, key=lambda name: (_created_at(str(store.root / name)), name), reverse=True)


def _file_key(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def metrics_stamp(run: Run) -> tuple[str, tuple[int, int]]:
    """(the run's path, its metrics.jsonl (mtime ns, size)): what a cached view of its curves depends on."""
    return str(run.path), _file_key(run.metrics_path)


@st.cache_data(show_spinner=False, max_entries=64)
def _records_cached(path: str, stamp: tuple[int, int]) -> list[dict[str, Any]]:
    return Run(Path(path)).read_metrics()


@st.cache_data(show_spinner=False, max_entries=64)
def _warning_cached(path: str, stamp: tuple[int, int]) -> str | None:
    return Run(Path(path)).read_metrics_log().warning


def metrics_warning(run: Run) -> str | None:
    """'2 unreadable lines in metrics.jsonl (skipped)', or None; re-read only when the file changed."""
    return _warning_cached(str(run.path), _file_key(run.metrics_path))


def read_records(run: Run) -> list[dict[str, Any]]:
    """A run's metrics records, re-read only when metrics.jsonl changed."""
    return _records_cached(str(run.path), _file_key(run.metrics_path))


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


def has_data(records: Iterable[dict[str, Any]]) -> bool:
    """Whether a run recorded anything to draw: a step or an epoch record."""
    return any(r.get("kind") in (STEP, EPOCH) for r in records)


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
        if has_data(read_records(run)):
            return name
    return None


def events(records: list[dict[str, Any]]) -> list[str]:
    """Messages of a run's event records (e.g. the torch.compile warm-up), oldest first."""
    return [str(r.get("message") or r.get("event")) for r in records if r.get("kind") == "event"]


# cache_resource, not cache_data: cache_data hands back an unpickled copy, and unpickling a
# plotly Figure re-validates it (~0.1 s here, every second the live view polls). The figure is
# shared, so nobody may mutate it; st.plotly_chart only serialises it.
@st.cache_resource(show_spinner=False, max_entries=16)
def _live_figure_cached(path: str, stamp: tuple[int, int], epochs: int | None):
    return live_figure(Run(Path(path)).read_metrics(), epochs=epochs)


def cached_live_figure(run: Run, epochs: int | None = None):
    """live_figure for a run of `epochs` planned epochs, rebuilt only when metrics.jsonl or the plan changed
    (the live view polls every second)."""
    return _live_figure_cached(str(run.path), _file_key(run.metrics_path), int(epochs) if epochs else None)


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
        stamps.append((run_name, str(status), int(epochs), _file_key(run.metrics_path)))
        if run.path.is_dir():
            records[run_name] = read_records(run)
    return _small_multiples_cached(sweep_key, tuple(stamps), bool(reference), cells, records)


def result_columns() -> dict[str, Any]:
    """st.dataframe column formats of the accuracy (%) and parameter-count columns the runs and cells tables share."""
    return {
        "best test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "final test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "params": st.column_config.NumberColumn(format="localized"),
    }


def fmt_count(value: float | int | None) -> str:
    """36479194 -> '36,479,194'."""
    if value is None:
        return "—"
    return f"{int(value):,}"


def fmt_si(value: float | None, unit: str = "") -> str:
    """5243346730 -> '5.24 G' + unit."""
    if value is None:
        return "—"
    for divisor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".strip()


def fmt_mib(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:  # 1004.7 MiB reads better as 0.98 GiB
        return f"{value / 1024:.2f} GiB"
    return f"{value:.1f} MiB"


def fmt_seconds(seconds: float | None) -> str:
    """75 -> '1m 15s'; None -> '—'."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def fmt_pct(fraction: float | None) -> str:
    if fraction is None:
        return "—"
    return f"{100.0 * float(fraction):.2f}%"


def fmt_extensions(extensions: Iterable[dict[str, Any]] | None) -> str:
    """A config's extensions as 'from epoch 2: +3 epochs, restart; …' ('none' without any)."""
    parts = []
    for e in extensions or ():
        count = int(e.get("epochs") or 0)
        parts.append(f"from epoch {e.get('from_epoch')}: +{count} epoch{'s' if count != 1 else ''}, {e.get('mode', 'continue')}")
    return "; ".join(parts) or "none"


def diff_value(setting: str, value: Any) -> str:
    """One cell of the config-diff table: None is the optimizer's default, extensions in words, the rest as JSON."""
    if setting == "extensions":
        return fmt_extensions(value)
    if value is None:
        return "default"
    return value if isinstance(value, str) else json.dumps(value)


def readable_diff(diff: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the config_diff table with columns #1, #2 … and readable cells, {run name: its column label})."""
    labels = {name: f"#{i}" for i, name in enumerate(diff.columns, start=1)}
    table = pd.DataFrame({labels[name]: [diff_value(setting, v) for setting, v in diff[name].items()] for name in diff.columns},
                         index=diff.index)
    return table, labels


def shell_lines(command: str) -> str:
    """A shell command with each --flag (and its value) on its own ` \\`-continued line, so it never breaks mid-flag."""
    lines: list[str] = []
    for word in shlex.split(command):
        quoted = shlex.quote(word)
        if word.startswith("--") or not lines:
            lines.append(quoted)
        else:
            lines[-1] += " " + quoted
    return " \\\n  ".join(lines)


# What st.markdown (and st.error etc.) would read as formatting: emphasis, code, links, maths, strikethrough.
_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]$~"})


# Kept as written: a `backticked` part (a path, a command: inline code shows its text as written), and a web
# address, made an <autolink> (inside one nothing is Markdown, so https://host/~user/ keeps its "~"; escaped, the
# backslash would end up in the link). A sentence's closing . , ; : ) is not part of the address.
_VERBATIM = re.compile(r"`[^`\n]+`|https?://[^\s<>`]*[^\s<>`.,;:)]")


def plain(text: str) -> str:
    """Text shown as written: Markdown characters backslash-escaped (ROOT/train/<class>/*.jpg keeps its `*`),
    except that a `backticked` part stays inline code and a web address a working link."""
    parts, end = [], 0
    for match in _VERBATIM.finditer(text):
        parts.append(text[end:match.start()].translate(_MARKDOWN_SPECIALS))
        verbatim = match.group(0)
        parts.append(verbatim if verbatim.startswith("`") else f"<{verbatim}>")
        end = match.end()
    parts.append(text[end:].translate(_MARKDOWN_SPECIALS))
    return "".join(parts)


MESSAGE_KINDS = ("error", "warning", "success", "info")


def show_message(kind: str, text: str) -> None:
    """st.error / st.warning / st.success / st.info of Markdown text, by kind."""
    {"error": st.error, "warning": st.warning, "success": st.success, "info": st.info}[kind](text)


def show_error(error: BaseException | str) -> None:
    """A user-facing error as one st.error line: an exception's first line, or a text, shown as written."""
    st.error(plain(one_line(error) if isinstance(error, BaseException) else error))


# Flash messages: a callback keeps what happened for the page to show on its next runs (callbacks run
# before the page draws, so they cannot draw it themselves). One session_state entry per place.
_FLASH_SUFFIX = "_flash"  # keeps flash entries apart from the widget keys they are named after


def flash(key: str, kind: str, text: str, *, about: str | None = None, markdown: bool = False) -> None:
    """Keep a message for show_flash(key), replacing the one kept there; kind is error|warning|success|info.

    The text is shown as written unless markdown=True. With `about`, only show_flash(key, about=…) of the
    same value shows it (e.g. "Launched grid" beside the sweep grid only).
    """
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"flash kind must be one of {', '.join(MESSAGE_KINDS)}, not {kind!r}")
    st.session_state[key + _FLASH_SUFFIX] = {"kind": kind, "text": text if markdown else plain(text), "about": about}


def clear_flash(key: str) -> None:
    """Forget the message kept under key (a callback calls it first, so an old message never outlives a new try)."""
    st.session_state.pop(key + _FLASH_SUFFIX, None)


def kept_flash(key: str) -> dict[str, Any] | None:
    """The message kept under key, whatever it is about: {"kind", "text" (Markdown), "about"}, or None."""
    return st.session_state.get(key + _FLASH_SUFFIX)


def show_flash(key: str, about: str | None = None) -> None:
    """Draw the message kept under key, if any and if it is about `about`; it stays until replaced or cleared."""
    message = st.session_state.get(key + _FLASH_SUFFIX)
    if message is not None and message["about"] == about:
        show_message(message["kind"], message["text"])


def show_status(status: dict[str, Any]) -> None:
    """A run's status and message as a coloured box."""
    state = status.get("status", "?")
    message = status.get("message") or ""
    text = f"**{state}** — {plain(message)}" if message else f"**{state}**"
    if state == FAILED:
        st.error(text)
    elif state in (DIVERGED, INTERRUPTED):
        st.warning(text)
    elif state == FINISHED:
        st.success(text)
    else:
        st.info(text)


# Badge colour and icon per finding severity (st.badge colours).
SEVERITY_BADGES = {
    "error": ("red", ":material/error:"),
    "warning": ("orange", ":material/warning:"),
    "info": ("blue", ":material/info:"),
}


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
    return _findings_cached(str(run.path), _file_key(run.metrics_path))


def show_findings(findings: list[Finding], advice: bool = True, healthy: str | None = "No training problems found") -> None:
    """Training-health findings as coloured badges (the advice as a tooltip, and below when advice=True).

    With no findings, a green badge saying `healthy` (nothing when healthy is None).
    """
    if not findings:
        if healthy:
            st.badge(healthy, icon=":material/check_circle:", color="green")
        return
    for finding in findings:
        color, icon = SEVERITY_BADGES.get(finding.severity, ("gray", ":material/help:"))
        st.badge(finding.message, icon=icon, color=color, help=finding.advice)
        if advice:
            st.caption(f"↳ {finding.advice}")


def show_health(run: Run, active: bool = False) -> None:
    """A run's training-health badges once it has recorded something (nothing before that)."""
    if not run.metrics_path.exists():
        return
    show_findings(run_findings(run), healthy="No training problems found" + (" so far" if active else ""))
