"""Runs page: the saved runs filtered, grouped and tagged, with metric columns; their curves (or group bands), side by side, what matters; exports, resume and delete."""

from __future__ import annotations

import streamlit as st

from dashboard import (cached_reads, formatting, jobs, messages, navigation, run_annotations, runs_view, settings_importance,
                       widgets, width_view)
from wrn_core.errors import one_line
from wrn_core.analysis import (
    GROUP_FIELDS,
    AnalysisError,
    export_csv,
    export_json,
    filter_runs,
    group_runs,
    groups_table,
    varying_settings,
)
from wrn_core.cli import command_for
from wrn_core.model.flops import FLOPS_CONVENTION, training_flops_per_image
from wrn_core.plots import acc_vs_params_figure
from wrn_core.plots.groups import METRIC_TITLES
from wrn_core.reference import OFFICIAL_LOG_ATTRIBUTION, PAPER_CAPTION, PAPER_SOURCE, official_curve
from wrn_core.engine.monitor import system_usage
from wrn_core.store import RunStoreError
from wrn_core.store.records import ACTIVE_STATUSES, RUNNING, RunStatus

V = "runs_v_"  # prefix of value widgets kept across page switches
LIVE_S = 1.0  # seconds between refreshes of an active run's read-out
X_LABELS = {
    "epoch": "epoch",
    "time": "training time (s)",
    "images_seen": "images seen",
    "flops": "training FLOPs",
}

# Metrics the group bands can show (analysis.CURVE_METRICS), by their label; test accuracy first (the default).
BAND_METRICS = {metric: METRIC_TITLES[metric] for metric in ("test_acc", "train_acc", "test_loss", "train_loss")}


st.session_state.setdefault(V + "x", "epoch")
st.session_state.setdefault(V + "smoothing", 0.0)
st.session_state.setdefault(V + "log_cost", False)
st.session_state.setdefault(V + "log_x", False)
st.session_state.setdefault(V + "reference", False)

st.title("Runs")
manager = jobs.get_job_manager()
summaries, frame = runs_view.listing(manager.store)
if not summaries:
    st.info("No saved runs yet. Launch one on the Train page.")
    st.page_link(str(navigation.PAGES_DIR / "2_train.py"), label="Go to Train", icon=":material/model_training:")
    st.stop()

# Every element below that is drawn only sometimes sits in a container that is always drawn: the page keeps its
# shape when rows are ticked, so the browser updates the charts that changed instead of re-creating every chart
# after the first element that moved (the parallel coordinates are WebGL, slow to create without a GPU).
colors = runs_view.run_colors(frame)
filters = runs_view.draw_filters(V, frame)
try:
    shown = filter_runs(frame, filters)
except AnalysisError as exc:  # a stale choice: never, as the choices come from the runs; shown, not raised
    messages.show_error(exc)
    shown = frame
g1, g2 = st.columns(2)
by = g1.multiselect("Group by", [f for f in GROUP_FIELDS if f in frame.columns], key=V + "group_by",
                    placeholder="no grouping: one row per run",
                    help="one row per group of runs sharing these settings; seeds (and the rest) averaged")
with g2:
    metrics = runs_view.draw_metric_columns(V, disabled=bool(by))
if shown.empty:
    st.info(f"No run matches the filters ({len(frame)} run{'s' if len(frame) != 1 else ''} in all).")
    st.stop()
names = list(shown["name"])
count = f"{len(shown)} of {len(frame)} runs" if len(shown) != len(frame) else f"{len(frame)} run{'s' if len(frame) != 1 else ''}"
groups: dict[str, list[str]] = {}
if by:
    grouped = group_runs(shown, by)
    st.caption(f"{count} in {len(grouped)} group{'s' if len(grouped) != 1 else ''} — select groups to draw their "
               "mean ± std curves.")
    event = st.dataframe(
        groups_table(grouped), hide_index=True, on_select="rerun", selection_mode="multi-row",
        key=widgets.widget_key("runs_groups_", *by, *names), placeholder="—",
        column_config={"n": st.column_config.NumberColumn(help="runs in the group"),
                       "best test acc (%)": st.column_config.TextColumn(help="mean ± std over the group's runs"),
                       "final test acc (%)": st.column_config.TextColumn(help="mean ± std over the group's runs")},
    )
    groups, note = runs_view.shown_groups(grouped, by, event.selection.rows, names)
    with st.container():
        if note:
            st.caption(note)
    selected = [name for members in groups.values() for name in members] or [names[0]]
