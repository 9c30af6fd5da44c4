"""Controls and read-outs that several pages draw: resume and extend, a run's status, health badges and rows, the
system caption, the progress line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import streamlit as st

from dashboard.action_guard import action_guard
from dashboard.cached_reads import run_findings
from dashboard.formatting import fmt_count, fmt_mib, fmt_pct, fmt_seconds, plain
from dashboard.jobs import get_job_manager
from dashboard.messages import ERROR, SUCCESS, WARNING, clear_flash, flash
from wrn_core.analysis import Finding
from wrn_core.analysis.live import LivePosition, live_position
from wrn_core.config import EXTEND_MODES, ConfigError
from wrn_core.errors import DataError, one_line
from wrn_core.engine.resume import default_extend, extension_lr_ends_at_zero, resume_target_error
from wrn_core.store import Run, RunStore, RunStoreError
from wrn_core.store.records import DIVERGED, FAILED, FINISHED, INTERRUPTED, Progress, RunStatus

EXTEND_LABELS = {"continue": "continue at the lr it ended at", "restart": "restart the schedule"}


def widget_key(prefix: str, *parts: Any) -> str:
    """A widget key from a prefix and a digest of its parts (run names may be long or hold odd characters)."""
    return prefix + hashlib.sha1("\n".join(map(str, parts)).encode()).hexdigest()[:12]


def _resume(name: str, target: int | None, extend: str, flash_key: str, resumed: str | None, about: str | None) -> None:
    """on_click of Resume: the outcome is a flash under flash_key (about `about`); the Train page then watches the run."""
    clear_flash(flash_key)
    manager = get_job_manager()
    try:
        # Twice within a few seconds (a double click) is one resume, not "already queued".
        warning = action_guard().once("resume " + json.dumps([name, target, extend]),
                                      lambda: manager.resume(name, target, extend))
    except (ConfigError, RunStoreError, DataError) as exc:
        flash(flash_key, ERROR, one_line(exc), about=about)
        return
    st.session_state["train_run"] = name
    if resumed and warning:
        flash(flash_key, WARNING, f"{resumed} {warning}", about=about)
    elif warning:
        flash(flash_key, WARNING, warning, about=about)
    elif resumed:
        flash(flash_key, SUCCESS, resumed, about=about)


def _extend_default(prefix: str, name: str, config: Any) -> bool:
    """Preselect the extension mode for run `name` once per run watched, and again whenever the choice was
    not drawn for a while (Streamlit drops a widget's value in a run that does not draw it: while the run
    trains, say); True when its plan ended at lr 0."""
    at_zero = config is not None and extension_lr_ends_at_zero(config)
    if st.session_state.get(prefix + "resume_extend_for") != name or prefix + "resume_extend" not in st.session_state:
        st.session_state[prefix + "resume_extend_for"] = name
        st.session_state[prefix + "resume_extend"] = default_extend(config) if config is not None else "continue"
    return at_zero


def _run_config(name: str) -> Any:
    """The run's TrainConfig, or None when it is gone or its config.json is unreadable (shown elsewhere)."""
    try:
        return get_job_manager().store.get(name).read_config()
    except (RunStoreError, ConfigError):
        return None


def resume_controls(
    prefix: str,
    name: str,
    status: RunStatus,
    *,
    flash_key: str,
    label: str = "Resume",
    help: str = "continue from the last checkpoint",
    resumed: str | None = None,
    disabled: bool = False,
    disabled_reason: str | None = None,
    about: str | None = None,
    slots: tuple[Any, Any, Any] | None = None,
) -> None:
    """The extra-epochs box, the continue/restart choice for them, and the Resume button of run `name` after them.

    Widget keys are prefix + resume_extra, resume_extend and resume. The choice is preselected per run:
    restart where the run's plan ended at lr 0 (one-cycle, cosine), said beside it, else continue. The
    button is disabled when resume_target_error objects, or when `disabled`, with the reason as a caption
    under it (disabled_reason for `disabled`). Its outcome is a flash under flash_key about `about` (an
    error, the manager's warning; `resumed` is the success text, none when None): the page shows it.
    slots are the containers of the box, the choice and the button (default: one under another).
    """
    extra_slot, extend_slot, button_slot = slots or (st, st, st)
    at_zero = _extend_default(prefix, name, _run_config(name))
    extra = extra_slot.number_input("extra epochs", min_value=0, step=1, value=0, key=prefix + "resume_extra")
    extend = extend_slot.radio("added epochs", EXTEND_MODES, format_func=EXTEND_LABELS.get, key=prefix + "resume_extend",
                               horizontal=True, disabled=not extra,
                               help="beyond the planned schedule: keep the learning rate it ended at, or run the schedule again")
    if at_zero and extend == "restart":
        extend_slot.caption("Its schedule ended at lr 0, so the added epochs restart it.")
    elif at_zero:
        extend_slot.warning("Its schedule ended at lr 0: continuing trains the added epochs at lr 0, learning nothing.")
    epochs = status.epochs or 0
    target = epochs + int(extra) if extra else None
    reason = resume_target_error(status, epochs, target)
    if reason is None and disabled:
        reason = disabled_reason or "not available for this run"
    button_slot.button(label, key=prefix + "resume", on_click=_resume,
                       args=(name, target, extend, flash_key, resumed, about),
                       disabled=reason is not None, help=reason or help)
    if reason is not None:
        button_slot.caption(f"{label} is off: {reason}.")


