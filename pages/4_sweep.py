"""Sweep page: a grid of N × k (× seeds) over a Train-page preset — pre-flight, launch, and the live grid."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import (cached_reads, cluster_view, formatting, jobs, messages, run_annotations, run_form, sweep_search,
                       widgets, width_view)
from dashboard.action_guard import action_guard
from wrn_core.config import ConfigError
from wrn_core.errors import DataError, one_line
from wrn_core.jobs.executor import LOCAL, RAY, Placement
from wrn_core.plots import SWEEP_METRICS, TRADEOFF_X_TITLES, sweep_heatmap, sweep_tradeoff_figure
from wrn_core.reference import OFFICIAL_LOG_ATTRIBUTION, PAPER_CAPTION, PAPER_SOURCE
from wrn_core.store import RunStoreError
from wrn_core.store.records import PENDING, PRUNED, QUEUED, RUNNING
from wrn_core.sweeps import (
    Sweep,
    cells_frame,
    cells_table,
    default_sweep_name,
    grid_frame,
    load_sweep,
    make_sweep,
    preflight_frame,
    preflight_summary,
    probe,
    recent_sweep_names,
    sweep_counts,
    unfinished_grid,
)
from wrn_core.sweeps.predict import predicted_grid, predicted_points

F = "sweep_f_"  # prefix of the form's value widgets (kept across page switches)
V = "sweep_v_"  # prefix of the live view's settings (kept across page switches)
NEW = "New sweep…"
BLOCK_CHOICES = (1, 2, 3, 4, 5, 6)  # N: depth 10 … 40
WIDEN_CHOICES = (1, 2, 4, 8, 10, 12)  # k
MAX_SEEDS = 5
POLL_S = 1.5  # seconds between refreshes of the live view
# Messages about a sweep's cells training (Launched, Resumed, Stopping): each goes once no cell trains any more.
PROGRESS_FLASHES = ("sweep_launched", "sweep_progress")
PLAN_HIDDEN = ("run", "free (MiB)", "depth", "steps")  # in the plan's data (and downloads), not its columns
PLAN_NAME = "sweep"  # a pre-flight's sweep when the name field is empty: its rows carry no clock time


def form_sweep(unnamed: str | None = None) -> Sweep:
    """The sweep the form describes, named `unnamed` (default: by the clock) when the name field is empty;
    ConfigError or RunStoreError (one line) for bad input."""
    config, nproc = run_form.form_to_config(F)
    if nproc > 1:
        raise ConfigError("a sweep trains one cell per device: choose a device or auto, not all GPUs (DDP)")
    name = (st.session_state[F + "name"] or "").strip() or unnamed or default_sweep_name()
    seeds = range(int(st.session_state[F + "seeds"]))
    return make_sweep(name, config, st.session_state[F + "blocks"], st.session_state[F + "widen"], seeds=seeds,
                      search=sweep_search.form_plan(F))


def form_placement() -> Placement:
    """Where the form says the cells train: this machine, or a Ray cluster (its address, what each cell reserves;
    GPUs not chosen: CellResources.default_for, one per cell of a CUDA sweep)."""
    return Placement(executor=st.session_state.get(F + "executor") or LOCAL,
                     address=(st.session_state.get(F + "ray_address") or "").strip() or None,
                     cpus=float(st.session_state.get(F + "cpus_per_cell") or 1.0),
                     gpus=st.session_state.get(F + "gpus_per_cell"))


def clear_sweep_flashes(*keys: str) -> None:
    """A callback's first step: the messages it answers go (with the progress messages), so none outlives a new try."""
    for key in (*keys, *PROGRESS_FLASHES):
        messages.clear_flash(key)


def launch() -> None:
    """on_click of Launch: save the sweep and start it where the form says; an error is a flash under Launch,
    success one beside the launched sweep."""
    clear_sweep_flashes("sweep_launch")
    placement = form_placement()

    def start(sweep: Sweep) -> str:
        sweep_search.keep_predicted_times(jobs.get_job_manager().store.root, sweep, sweep_key(sweep),
                                          st.session_state.get("sweep_plan"))  # a minutes budget reads its times
        jobs.get_sweep_executor().start(sweep, placement)
        return sweep.name

    try:
        sweep = form_sweep()
        # The form with the name as typed (an empty one is named by the clock): twice within a few
        # seconds is one launch (action_guard).
        action = "sweep " + json.dumps([sweep.to_dict() | {"name": None}, st.session_state[F + "name"]], sort_keys=True)
        name = action_guard().once(action, lambda: start(sweep))
    except (ConfigError, RunStoreError, DataError) as exc:
        messages.flash("sweep_launch", messages.ERROR, one_line(exc))
        st.session_state[REFUSED_FORM] = run_form.signature(F)
        return
    st.session_state[F + "open"] = name
    forget_preflight()  # it was for the sweep now launched
    messages.flash("sweep_launched", messages.SUCCESS,
                   f"Launched {name}: its cells train {placement.describe()}; each is also a run on the Runs page.",
                   about=name)


