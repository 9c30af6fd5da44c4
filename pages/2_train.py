"""Train page: the live view of the watched run, and the run form (presets fill it) with Launch."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import cached_reads, formatting, jobs, launch_checks, messages, run_form, widgets, width_view
from dashboard.action_guard import action_guard
from wrn_core.analysis.live import live_position
from wrn_core.config import ConfigError
from wrn_core.errors import DataError, one_line
from wrn_core.engine.monitor import system_usage
from wrn_core.engine.resume import memory_refusal
from wrn_core.jobs.supervisor import last_log_line
from wrn_core.plots import system_figure
from wrn_core.store import RunStoreError
from wrn_core.store.records import COMPILING, DIVERGED, FAILED, INTERRUPTED, QUEUED, RUNNING, RunStatus

F = "train_f_"  # prefix of the form's value widgets (kept across page switches)
FORCE = "train_force"  # the "launch anyway" box shown when the run is predicted not to fit
LONG_RUN_S = 3600.0  # a predicted time past this is a warning beside Launch, not a caption
FORM_HEIGHT = 520  # px: under the launch panel, the form's box ends near the bottom of a 900 px high window


def launch() -> None:
    """on_click of Launch: the same checks the training process makes (config, data, memory), then submit.

    A refusal is a flash under Launch about the form as it was judged (it goes once the form changes); a
    launch is a flash about the new run, shown under Launch while it is queued or running and watched. The
    same form launched twice within a few seconds starts one run (action_guard).
    """
    messages.clear_flash("train_launch")
    messages.clear_flash("train_launched")
    manager = jobs.get_job_manager()
    judged = run_form.signature(F, FORCE)
    try:
        config, nproc = run_form.form_to_config(F)
        need = memory_refusal(config)
        force = need is not None and bool(st.session_state.get(FORCE))
        if need is not None and not force:
            raise ConfigError(f"{need}: it would not fit; use a smaller batch or model, or tick “launch anyway”")
        requested = (st.session_state[F + "name"] or "").strip() or None
        action = "launch " + json.dumps([config.to_dict(), requested, nproc, force], sort_keys=True)
        name = action_guard().once(action, lambda: manager.submit(config, requested, nproc=nproc, force=force))
    except (ConfigError, RunStoreError, DataError) as exc:
        messages.flash("train_launch", messages.ERROR, one_line(exc), about=judged)
        return
    st.session_state["train_run"] = name
    messages.flash("train_launched", messages.SUCCESS, f"Launched {name}", about=name)


def stop_run(name: str) -> None:
    if not jobs.get_job_manager().stop(name):
        messages.flash("train_resume", messages.ERROR, f"{name} is not running in a process this dashboard can signal", about=name)


def failure_detail(run, status: RunStatus) -> str | None:
    """The last line of job.log that says something, when the status message does not already say it."""
    said = last_log_line(run.path / "job.log")
    if said is None or said in status.message:
        return None
    return said


def watched_run(store, names: list[str]) -> str:
    """The run the user picked, else a training one, else the most recent."""
    watched = st.session_state.get("train_run")
    if watched in names:
        return watched
    for name, state, _ in cached_reads.active_runs(store):
        if state == RUNNING:
            return name
    return names[0]


def draw_position(run, status: RunStatus, progress, records) -> None:
    """The progress line, the caption under it and, for a run that ended badly, its status and why. Both read
    one position: the heartbeat while it trains, the records and status.json otherwise (status.json alone lags
    an epoch behind)."""
    fraction, text = widgets.progress_line(status, progress, records)
    st.progress(fraction, text=text)
    st.caption(
        widgets.position_caption(live_position(status, progress, records))
        + (f" · {status.world_size} processes" if (status.world_size or 1) > 1 else "")
    )
    if status.status in (FAILED, DIVERGED, INTERRUPTED):
        widgets.show_status(status)
        detail = failure_detail(run, status) if status.status == FAILED else None
        if detail:
            st.caption(f"job.log ends: {formatting.plain(detail)}")


def draw_views(run, status: RunStatus) -> None:
    """The 2×2 curves, or the layers × epochs map of width use: only the open tab is drawn."""
    curves, width = st.tabs(["Curves", "Width use"], key="train_view", on_change="rerun")
    if curves.open is not False:
        with curves:
            st.plotly_chart(cached_reads.cached_live_figure(run, status.epochs), key="train_live_chart")
    if width.open:
        with width:
            width_view.width_map_view(run, status.epochs, key="train_width")


def draw_run_controls(watched: str, status: RunStatus) -> None:
    """Stop while the run is held; else how many more epochs, how to extend, and Resume (left to right, in the
    order they are used)."""
    if status.active:
        st.button("Stop", key="train_stop", on_click=stop_run, args=(watched,),
                  help="checkpoints, then stops (within a batch; data-parallel runs at the next logged step)")
    else:
        c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
        widgets.resume_controls("train_", watched, status, flash_key="train_resume", about=watched, slots=(c1, c2, c3))
    messages.show_flash("train_resume", about=watched)


def draw_compile_and_system(progress, records) -> None:
    """torch.compile's warm-up, shown rather than hidden (while it runs, and what it cost afterwards), and the
    system readings."""
    if progress is not None and progress.phase == COMPILING:
        st.info("torch.compile is compiling the model; the first step waits for it.")
    for event in cached_reads.events(records):
        st.caption(f"⏱ {event}")
    with st.expander("System: memory, CPU and GPU", expanded=False):
        summary = system_usage(records)
        if summary["samples"]:
            st.plotly_chart(system_figure(records), key="train_system_chart")
            st.caption(widgets.system_caption(summary))
        else:
            st.caption("No system readings yet.")


def draw_queue(manager) -> None:
    """The jobs waiting for a device, in the order they will start."""
    queued = [job for job in manager.jobs() if job.state == QUEUED]
    if queued:
        st.markdown("**Queued**")
        for job in queued:
            st.caption(f":material/pause_circle: {job.name} (waiting for {job.device})")


@st.fragment(run_every=1.0)
def live_view() -> None:
    """Polls the run directory once a second; cheap when nothing runs. The charts come first."""
    manager = jobs.get_job_manager()
    names = cached_reads.recent_run_names(manager.store)
    if not names:
        st.info("No runs yet. Pick a preset (the Quick CPU demo runs anywhere) and press **Launch**.")
        return
    watched = st.selectbox("Watching run", names, index=names.index(watched_run(manager.store, names)), key=None)
    st.session_state["train_run"] = watched
    try:
        run = manager.store.get(watched)
    except RunStoreError as exc:
        messages.show_error(exc)
        return
    status = run.status()
    progress = cached_reads.progress_of(run) if status.status == RUNNING else None
    records = cached_reads.read_records(run)
    draw_position(run, status, progress, records)
    draw_views(run, status)
    if not status.active:
        st.caption(f"Status: **{status.status}**" + (f" — {formatting.plain(status.message)}" if status.message else ""))
    widgets.show_health(run, status.active)
    warning = cached_reads.metrics_warning(run)
    if warning:
        st.warning(warning)
    draw_run_controls(watched, status)
    draw_compile_and_system(progress, records)
    draw_queue(manager)


@st.fragment(run_every=1.0)
def launched_note() -> None:
    """"Launched X" under Launch while X is queued or running and watched; forgotten once X ends (its status
    speaks then)."""
    kept = messages.kept_flash("train_launched")
    launched = kept.about if kept is not None else None
    try:
        active = launched is not None and jobs.get_job_manager().store.get(launched).status().active
    except RunStoreError:
        active = False
    if active:
        messages.show_flash("train_launched", about=st.session_state.get("train_run"))
    else:
        messages.clear_flash("train_launched")


def predicted_line(config, nproc: int, problem: bool) -> None:
    """The predicted training time from timed steps (as the Sweep page's pre-flight); a warning past an hour.
    While the steps are timed beside the page, a fragment says so and shows the answer once it comes (in place:
    a rerun of the whole page would close a list the user has open). With a `problem` said above, a probe that
    failed (for the same reason, say no such device) adds nothing."""
    if nproc > 1:
        st.caption("Predicted time: not timed for data-parallel runs (the probe times one process).")
        return
    if launch_checks.predicted_time(config) == (None, None):
        st.fragment(run_every=1.0)(_show_prediction)(config, problem)
    else:
        _show_prediction(config, problem)


def _show_prediction(config, problem: bool) -> None:
    seconds, reason = launch_checks.predicted_time(config)
    if seconds is None and reason is None:
        st.caption(f"Predicted time: timing a training step of {config.model.name}…")
        return
    if seconds is None:
        if not problem:
            st.caption(f"Predicted time: not known ({formatting.plain(reason)}).")
        return
    text = (f"Predicted time **≈ {formatting.fmt_seconds(seconds)}** on {formatting.plain(run_form.device_words(config))}, "
            f"loading the data on top (from timed steps of {config.model.name} at batch {config.batch_size})")
    if seconds > LONG_RUN_S:
        st.warning(text)
    else:
        st.caption(text)


def launch_panel() -> None:
    """What Launch will do and everything that stands in its way, then Launch, then what Launch said.

    At the top of the form's column, so whatever it says is in view when it is said; every line is worked out
    from the form as it is now, so a message goes once its cause is gone.
    """
    try:
        config, nproc = run_form.form_to_config(F)
    except (ConfigError, DataError) as exc:
        said = one_line(exc)
        messages.show_error(said)  # the same line Launch would refuse with
    else:
        st.caption(f"**Launch trains** {formatting.plain(run_form.summary_line(config, nproc))}")
        said = launch_checks.launch_problem(config)
        if said:
            messages.show_error(said)  # e.g. CIFAR-10 not found: said before Launch is pressed
        predicted_line(config, nproc, problem=bool(said))
        need = memory_refusal(config)
        if need is not None:
            st.warning(f"{formatting.plain(need)}: it may not fit. Try a smaller batch or model.")
            st.checkbox("launch anyway (the prediction may be pessimistic)", key=FORCE)
    slow = run_form.gpu_recipe_warning(F)
    if slow:
        st.warning(slow)
    st.button("Launch", type="primary", key="train_launch", on_click=launch, width="stretch")
    refusal = messages.kept_flash("train_launch")
    if refusal is not None and refusal.text != formatting.plain(said or ""):  # said once, not again under Launch
        messages.show_flash("train_launch", about=run_form.signature(F, FORCE))
    if messages.kept_flash("train_launched") is not None:
        launched_note()


run_form.init(F)
st.session_state.setdefault(F + "name", "")

st.title("Train")
form_col, live_col = st.columns([1, 2], gap="large")
with form_col:
    with st.container():  # one element whatever it holds, so the form's box below keeps its scroll position
        launch_panel()
    # The form scrolls inside its own box, so the live charts stay in view; Launch and the summary above it
    # say what it will train, whatever is scrolled out of sight.
    with st.container(height=FORM_HEIGHT, border=True):
        run_form.draw(F)
        st.text_input("run name (optional)", key=F + "name", placeholder="auto: wrn-10-1-synthetic-<time>")
with live_col:
    live_view()