def show_status(status: RunStatus) -> None:
    """A run's status and message as a coloured box."""
    text = f"**{status.status}** — {plain(status.message)}" if status.message else f"**{status.status}**"
    if status.status == FAILED:
        st.error(text)
    elif status.status in (DIVERGED, INTERRUPTED):
        st.warning(text)
    elif status.status == FINISHED:
        st.success(text)
    else:
        st.info(text)


# Badge colour and icon per finding severity (st.badge colours).
SEVERITY_BADGES = {
    "error": ("red", ":material/error:"),
    "warning": ("orange", ":material/warning:"),
    "info": ("blue", ":material/info:"),
}


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


def system_caption(summary: dict[str, float | None], processes: int = 1) -> str:
    """'Peak process memory … · peak CUDA memory … · mean GPU utilisation …%' of wrn_core.engine.monitor.system_usage;
    the parts a run did not measure are left out."""
    text = f"Peak process memory {fmt_mib(summary['peak_rss_mb'])}"
    if summary["peak_cuda_mb"]:
        text += f" · peak CUDA memory {fmt_mib(summary['peak_cuda_mb'])}"
    if summary["mean_gpu_util"] is not None:
        text += f" · mean GPU utilisation {summary['mean_gpu_util']:.0f}%"
    if processes > 1:
        text += f" · {processes} processes (DDP)"
    return text


def health_row(name: str, findings: list[Finding]) -> None:
    """One line: the run's name in bold, then its training-health badges (advice as tooltips)."""
    with st.container(horizontal=True):
        st.markdown(f"**{name}**", width="content")
        show_findings(findings, advice=False)


def health_rows(store: RunStore, names: Iterable[str]) -> tuple[int, bool]:
    """A health_row for each of these runs that has findings; (runs that have recorded metrics, any findings).

    Names without a run (a sweep's pending cells) or without metrics yet are skipped.
    """
    checked, found = 0, False
    for name in names:
        try:
            run = store.get(name)
        except RunStoreError:
            continue
        if not run.metrics_path.exists():
            continue
        checked += 1
        findings = run_findings(run)
        if findings:
            health_row(name, findings)
            found = True
    return checked, found


def cells_health(store: RunStore, cells: Any, active: bool) -> None:
    """A sweep's training-health badges: the cells that have findings (one green badge when none has)."""
    checked, found = health_rows(store, cells["run"])
    if checked and not found:
        scope = "any cell" if checked == len(cells) else f"the {checked} of {len(cells)} cells that have trained"
        show_findings([], healthy=f"No training problems found in {scope}" + (" so far" if active else ""))


def position_text(position: LivePosition) -> str:
    """'training · epoch 2/8 · step 40/160' (while a trainer reports) or 'finished · epoch 8/8': the one wording of
    where a run stands, for the progress line, the sidebar and every other live read-out."""
    if position.phase is not None:
        text = f"{position.phase} · epoch {position.epoch}/{position.epochs}"
        if position.total_steps:
            text += f" · step {position.step}/{position.total_steps}"
        return text
    return f"{position.state} · epoch {position.epoch}/{position.epochs}"


def progress_line(status: RunStatus, progress: Progress | None,
                  records: Iterable[dict[str, Any]] = ()) -> tuple[float, str]:
    """(fraction done, text) for st.progress: the trainer's heartbeat while it trains, else status.json and records."""
    position = live_position(status, progress, records)
    text = position_text(position)
    if position.phase is not None and position.total_steps:
        rate = f"{position.images_per_s:,.0f} img/s" if position.images_per_s else "— img/s"
        text += f" · {rate} · ETA {fmt_seconds(position.eta_s)} · {position.device or '—'}"
    elif status.active and status.message:
        text += f" · {status.message}"  # e.g. "loading data" before the first step
    return position.fraction, text


def position_caption(position: LivePosition) -> str:
    """'Best test accuracy **61.20%** · training time 1m 05s · images seen 12,800' of the same position as the
    progress line; before the first test, says when it comes."""
    best = fmt_pct(position.best_test_acc) if position.best_test_acc is not None else "— (tested after each epoch)"
    return (f"Best test accuracy **{best}** · training time {fmt_seconds(position.train_seconds)} · "
            f"images seen {fmt_count(position.images_seen)}")