REFUSED_FORM = "sweep_refused_form"  # the form as it was when Launch refused it


def resume_sweep(name: str) -> None:
    """on_click of Resume sweep: its remaining cells train where the form says."""
    clear_sweep_flashes("sweep")
    placement = form_placement()
    try:
        jobs.get_sweep_executor().resume(name, placement)
    except (ConfigError, RunStoreError, DataError) as exc:
        messages.flash("sweep", messages.ERROR, one_line(exc))
        return
    messages.flash("sweep_progress", messages.SUCCESS, f"Resumed {name}: its remaining cells train {placement.describe()}.",
                   about=name)


def stop_sweep(name: str) -> None:
    """on_click of Stop sweep: no more cells start, and the held ones stop wherever they train (also those a
    restarted dashboard did not start)."""
    clear_sweep_flashes("sweep")
    stopped = jobs.get_sweep_executor().stop(name)
    messages.flash("sweep_progress", messages.SUCCESS, f"Stopping {len(stopped)} cell(s); the others stay pending. "
                   "**Resume sweep** continues.", markdown=True, about=name)


def sweep_key(sweep: Sweep) -> tuple:
    """What a pre-flight was measured for: the grid and the base config, not the name."""
    return (tuple(sorted(sweep.axes.items())), sweep.base)


def forget_preflight() -> None:
    """A pre-flight speaks of the form it measured: opening another sweep (or a new one) drops it."""
    st.session_state.pop("sweep_plan", None)


def draw_preflight(current: Sweep | None) -> None:
    """The last pre-flight's table and totals, if it was measured for the sweep the form describes now."""
    stored = st.session_state.get("sweep_plan")
    if stored is None:
        st.info("Choose N, k and seeds and a base config, then **Pre-flight** to see every cell's size, memory "
                "and predicted time before you **Launch**.")
        return
    key, plan = stored
    if current is None or key != sweep_key(current):
        st.caption("The form changed since this pre-flight: press **Pre-flight** again for current figures.")
    totals = preflight_summary(plan)
    predicted = totals["predicted_s"]
    st.markdown(f"**{totals['cells']} cell(s)** · predicted **{formatting.fmt_seconds(predicted)}** in all, one cell "
                f"after another per device · largest training memory {formatting.fmt_mib(totals['peak_memory_mb'])}")
    sweep_search.draw_forecast(plan, current)
    if totals["misfits"]:
        st.warning(f"{len(totals['misfits'])} cell(s) are predicted not to fit in memory "
                   f"({', '.join(totals['misfits'][:3])}{', …' if len(totals['misfits']) > 3 else ''}): "
                   "they may fail; try a smaller batch or fewer wide models.")
    shown = plan.rename(columns={"blocks": "N", "widen_factor": "k", "memory_mb": "memory (MiB)",
                                 "free_mb": "free (MiB)", "predicted_s": "predicted (s)", "macs": "MACs / image"})
    # In half the page every column must fit: N, k and seed name the cell (the run name repeats them), and the
    # device's free memory, the same for every cell, is said once below.
    order = [c for c in shown.columns if c not in PLAN_HIDDEN]
    st.dataframe(
        shown, hide_index=True, key="sweep_plan_table", column_order=order,
        column_config={
            "N": st.column_config.NumberColumn(width=40), "k": st.column_config.NumberColumn(width=40),
            "seed": st.column_config.NumberColumn(width=45), "fits": st.column_config.CheckboxColumn(width=40),
            "params": st.column_config.NumberColumn(format="localized", width=75),
            "MACs / image": st.column_config.NumberColumn("MACs", format="compact", width=75,
                                                          help="multiply-accumulates per image"),
            "memory (MiB)": st.column_config.NumberColumn(format="%.0f", width=95),
            "predicted (s)": st.column_config.NumberColumn(format="%.1f", width=90),
        },
    )
    free = sorted({formatting.fmt_mib(v) for v in plan["free_mb"] if v is not None and v == v})
    st.caption("Predicted time: each model's measured seconds per training step × its steps, plus evaluation and "
               "the measured start-up of a training process. Memory: predicted for training, against the device's "
               f"free memory ({', '.join(free) or 'unknown'}).")


