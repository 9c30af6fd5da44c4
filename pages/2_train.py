"""Train page: the live view of the watched run, and the run form (presets fill it) with Launch."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import lab_ui, run_form, widgets
from dashboard.once import action_guard
from wrn_core.config import ConfigError
from wrn_core.data import DataError
from wrn_core.model.flops import input_size
from wrn_core.engine.devices import check_memory
from wrn_core.engine.monitor import system_summary
from wrn_core.plots import system_figure
from wrn_core.store import RunStoreError
from wrn_core.store.records import ACTIVE_STATUSES, DIVERGED, FAILED, INTERRUPTED, QUEUED, RUNNING

F = "train_f_"  # prefix of the form's value widgets (kept across page switches)


def launch() -> None:
    """on_click of Launch: submit to the job manager; the outcome is a flash under Launch.
    The same form launched twice within a few seconds starts one run (action_guard)."""
    lab_ui.clear_flash("train_launch")
    manager = lab_ui.get_job_manager()
    try:
        config, nproc = run_form.form_to_config(F)
        requested = (st.session_state[F + "name"] or "").strip() or None
        action = "launch " + json.dumps([config.to_dict(), requested, nproc], sort_keys=True)
        name = action_guard().once(action, lambda: manager.submit(config, requested, nproc=nproc))
    except (ConfigError, RunStoreError, DataError) as exc:
        lab_ui.flash("train_launch", "error", lab_ui.one_line(exc))
        return
    st.session_state["train_run"] = name
    lab_ui.flash("train_launch", "success", f"Launched {name}")


def stop_run(name: str) -> None:
    if not lab_ui.get_job_manager().stop(name):
        lab_ui.flash("train_resume", "error", f"{name} is not running in a process this dashboard can signal")


def watched_run(store, names: list[str]) -> str:
    """The run the user picked, else a training one, else the most recent."""
    watched = st.session_state.get("train_run")
    if watched in names:
        return watched
    for name, state, _ in lab_ui.active_runs(store):
        if state == RUNNING:
            return name
    return names[0]


@st.fragment(run_every=1.0)
def live_view() -> None:
    """Polls the run directory once a second; cheap when nothing runs. The charts come first."""
    manager = lab_ui.get_job_manager()
    names = lab_ui.recent_run_names(manager.store)
    if not names:
        st.info("No runs yet. Pick a preset (the Quick CPU demo runs anywhere) and press **Launch**.")
        return
    watched = st.selectbox("Watching run", names, index=names.index(watched_run(manager.store, names)), key=None,
                           label_visibility="collapsed")
    st.session_state["train_run"] = watched
    try:
        run = manager.store.get(watched)
    except RunStoreError as exc:
        lab_ui.show_error(exc)
        return
    status = run.read_status()
    state = status.get("status", INTERRUPTED)
    active = state in ACTIVE_STATUSES
    progress = lab_ui.progress_of(run) if state == RUNNING else None
    fraction, text = widgets.progress_line(status, progress)
    st.progress(fraction, text=text)
    st.caption(
        f"Best test accuracy **{lab_ui.fmt_pct(status.get('best_test_acc'))}** · "
        f"training time {lab_ui.fmt_seconds(status.get('train_seconds'))} · "
        f"images seen {lab_ui.fmt_count(status.get('images_seen'))}"
        + (f" · {status['world_size']} processes" if (status.get("world_size") or 1) > 1 else "")
    )
    if state in (FAILED, DIVERGED, INTERRUPTED):
        lab_ui.show_status(status)
    st.plotly_chart(lab_ui.cached_live_figure(run), key="train_live_chart")
    if not active:
        st.caption(f"Status: **{state}**" + (f" — {lab_ui.plain(status['message'])}" if status.get("message") else ""))
    lab_ui.show_health(run, active)
    warning = lab_ui.metrics_warning(run)
    if warning:
        st.warning(warning)

    c1, c2, c3, c4 = st.columns([1, 1, 2, 1])
    if active:
        c1.button("Stop", key="train_stop", on_click=stop_run, args=(watched,),
                  help="checkpoints, then stops (within a batch; data-parallel runs at the next logged step)")
    else:
        widgets.resume_controls("train_", watched, status, flash_key="train_resume", slots=(c2, c3, c1))
    lab_ui.show_flash("train_resume")

    # torch.compile's warm-up is shown, not hidden: while it runs, and what it cost afterwards.
    if progress is not None and progress.phase == "compiling":
        st.info("torch.compile is compiling the model; the first step waits for it.")
    records = lab_ui.read_records(run)
    for event in lab_ui.events(records):
        st.caption(f"⏱ {event}")
    with st.expander("System: memory, CPU and GPU", expanded=False):
        summary = system_summary(records)
        if summary["samples"]:
            st.plotly_chart(system_figure(records), key="train_system_chart")
            st.caption(widgets.system_caption(summary))
        else:
            st.caption("No system readings yet.")

    queued = [job for job in manager.jobs() if job.state == QUEUED]
    if queued:
        st.markdown("**Queued**")
        for job in queued:
            st.caption(f"⏸ {job.name} (waiting for {job.device})")


run_form.init(F)
st.session_state.setdefault(F + "name", "")

st.title("Train")
form_col, live_col = st.columns([1, 2], gap="large")
with form_col:
    # The form scrolls inside its own box, so Launch and the live charts stay in view.
    with st.container(height=560, border=False):
        run_form.draw(F)
        st.text_input("run name (optional)", key=F + "name", placeholder="auto: wrn-10-1-synthetic-<time>")
    st.button("Launch", type="primary", key="train_launch", on_click=launch, width="stretch")
    try:
        config, _ = run_form.form_to_config(F)
        check = check_memory(config, input_size(config) or (32, 32))
        if not check.fits:
            st.warning(f"{check.message()}: it may not fit. Try a smaller batch or model.")
    except (ConfigError, DataError):
        pass  # Launch reports bad input in one line
    lab_ui.show_flash("train_launch")
with live_col:
    live_view()