else:
    st.caption(f"{count} in `{manager.store.root}` — select rows to compare them; click a header to sort.")
    with st.spinner("Reading the metrics of the listed runs…"):
        listed = runs_view.with_metric_columns(manager.store, shown, metrics)
    # The table's key names its runs: after a delete (or a new run) it is a new table with no ticks, so a
    # tick never stays on a row position that now holds another run.
    event = st.dataframe(
        runs_view.table_frame(listed, metrics),
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=widgets.widget_key("runs_table_", *names),  # one table state per listing of runs
        placeholder="—",  # a value not known yet (a run that has not tested), never "None"
        column_config=runs_view.table_columns(metrics),
    )
    # A toggle, not an expander: the editor (a second table of every shown run) costs a rerun nothing until asked for.
    editing = st.toggle("Edit tags and notes in a table", key="runs_edit_annotations")
    with st.container():
        if editing:
            run_annotations.draw_annotations_table(manager.store, shown, "runs_")
    selected = [names[r] for r in event.selection.rows if 0 <= r < len(names)]
    with st.container():
        if not selected:
            active = shown.loc[shown["status"].isin(ACTIVE_STATUSES), "name"]
            default = cached_reads.newest_with_data(manager.store, names, active=active)
            if default is None:
                selected = [names[0]]
                st.caption(f"Nothing selected: showing the most recent run, **{formatting.plain(selected[0])}** (no run has recorded metrics yet).")
            else:
                selected = [default]
                st.caption(f"Nothing selected: showing the most recent run with metrics (or training), **{formatting.plain(default)}**.")

# Grouped: the bands read their members' metrics (cached); the per-run views read the detail run only.
records, configs = cached_reads.read_runs(manager.store, [] if groups else selected)


def run_readout(run, status: RunStatus) -> None:
    """A run's metrics warning, health badges and system usage (records re-read only when they change)."""
    warning = cached_reads.metrics_warning(run)
    if warning:
        st.warning(warning)
    widgets.show_health(run, active=status.active)
    usage = system_usage(cached_reads.read_records(run))
    if usage["samples"]:
        st.caption(widgets.system_caption(usage, processes=status.world_size or 1))


def stop_run(name: str) -> None:
    """on_click of Stop: checkpoint, then stop (a queued run is dropped); the outcome is a flash."""
    messages.clear_flash("runs_stop")
    if jobs.get_job_manager().stop(name):
        messages.flash("runs_stop", messages.SUCCESS, f"Stopping {name}: it checkpoints, then stops.", about=name)
    else:
        messages.flash("runs_stop", messages.ERROR, f"{name} is not running in a process this dashboard can signal", about=name)


def active_run(name: str) -> None:
    """A queued or running run, redrawn every LIVE_S seconds: progress, its curves so far, and Stop.
    When it ends, the whole page reruns so the table, the curves and Resume show the outcome."""
    try:
        run = jobs.get_job_manager().store.get(name)
    except RunStoreError as exc:
        messages.show_error(exc)
        return
    status = run.status()
    if not status.active:
        st.rerun()
    progress = cached_reads.progress_of(run) if status.status == RUNNING else None
    # The records too, as the Train page reads them: without a heartbeat, status.json lags an epoch behind them.
    fraction, text = widgets.progress_line(status, progress, cached_reads.read_records(run))
    st.progress(fraction, text=text)
    st.button("Stop", key="runs_stop", on_click=stop_run, args=(name,),
              help="checkpoints, then stops (within a batch; data-parallel runs at the next logged step)")
    messages.show_flash("runs_stop", about=name)
    st.plotly_chart(cached_reads.cached_live_figure(run, status.epochs), key="runs_live_chart")  # x to the planned epochs
    run_readout(run, status)


st.subheader("Curves")
c1, c2, c3 = st.columns([2, 2, 1])
c1.radio("x axis", list(X_LABELS), format_func=X_LABELS.get, key=V + "x", horizontal=True,
         help=f"Training FLOPs: {FLOPS_CONVENTION}. MACs per image come from each run's model and image size.")