def new_sweep_view() -> None:
    """The form (axes and a base config from the Train page's presets), Pre-flight and Launch."""
    form_col, plan_col = st.columns([5, 6], gap="large")  # the plan's table needs the wider half
    with form_col:
        with st.container(height=600, border=False):
            with st.container(border=True):
                st.markdown("**Grid**")
                st.text_input("sweep name", key=F + "name", placeholder="auto: sweep-<date>-<time>",
                              help="its cells are runs named <sweep>-n<N>-k<k>-s<seed>")
                c1, c2 = st.columns(2)
                c1.multiselect("N (blocks per group)", BLOCK_CHOICES, key=F + "blocks",
                               format_func=lambda n: f"N={n} · d{6 * n + 4}")  # short: chips are narrow
                c2.multiselect("k (widen factor)", WIDEN_CHOICES, key=F + "widen")
                c1, c2 = st.columns(2)
                c1.number_input("seeds per cell", min_value=1, max_value=MAX_SEEDS, step=1, key=F + "seeds",
                                help="seeds 0 … n-1; with several, charts show mean ± std")
                c2.number_input("dropout", min_value=0.0, max_value=0.95, step=0.05, format="%.2f", key=F + "dropout")
                c1, c2 = st.columns(2)
                c1.radio("run on", [LOCAL, RAY], key=F + "executor", horizontal=True,
                         format_func={LOCAL: "this machine", RAY: "Ray cluster"}.get,
                         help="Ray: each cell a Ray task on any node; every node must mount the runs directory")
                if st.session_state[F + "executor"] == RAY:
                    c2.text_input("Ray address", key=F + "ray_address", placeholder="HEAD:6379",
                                  help="empty: RAY_ADDRESS, else a local Ray started for the sweep")
                    c1, c2 = st.columns(2)
                    c1.number_input("CPUs per cell", min_value=0.5, max_value=256.0, step=1.0, key=F + "cpus_per_cell",
                                    help="what each cell reserves in Ray: as many cells run at once as the nodes hold")
                    c2.number_input("GPUs per cell", min_value=0.0, max_value=16.0, step=1.0, key=F + "gpus_per_cell",
                                    value=None, placeholder="1 for a CUDA sweep, else 0",
                                    help="empty: one GPU per cell for a CUDA sweep, none otherwise")
            sweep_search.draw_form(F)
            run_form.draw(F, model=False, seed=False)
    with plan_col:
        st.subheader("Pre-flight")
        # The buttons head this column, not the foot of the scrolling form: in view at any window height,
        # with what they answer (a refusal, the plan) right under them.
        b1, b2 = st.columns(2)
        preflight_clicked = b1.button("Pre-flight", key="sweep_preflight", width="stretch",
                                      help="times a few training steps of each model (seconds)")
        b2.button("Launch", type="primary", key="sweep_launch", on_click=launch, width="stretch")
        if preflight_clicked or st.session_state.get(REFUSED_FORM) != run_form.signature(F):
            messages.clear_flash("sweep_launch")  # the pre-flight reports the form's state now; an edit answers a refusal
        messages.show_flash("sweep_launch")
        current = None
        try:
            current = form_sweep(unnamed=PLAN_NAME)
        except (ConfigError, RunStoreError, DataError) as exc:
            if preflight_clicked:
                messages.show_error(exc)
                preflight_clicked = False
        if preflight_clicked and current is not None:
            try:
                with st.spinner("Timing a few training steps of each model…"):
                    plan = preflight_frame(current, probe(current))
            except (ConfigError, RunStoreError, DataError) as exc:
                messages.show_error(exc)
            else:
                st.session_state["sweep_plan"] = (sweep_key(current), plan)
        draw_preflight(current)


SECTION_STATE = "sweep_section_cells"  # what the page outside the live view last drew the cells as


def cells_state(cells) -> str:
    """What the sections outside the live view read of the cells: which have a run, where each is, its accuracy."""
    return cells[["run", "status", "epoch", "best_test_acc"]].to_json()


