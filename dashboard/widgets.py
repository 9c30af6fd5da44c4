"""Controls and read-outs that several pages draw: resume and extend, the system caption, health rows, progress."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import streamlit as st

from dashboard import lab_ui
from dashboard.once import action_guard
from wrn_core.analysis import Finding
from wrn_core.config import EXTEND_MODES, ConfigError
from wrn_core.data import DataError
from wrn_core.engine.resume import resume_target_error
from wrn_core.store import RunStore, RunStoreError
from wrn_core.store.records import ACTIVE_STATUSES, INTERRUPTED, Progress

EXTEND_LABELS = {"continue": "continue at the lr it ended at", "restart": "restart the schedule"}


def _resume(name: str, target: int | None, extend: str, flash_key: str, resumed: str | None) -> None:
    """on_click of Resume: the outcome is a flash under flash_key; the Train page then watches the run."""
    lab_ui.clear_flash(flash_key)
    manager = lab_ui.get_job_manager()
    try:
        # Twice within a few seconds (a double click) is one resume, not "already queued".
        warning = action_guard().once("resume " + json.dumps([name, target, extend]),
                                      lambda: manager.resume(name, target, extend))
    except (ConfigError, RunStoreError, DataError) as exc:
        lab_ui.flash(flash_key, "error", lab_ui.one_line(exc))
        return
    st.session_state["train_run"] = name
    if resumed and warning:
        lab_ui.flash(flash_key, "warning", f"{resumed} {warning}")
    elif warning:
        lab_ui.flash(flash_key, "warning", warning)
    elif resumed:
        lab_ui.flash(flash_key, "success", resumed)


def resume_controls(
    prefix: str,
    name: str,
    status: dict[str, Any],
    *,
    flash_key: str,
    label: str = "Resume",
    help: str = "continue from the last checkpoint",
    resumed: str | None = None,
    disabled: bool = False,
    slots: tuple[Any, Any, Any] | None = None,
) -> None:
    """The extra-epochs box, the continue/restart choice for them, and the Resume button of run `name`.

    Widget keys are prefix + resume_extra, resume_extend and resume. The button is disabled (saying why)
    when resume_target_error objects, or when `disabled`. Its outcome is a flash under flash_key (an
    error, the manager's warning; `resumed` is the success text, none when None): the page shows it.
    slots are the containers of the box, the choice and the button (default: one under another).
    """
    extra_slot, extend_slot, button_slot = slots or (st, st, st)
    extra = extra_slot.number_input("extra epochs", min_value=0, step=1, value=0, key=prefix + "resume_extra")
    extend = extend_slot.radio("added epochs", EXTEND_MODES, format_func=EXTEND_LABELS.get, key=prefix + "resume_extend",
                               horizontal=True, disabled=not extra,
                               help="beyond the planned schedule: keep the learning rate it ended at, or run the schedule again")
    epochs = int(status.get("epochs") or 0)
    target = epochs + int(extra) if extra else None
    reason = resume_target_error(status, epochs, target)
    button_slot.button(label, key=prefix + "resume", on_click=_resume, args=(name, target, extend, flash_key, resumed),
                       disabled=reason is not None or disabled, help=reason or help)


def system_caption(summary: dict[str, float | None], processes: int = 1) -> str:
    """'Peak process memory … · peak CUDA memory … · mean GPU utilisation …%' of wrn_core.monitor.system_summary;
    the parts a run did not measure are left out."""
    text = f"Peak process memory {lab_ui.fmt_mib(summary['peak_rss_mb'])}"
    if summary["peak_cuda_mb"]:
        text += f" · peak CUDA memory {lab_ui.fmt_mib(summary['peak_cuda_mb'])}"
    if summary["mean_gpu_util"] is not None:
        text += f" · mean GPU utilisation {summary['mean_gpu_util']:.0f}%"
    if processes > 1:
        text += f" · {processes} processes (DDP)"
    return text


def health_row(name: str, findings: list[Finding]) -> None:
    """One line: the run's name in bold, then its training-health badges (advice as tooltips)."""
    with st.container(horizontal=True):
        st.markdown(f"**{name}**", width="content")
        lab_ui.show_findings(findings, advice=False)


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
        findings = lab_ui.run_findings(run)
        if findings:
            health_row(name, findings)
            found = True
    return checked, found


def progress_line(status: dict[str, Any], progress: Progress | None) -> tuple[float, str]:
    """(fraction done, text) for st.progress: the trainer's heartbeat while it trains, else status.json."""
    if progress is not None and progress.total_steps:
        rate = f"{progress.images_per_s:,.0f} img/s" if progress.images_per_s else "— img/s"
        text = (f"{progress.phase} · epoch {progress.epoch}/{progress.epochs} · step {progress.step}/{progress.total_steps}"
                f" · {rate} · ETA {lab_ui.fmt_seconds(progress.eta_s)} · {progress.device}")
        return min(1.0, progress.step / progress.total_steps), text
    state = status.get("status", INTERRUPTED)
    epochs = int(status.get("epochs") or 0)
    done = int(status.get("epoch") or 0)
    text = f"{state} · epoch {done}/{epochs}"
    if state in ACTIVE_STATUSES and status.get("message"):
        text += f" · {status['message']}"  # e.g. "loading data" before the first step
    return (min(1.0, done / epochs) if epochs else 0.0), text