c2.slider("smoothing (EMA weight)", min_value=0.0, max_value=0.99, step=0.01, key=V + "smoothing")
c3.toggle("log cost", key=V + "log_cost")
c3.toggle("log x", key=V + "log_x")
st.toggle("Reference: the authors' WRN-40-4 on CIFAR-10 (test accuracy, 200 epochs)", key=V + "reference",
          help="A dashed curve on the test-accuracy panel: " + OFFICIAL_LOG_ATTRIBUTION)
x_axis = st.session_state[V + "x"]
reference = official_curve(x_axis) if st.session_state[V + "reference"] else None
if groups:
    m1, m2 = st.columns([3, 1], vertical_alignment="bottom")
    metric = m1.radio("metric", list(BAND_METRICS), format_func=BAND_METRICS.get, key=V + "band_metric",
                      horizontal=True)
    st.session_state.setdefault(V + "band_members", True)
    members = m2.toggle("each run's own curve", key=V + "band_members",
                        help="the group's runs drawn faintly under its mean ± std band, each in its own colour")
    flops = {}
    if x_axis == "flops":  # the members' configs, for their FLOPs per image
        _, member_configs = cached_reads.read_runs(manager.store, selected)
        flops = {name: training_flops_per_image(config) for name, config in member_configs.items()}
    st.plotly_chart(runs_view.bands_figure(manager.store, groups, x_axis, float(st.session_state[V + "smoothing"]),
                                           flops, metric, colors={**colors, **runs_view.group_colors(groups, colors)},
                                           members=members), key="runs_bands_chart")
    st.caption("One line per group: the mean over its runs, in a band of ± one standard deviation (kept where "
               "every run of the group has a point at the same x)"
               + (", over each run's own faint curve" if members else "") + ". A group of one run has that run's "
               "colour. Log cost, log x and the reference draw per run: clear **Group by** for them.")
else:
    flops = {name: training_flops_per_image(config) for name, config in configs.items()}
    st.plotly_chart(
        runs_view.cached_compare_figure(
            manager.store,
            list(records),
            x=x_axis,
            smoothing=float(st.session_state[V + "smoothing"]),
            log_cost=bool(st.session_state[V + "log_cost"]),
            flops=flops,
            reference=bool(st.session_state[V + "reference"]),
            log_x=bool(st.session_state[V + "log_x"]),
            colors=colors,
        ),
        key="runs_compare_chart",
    )
with st.container():
    if x_axis == "flops":
        unknown = [name for name, value in flops.items() if value is None]
        if unknown:
            st.caption(f"No FLOPs for {', '.join(unknown)}: the input image size is unknown (image folder not found).")
    if st.session_state[V + "reference"] and not groups:
        if reference is None:
            st.caption("The authors' log is drawn against epochs, images seen or FLOPs only: "
                       "its times were measured on their 2016 GPU.")
        else:
            tip = "" if x_axis == "epoch" or st.session_state[V + "log_x"] else " Turn on log x to see small runs beside it."
            st.caption(f"Dashed: {OFFICIAL_LOG_ATTRIBUTION}.{tip}")

# Training health of each compared run, one line each (a single run's is shown below).
with st.container():
    if len(records) > 1:
        widgets.health_rows(manager.store, records)

st.subheader("Width use over training")
with st.container():
    if groups:
        st.caption("Width use is compared run by run: clear **Group by** to see it.")
    else:
        width_view.runs_width_comparison(records, colors)

left, right = st.columns(2)
with left:
    st.subheader("Compare")
    st.session_state.setdefault(V + "compare_differs", True)
    only_differences = st.toggle("only what differs", key=V + "compare_differs",
                                 help="off: every setting of the runs, the ones they share too")
    if groups:
        st.caption("Groups differ in the settings they are grouped by; clear **Group by** to compare runs.")
    elif len(configs) < 2:
        st.caption("Select two or more runs to see them side by side, one column each.")
    else:
        compared = runs_view.compare_table(configs, shown, only_differences)
        if compared.empty:
            st.caption("The selected runs have the same results and identical configs.")
        else:
            st.dataframe(compared, placeholder="—", key="runs_compare_table",
                         column_config={name: st.column_config.TextColumn(name, help=name) for name in compared.columns})