def progress_and_controls(sweep: Sweep, cells, done: bool) -> bool:
    """The cells' progress line, the messages about the sweep, and Stop or Resume (`done`: nothing left to train);
    True while it is active (an executor drives it, or some cell is queued or running)."""
    name = sweep.name
    executor = jobs.get_sweep_executor()  # on Ray: cells waiting in Ray's queue read queued (its queue lock)
    counts = sweep_counts(cells)
    active = executor.running(name) or counts[RUNNING] > 0 or counts[QUEUED] > 0
    parts = [f"{counts['ended']}/{counts['total']} cells ended"]
    parts += [f"{counts[key]} {key}" for key in (PRUNED, RUNNING, QUEUED, "paused", PENDING) if counts[key]]
    st.progress(counts["ended"] / max(1, counts["total"]), text=" · ".join(parts))
    if not active:  # what Launched, Resumed or Stopping spoke of is over: the progress line says how it ended
        for key in PROGRESS_FLASHES:
            messages.clear_flash(key)
    for key in PROGRESS_FLASHES:
        messages.show_flash(key, about=name)
    error = executor.error(name)
    if error:
        messages.show_error(f"The sweep stopped: {error}")
    c1, c2, _ = st.columns([1, 1, 3])
    if active:
        c1.button("Stop sweep", key="sweep_stop", on_click=stop_sweep, args=(name,),
                  help="running cells checkpoint and stop; the rest stay pending")
    elif not done:
        c1.button("Resume sweep", key="sweep_resume", on_click=resume_sweep, args=(name,), type="primary",
                  help=f"train the pending cells and resume the stopped ones, {form_placement().describe()}")
    messages.show_flash("sweep")
    return active


def draw_cells_table(cells) -> None:
    """The cells, one row each: where each is, its results (— where not known yet), its executor and host."""
    columns = {
        **formatting.result_columns(),
        "time (s)": st.column_config.NumberColumn(format="%.1f"),
        "images/s": st.column_config.NumberColumn(format="%.0f"),
        "MACs": st.column_config.NumberColumn(format="localized"),
        "pareto": st.column_config.CheckboxColumn(help="on the accuracy-vs-parameters Pareto front of the finished "
                                                       "cells; empty until a cell finishes"),
    }
    columns["executor"] = st.column_config.TextColumn(help="what runs the cell: local (this machine's queue) or ray")
    columns["host"] = st.column_config.TextColumn(help="the machine its trainer runs (or last ran) on")
    # Numbers stay numbers (they sort as numbers); a value not known yet is drawn as the placeholder, never "None".
    st.dataframe(cells_table(cells), hide_index=True, column_config=columns, placeholder="—")


def draw_heatmap(cells, several: bool, shown) -> None:
    """The N × k heatmap of the chosen metric (unfinished squares grey, or pale where the map `shown` predicts)."""
    st.subheader("Depth × width")
    metric = st.radio("metric", list(SWEEP_METRICS), key=V + "metric", horizontal=True,
                      format_func=lambda m: SWEEP_METRICS[m][0], label_visibility="collapsed")
    spread = grid_frame(cells, metric, agg="std") if several else None
    guess = predicted_grid(cells, shown) if shown is not None else None
    st.plotly_chart(sweep_heatmap(grid_frame(cells, metric), metric, spread, unfinished_grid(cells), guess),
                    key="sweep_heatmap_chart")
    note = "Grey: not finished, so no result yet (where it stopped or is)." + sweep_search.heatmap_note(shown)
    if several:
        note = "Each square: the mean over the seeds, ± their standard deviation, once every seed finished. " + note
    st.caption(note)


def draw_tradeoff(cells, several: bool, shown) -> None:
    """Accuracy against params, MACs or time, with the Pareto front of the finished cells and the paper's points."""
    st.subheader("Accuracy trade-off")
    x_axis = st.radio("x axis", list(TRADEOFF_X_TITLES), key=V + "x", horizontal=True,
                      format_func=TRADEOFF_X_TITLES.get, label_visibility="collapsed")
    guessed = predicted_points(cells, shown, x_axis) if shown is not None else None
    st.plotly_chart(sweep_tradeoff_figure(cells, x_axis, predicted=guessed), key="sweep_tradeoff_chart")
    note = "Dashed: the Pareto front of the finished cells (nothing cheaper is as accurate). ○ Not finished: its accuracy so far."
    note += sweep_search.TRADEOFF_NOTE if guessed is not None and len(guessed) else ""
    if several:
        note += " Points: the mean over seeds with ± std error bars; grey dots: each seed."
    if x_axis != "train_seconds":
        note += f" ◇ {PAPER_CAPTION}: the published CIFAR-10 results ({PAPER_SOURCE})."
    st.caption(note)


def draw_small_multiples(store, sweep: Sweep, cells, several: bool) -> None:
    """Test accuracy per cell, one panel each, optionally with the authors' WRN-40-4 curve."""
    st.subheader("Test accuracy per cell")
    st.toggle("Reference: the authors' WRN-40-4 on CIFAR-10 (test accuracy, 200 epochs)", key=V + "reference",
              help="A dashed curve in every panel: " + OFFICIAL_LOG_ATTRIBUTION)
    reference = bool(st.session_state[V + "reference"])
    key = (sweep.name, sweep.created_at)
    st.plotly_chart(cached_reads.cached_small_multiples(store, key, cells, reference), key="sweep_multiples_chart")
    if reference:
        st.caption(f"Dashed: {OFFICIAL_LOG_ATTRIBUTION}. The panels show this sweep's epochs; zoom out to see all 200.")
    if several:
        st.caption("One line per seed; the band is the mean ± std over the seeds.")


def saved_sweep(store, name: str) -> Sweep | None:
    """The saved sweep `name`, or None with its one-line problem shown (a file gone or unreadable)."""
    try:
        return load_sweep(store.root, name)
    except RunStoreError as exc:
        messages.show_error(exc)
        return None


@st.fragment(run_every=POLL_S, key="sweep_live")
def live_view(name: str) -> None:
    """Polls the sweep's runs: progress, the cells, the N × k heatmap, the trade-off and small multiples.
    When the cells moved on since the page was drawn, the whole page reruns, so that the sections outside
    this fragment (tags, parallel coordinates, importance) follow it."""
    store = jobs.get_job_manager().store
    sweep = saved_sweep(store, name)
    if sweep is None:
        return
    cells = width_view.with_width_columns(store, cells_frame(store, sweep))
    if st.session_state.get(SECTION_STATE) not in (None, cells_state(cells)):
        st.rerun(scope="app")
    shown, done = sweep_search.outlook(store.root, sweep, cells, cells_state(cells))
    active = progress_and_controls(sweep, cells, done)
    draw_cells_table(cells)
    cluster_view.draw_cluster(store.root, name, cells, active)  # a Ray sweep's nodes, as its driver wrote them
    widgets.cells_health(store, cells, active)
    sweep_search.draw_next(shown)
    several = len(sweep.axes.get("seed", ())) > 1
    left, right = st.columns(2, gap="large")
    with left:
        draw_heatmap(cells, several, shown)
    with right:
        draw_tradeoff(cells, several, shown)
    draw_small_multiples(store, sweep, cells, several)


def opened_view(name: str) -> None:
    """A saved sweep: what it varies, its base config, and the live view."""
    store = jobs.get_job_manager().store
    sweep = saved_sweep(store, name)
    if sweep is None:
        return
    base = sweep.base
    axes = " · ".join(f"{axis.replace('_', ' ')}: {', '.join(map(str, values))}" for axis, values in sweep.axes.items())
    st.caption(f"{len(sweep.cells())} cells — {axes}.{sweep_search.plan_text(sweep.search)} Base: {base.dataset}, {formatting.OPTIMIZER_LABELS.get(base.optimizer, base.optimizer)}, "
               f"{base.epochs} epoch(s), batch {base.batch_size}, device {base.device}.")
    with st.expander("Base config"):
        st.json(base.to_dict(), expanded=False)
    cells = cells_frame(store, sweep)
    st.session_state[SECTION_STATE] = cells_state(cells)  # the live view reruns the page once the cells move on
    live_view(name)
    run_annotations.draw_sweep_tags_and_importance(store, sweep, cells)


run_form.init(F)
st.session_state.setdefault(F + "name", "")
st.session_state.setdefault(F + "blocks", [1, 2])
st.session_state.setdefault(F + "widen", [1, 2])
st.session_state.setdefault(F + "seeds", 1)
st.session_state.setdefault(F + "executor", LOCAL)
st.session_state.setdefault(F + "ray_address", "")
st.session_state.setdefault(F + "cpus_per_cell", 1.0)
sweep_search.init(F)
st.session_state.setdefault(V + "metric", "best_test_acc")
st.session_state.setdefault(V + "x", "params")
st.session_state.setdefault(V + "reference", False)

st.title("Sweep")
names = recent_sweep_names(jobs.get_job_manager().store.root)
choices = [NEW, *names]
if st.session_state.get(F + "open") not in choices:
    st.session_state[F + "open"] = names[0] if names else NEW  # the newest sweep, or a new one
opened = st.selectbox("Sweep", choices, key=F + "open", on_change=forget_preflight,
                      help="a saved sweep (newest first), or a new one; its file is <runs dir>/<name>.sweep.json")
if opened == NEW:
    new_sweep_view()
else:
    opened_view(opened)