with right:
    st.subheader("Test accuracy vs parameters")
    st.plotly_chart(acc_vs_params_figure(shown), key="runs_acc_params_chart")
    st.caption(f"◇ {PAPER_CAPTION}: the published CIFAR-10 results ({PAPER_SOURCE}). "
               "Your runs may use other data and fewer epochs.")

st.subheader("Which settings matter")
params = varying_settings(shown)
st.caption(f"The {len(shown)} run{'s' if len(shown) != 1 else ''} shown above (filters apply): one line per run "
           "across every setting that differs between them (the data sizes included), coloured by its best test accuracy.")
with st.container():
    if params:
        settings_importance.draw_importance(shown, params, "best_test_acc", key="runs_")
    else:
        st.info("No setting differs between these runs: nothing to rank.")

st.subheader("One run")
with st.container():
    detail = st.selectbox("Run", selected, key="runs_detail") if len(selected) > 1 else selected[0]
try:
    run = manager.store.get(detail)
except RunStoreError as exc:
    messages.show_error(exc)
    st.stop()
status = run.status()
with st.container():
    problem = "".join(frame.loc[frame["name"] == detail, "problem"])
    if problem:
        messages.show_error(problem)
    if status.active:
        st.fragment(run_every=LIVE_S)(active_run)(detail)  # live while some process trains it
    else:
        messages.clear_flash("runs_stop")  # "Stopping …" belongs to the active run view
        widgets.show_status(status)
        run_readout(run, status)
run_records = records.get(detail) or cached_reads.read_records(run)
annotations = run.read_annotations()
run_annotations.draw_annotations(manager.store, run, "runs_")

try:
    rerun = command_for(run.read_config(), runs_dir=str(manager.store.root))
except (OSError, ValueError):  # an unreadable or foreign config.json
    rerun = None
with st.container():
    if rerun is not None:
        st.markdown("**Re-create this run** (a new run with the same config.json):")
        st.code(formatting.shell_lines(rerun), language="bash", wrap_lines=False)  # one flag per line

d1, d2, d3 = st.columns(3)
d1.download_button(
    "Download CSV (per epoch)",
    # Made when clicked (not on every rerun): accuracies in percent, as shown here (test_acc_pct), and
    # the run's tags and note on every row.
    data=lambda: export_csv(run_records, percent=True, annotations=annotations),
    file_name=f"{detail}.csv",
    mime="text/csv",
    key="runs_download_csv",
    on_click="ignore",
    help="one row per epoch; accuracies in percent (train_acc_pct, test_acc_pct)",
)
d2.download_button(
    "Download JSON (all records)",
    data=lambda: export_json(run_records, annotations=annotations, name=detail),
    file_name=f"{detail}.json",
    mime="application/json",
    key="runs_download_json",
    on_click="ignore",
)
with d3.expander("config.json"):
    if detail in configs:
        st.json(configs[detail])
    else:
        st.caption("config.json cannot be read (see above); the run can still be deleted.")


def delete(name: str) -> None:
    messages.clear_flash("runs")
    try:
        jobs.get_job_manager().store.delete(name)  # refuses, naming the process, while any process holds it
    except RunStoreError as exc:
        messages.flash("runs", messages.ERROR, one_line(exc))
        return
    messages.flash("runs", messages.SUCCESS, f"Deleted {name}.")
    st.session_state["runs_confirm_delete"] = False


a1, a2 = st.columns(2)
with a1.container(border=True):
    st.markdown("**Resume**")
    widgets.resume_controls(
        "runs_", detail, status, flash_key="runs", label="Resume run",
        help="continue from the last checkpoint (add epochs to extend a finished run)",
        resumed=f"Resumed {detail}; watch it on the Train page.",
        disabled=detail not in configs,  # config.json unreadable: shown above
    )
with a2.container(border=True):
    st.markdown("**Delete**")
    confirm = st.checkbox(f"Yes, delete {detail} and its files", key="runs_confirm_delete")
    st.button("Delete run", key="runs_delete", on_click=delete, args=(detail,), disabled=not confirm)
    if status.active:
        st.caption("This run is active; stop it (**Stop** above) before deleting.")

messages.show_flash("runs")
