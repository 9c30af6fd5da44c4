"""Runs-page views of many runs: the listing (cached), filters, the runs or groups table with metric columns, tags and
notes, colours, group bands, the transposed comparison, parallel coordinates and importance."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import lab_ui
from wrn_core.analysis import (
    ImportanceError,
    compare_frame,
    curves_frame,
    filter_runs,
    group_curves,
    group_runs,
    importance_frame,
    member_curves,
    metric_summary,
    note_preview,
    runs_frame,
)
from wrn_core.analysis.run_tables import COMPARE_RESULTS, STATUS_METRIC_COLUMNS, metric_columns
from wrn_core.analysis.grouping import TAG_FILTER
from wrn_core.plots import compare_figure, group_curves_figure, parallel_coordinates_figure
from wrn_core.plots.style import PALETTE, color_map
from wrn_core.reference import official_curve
from wrn_core.store import Run, RunStore, RunStoreError, RunSummary
from wrn_core.store.meta import validate_tag
from wrn_core.store.records import ACTIVE_STATUSES, INTERRUPTED

# Filters shown above the table, in this order: (runs_frame column or "tag", label).
FILTERS = (("model", "model"), ("dataset", "dataset"), ("optimizer", "optimizer"), ("lr", "lr"),
           ("widen_factor", "k"), ("blocks", "N"), ("status", "status"), (TAG_FILTER, "tag"))
FILTERS_PER_ROW = 4  # at 1440 px each filter is then ~230 px wide: a picked value reads in full
NOTE_PREVIEW = 60  # characters of a note shown in the table
# The runs table's columns, in order, around the metric columns the user picks (after `epochs`); `problem` is
# added when a run has one. The rest of runs_frame (the settings) is for filters, grouping and importance.
TABLE_HEAD = ("name", "status", "model", "dataset", "optimizer", "epochs")
TABLE_TAIL = ("params", "duration (s)", "tags", "note")
DEFAULT_METRIC_COLUMNS = tuple(STATUS_METRIC_COLUMNS.values())  # best and final test accuracy, from status.json
SUMMARY_FILES = ("config.json", "status.json", "meta.json")  # what a run's row is read from
FRAMES_KEPT = 8  # runs frames kept per process, one per distinct listing (runs and versions of their files)
MAX_CURVE_RUNS = 20  # runs whose metrics a grouped view reads at most (each may hold thousands of lines)
DEFAULT_GROUPS = 3  # groups drawn when none is ticked: those of the newest runs
BEST, FINAL = "best test acc (%)", "final test acc (%)"


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's (mtime ns, size), None when it is missing: a replaced file gets a new stamp."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@st.cache_resource(show_spinner=False)
def _listing_cache() -> dict[str, Any]:
    """This process's listing cache, shared by every session: 'summaries' maps (runs dir, run) to (stamps of its
    SUMMARY_FILES, RunSummary); 'frames' maps a listing's key to its runs_frame; 'lock' guards both. Plain dicts,
    not st.cache_* per run: hashing 500 calls' arguments cost more than the reads they saved. Nobody mutates
    what they hold."""
    return {"summaries": {}, "frames": {}, "lock": threading.Lock()}


def _summary(store: RunStore, name: str, cache: dict) -> tuple[tuple, RunSummary]:
    """(the run's stamps, its RunSummary), read again only when one of its SUMMARY_FILES changed; a run whose status
    depends on who holds its lock (queued, running, or interrupted: left so by a process that died) is read afresh."""
    path = store.root / name
    stamps = tuple(_stamp(path / f) for f in SUMMARY_FILES)
    kept = cache.get((str(store.root), name))
    if kept is not None and kept[0] == stamps and kept[1].status not in (*ACTIVE_STATUSES, INTERRUPTED):
        return kept
    summary = store.summary(name)
    cache[(str(store.root), name)] = (stamps, summary)
    return stamps, summary


def listing(store: RunStore) -> tuple[list[RunSummary], pd.DataFrame]:
    """(store.summaries(), their runs_frame with every setting), each run re-read only when its config.json,
    status.json or meta.json changed and the frame rebuilt only when a run did (or is active: read every time)."""
    cache, root = _listing_cache(), str(store.root)
    names = store.names()
    read = [_summary(store, name, cache["summaries"]) for name in names]
    summaries = [summary for _, summary in read]
    key = (root, tuple((s.name, stamps, s if s.status in (*ACTIVE_STATUSES, INTERRUPTED) else None)
                       for stamps, s in read))
    frame = cache["frames"].get(key)
    if frame is None:
        frame = runs_frame(summaries, settings=True)
        with cache["lock"]:
            frames, listed = cache["frames"], set(names)
            while len(frames) >= FRAMES_KEPT:
                frames.pop(next(iter(frames)))
            frames[key] = frame
            for gone in [k for k in cache["summaries"] if k[0] == root and k[1] not in listed]:  # deleted runs
                del cache["summaries"][gone]
    return summaries, frame


def run_colors(frame: pd.DataFrame) -> dict[str, str]:
    """One colour per run of a runs_frame (all runs, not the filtered ones), oldest first: a run keeps its colour
    in every view of the page, and a new run never recolours the others."""
    return color_map(list(reversed(frame["name"].tolist())))


def group_colors(groups: Mapping[str, Sequence[str]], colors: Mapping[str, str]) -> dict[str, str]:
    """A colour per group: its first (newest) member's, or the next member's when another group has that one
    (a group of one run is drawn in that run's colour); a palette colour nobody uses when all are taken."""
    chosen: dict[str, str] = {}
    for label, runs in groups.items():
        used = set(chosen.values())
        free = [colors[r] for r in runs if r in colors and colors[r] not in used]
        chosen[label] = free[0] if free else next((c for c in PALETTE if c not in used), PALETTE[len(chosen) % len(PALETTE)])
    return chosen


def widget_key(prefix: str, *parts: Any) -> str:
    """A widget key from a prefix and a digest of its parts (run names may be long or hold odd characters)."""
    return prefix + hashlib.sha1("\n".join(map(str, parts)).encode()).hexdigest()[:12]


def _plain_values(series: pd.Series) -> list[Any]:
    """The distinct non-missing values of a column as plain Python values, sorted."""
    values = series.dropna().unique().tolist()
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def filter_options(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """Each filter's choices: the values present in the runs (every tag any run has, for `tag`)."""
    options = {}
    for field, _ in FILTERS:
        if field == TAG_FILTER:
            options[field] = sorted({t for tags in frame["tags"] for t in tags})
        elif field in frame.columns:
            options[field] = _plain_values(frame[field])
    return options


def draw_filters(prefix: str, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """One multiselect per filter (built from the values present; key prefix+"filter_"+field), FILTERS_PER_ROW to a
    row; returns the filters chosen, for analysis.filter_runs."""
    options = filter_options(frame)
    columns = [c for _ in range(0, len(FILTERS), FILTERS_PER_ROW) for c in st.columns(FILTERS_PER_ROW)]
    chosen = {}
    for column, (field, label) in zip(columns, FILTERS):
        key = f"{prefix}filter_{field}"
        # A value no run has any more (a deleted run, a removed tag) would make the multiselect raise.
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in options.get(field, [])]
        # wrap: picked values wrap onto more lines instead of shrinking to their ✕ in a narrow column.
        values = column.multiselect(label, options.get(field, []), key=key, placeholder="any", wrap=True,
                                    help="runs having all these tags" if field == TAG_FILTER else None)
        if values:
            chosen[field] = values
    return chosen


@st.cache_data(show_spinner=False, max_entries=20_000)
def _metric_summary_cached(path: str, stamp: tuple) -> dict[str, float]:
    return metric_summary(lab_ui.read_records(Run(Path(path))))


def with_metric_columns(store: RunStore, frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The runs with these metric columns (analysis metric_columns()): best and final test accuracy as runs_frame
    has them (from status.json), any other read from the runs' epochs (metrics.jsonl, once per change of it)."""
    wanted = [c for c in columns if c not in frame.columns]
    if not wanted:
        return frame
    values = {c: [] for c in wanted}
    for name in frame["name"]:
        run = Run(store.root / name)
        summary = _metric_summary_cached(*lab_ui.metrics_stamp(run))
        for column in wanted:
            values[column].append(summary.get(column, np.nan))
    return frame.assign(**{c: pd.Series(v, index=frame.index, dtype="float64") for c, v in values.items()})


def draw_metric_columns(prefix: str, disabled: bool) -> list[str]:
    """The multiselect of the runs table's metric columns (a metric and its best, min, max or last value, one
    column each; default best and final test accuracy); returns the columns picked, in the order picked."""
    options = list(metric_columns())
    st.session_state.setdefault(prefix + "metric_columns", list(DEFAULT_METRIC_COLUMNS))
    return st.multiselect(
        "Metric columns", options, key=prefix + "metric_columns", placeholder="no metric columns", disabled=disabled,
        format_func=metric_label,  # as the table's headers read
        help="a column per metric and value over the run's epochs: best (max of accuracies and images/s, min of "
             "losses and seconds), min, max or last; click a column's header to sort by it" +
             (". Grouped rows show best and final test accuracy as mean ± std." if disabled else ""))


def table_frame(frame: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRIC_COLUMNS) -> pd.DataFrame:
    """The runs table as drawn: TABLE_HEAD, the metric columns (already in `frame`, see with_metric_columns),
    TABLE_TAIL and `problem` when a run has one; the note as a one-line preview."""
    tail = [*TABLE_TAIL, "problem"] if frame["problem"].astype(bool).any() else list(TABLE_TAIL)
    columns = list(dict.fromkeys([*TABLE_HEAD, *metrics, *tail]))
    table = frame[columns]
    return table.assign(note=table["note"].map(lambda note: note_preview(note, NOTE_PREVIEW)))


# Column widths (px) of the runs table: with the row checkbox (33 px) the default columns fill the 978 px a
# 1440 px wide window gives the table beside the sidebar, so none is cut off on the right.
TABLE_WIDTHS = {"name": 114, "status": 78, "model": 74, "dataset": 72, "optimizer": 94, "epochs": 50, "params": 64,
                "duration (s)": 70, "tags": 76, "note": 76}
METRIC_WIDTH, CHAR_PX = 86, 6  # a metric column: at least this wide, else wide enough for its header


def metric_label(column: str) -> str:
    """A metric column's header: 'best test acc (%)' as 'best test %', the rest as named."""
    return column.replace(" acc (%)", " %")


def table_columns(metrics: Sequence[str]) -> dict[str, Any]:
    """st.dataframe column formats of the runs table: widths that fit 1440 px (TABLE_WIDTHS), numbers formatted."""
    number, text, w = st.column_config.NumberColumn, st.column_config.TextColumn, TABLE_WIDTHS
    config = {
        **{column: text(width=w[column]) for column in ("name", "status", "model", "dataset", "optimizer")},
        "epochs": text(width=w["epochs"], help="done / planned"),
        "params": number(format="localized", width=w["params"]),
        "duration (s)": number("duration", format="%.0f s", width=w["duration (s)"], help="training seconds"),
        "tags": st.column_config.ListColumn(width=w["tags"], help="edit them in the table below, or under One run"),
        "note": text(width=w["note"], help="the note's first line; edit it in the table below, or under One run"),
    }
    for column in metrics:
        label = metric_label(column)
        config[column] = number(label, help=column, width=max(METRIC_WIDTH, CHAR_PX * len(label) + 20),
                                format="%.2f" if "(%)" in column or "loss" in column else "%.1f")
    return config


def group_label(row: Mapping[str, Any], by: Sequence[str]) -> str:
    """A group's name from its field values: 'optimizer=adam, widen_factor=2'."""
    parts = []
    for field in by:
        value = row[field]
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            value = "missing"
        elif isinstance(value, float) and value.is_integer() and field != "lr":
            value = int(value)
        parts.append(f"{field}={value}")
    return ", ".join(parts)


def shown_groups(grouped: pd.DataFrame, by: Sequence[str], rows: Iterable[int], order: Sequence[str]) -> tuple[dict[str, list[str]], str]:
    """(group label -> member runs to draw, a caption): the ticked groups, else the groups of the newest runs
    (`order`: run names newest first); groups are added while their members stay within MAX_CURVE_RUNS."""
    labels = [group_label(row, by) for _, row in grouped.iterrows()]
    members = {label: list(runs) for label, runs in zip(labels, grouped["runs"])}
    ticked = [labels[r] for r in rows if 0 <= r < len(labels)]
    if ticked:
        wanted, note = ticked, ""
    else:
        owner = {run: label for label, runs in members.items() for run in runs}
        wanted = list(dict.fromkeys(owner[name] for name in order if name in owner))[:DEFAULT_GROUPS]
        note = "Nothing selected: showing the groups of the newest runs. Tick groups in the table to choose."
    shown, total, left_out = {}, 0, []
    for label in wanted:
        if shown and total + len(members[label]) > MAX_CURVE_RUNS:
            left_out.append(label)
            continue
        runs = members[label][:MAX_CURVE_RUNS]  # one huge group alone: its newest MAX_CURVE_RUNS members
        shown[label] = runs
        total += len(runs)
    cut = [label for label in shown if len(members[label]) > len(shown[label])]
    said = ([f"{len(left_out)} group(s) left out"] if left_out else []) + \
        [f"{label}: its newest {len(shown[label])} of {len(members[label])} runs" for label in cut]
    if said:
        note = (note + " " if note else "") + (f"At most {MAX_CURVE_RUNS} runs are drawn ({'; '.join(said)}); "
                                               "filter or tick fewer groups.")
    return shown, note


# cache_resource (no unpickling of the figure; nobody mutates it), keyed by what the bands show: the groups,
# each member's metrics.jsonl stamp, the x axis, smoothing, FLOPs per image, the metric, the colours and
# whether the members' own curves are drawn.
@st.cache_resource(show_spinner=False, max_entries=16)
def _bands_cached(groups: tuple, stamps: tuple, x: str, smoothing: float, flops: tuple, metric: str, colors: tuple,
                  members: bool):
    records = {name: lab_ui.read_records(Run(Path(path))) for name, (path, _) in stamps}
    curves = curves_frame(records, x=x, smoothing=smoothing, flops_per_image=dict(flops) if x == "flops" else None)
    by_group = {label: list(runs) for label, runs in groups}
    banded = group_curves(curves, by_group)
    figure = group_curves_figure(banded, metric, colors=dict(colors),
                                 members=member_curves(curves, by_group) if members else None)
    figure.update_layout(xaxis={"title": x.replace("_", " ")})
    return figure


def bands_figure(store: RunStore, groups: Mapping[str, Sequence[str]], x: str, smoothing: float,
                 flops: Mapping[str, float | None], metric: str, colors: Mapping[str, str] | None = None,
                 members: bool = False):
    """The groups' mean ± std curves of a metric, with (members) each member run's own faint curve under its
    band; colors: run name or group label -> colour (metrics read once per file change, figure cached)."""
    names = [name for runs in groups.values() for name in runs]
    stamps = tuple((name, lab_ui.metrics_stamp(Run(store.root / name))) for name in dict.fromkeys(names))
    return _bands_cached(tuple((label, tuple(runs)) for label, runs in groups.items()), stamps, x, float(smoothing),
                         tuple(sorted((k, v) for k, v in flops.items() if k in names)), metric,
                         tuple(sorted((colors or {}).items())), bool(members))


# Shared like _bands_cached: keyed by each run's metrics.jsonl stamp and the chart's settings, so a filter or
# group change that keeps the same runs drawn does not rebuild a figure of thousands of points.
@st.cache_resource(show_spinner=False, max_entries=16)
def _compare_cached(stamps: tuple, x: str, smoothing: float, log_cost: bool, flops: tuple, reference: bool,
                    log_x: bool, colors: tuple):
    records = {name: lab_ui.read_records(Run(Path(path))) for name, (path, _) in stamps}
    return compare_figure(records, x=x, smoothing=smoothing, log_cost=log_cost, flops_per_image=dict(flops),
                          reference=official_curve(x) if reference else None, log_x=log_x, colors=dict(colors))


def cached_compare_figure(store: RunStore, names: Sequence[str], x: str, smoothing: float, log_cost: bool,
                          flops: Mapping[str, float | None], reference: bool, log_x: bool,
                          colors: Mapping[str, str] | None = None):
    """plots.compare_figure of these runs (with the authors' curve when reference; colors: run -> colour),
    rebuilt only when a run's metrics.jsonl or a setting changed."""
    stamps = tuple((name, lab_ui.metrics_stamp(Run(store.root / name))) for name in names)
    return _compare_cached(stamps, x, float(smoothing), bool(log_cost), tuple(sorted(flops.items())), bool(reference),
                           bool(log_x), tuple(sorted((k, v) for k, v in (colors or {}).items() if k in names)))


def compare_table(configs: Mapping[str, Mapping[str, Any]], shown: pd.DataFrame, only_differences: bool) -> pd.DataFrame:
    """analysis.compare_frame of these runs (one column per run, results then settings) with readable cells:
    accuracies to 2 decimals, tags joined, the note's first line, settings as the config diff shows them;
    None where there is no value yet (the table's placeholder shows it as —)."""
    frame = compare_frame(configs, shown, only_differences=only_differences)
    results = set(COMPARE_RESULTS.values())

    def readable(setting: str, value: Any) -> str | None:
        if setting in results:
            if value is None:
                return None
            if setting == "tags":
                return ", ".join(value) or None
            if setting == "note":
                return note_preview(value, NOTE_PREVIEW) or None
            if isinstance(value, float):
                return f"{value:,.2f}" if "(%)" in setting else f"{value:,.1f}"
            return f"{value:,}" if isinstance(value, int) else str(value)
        return lab_ui.diff_value(setting, value)

    return pd.DataFrame({name: [readable(setting, v) for setting, v in frame[name].items()] for name in frame.columns},
                        index=frame.index, dtype="object")


RANKING = "Ranking the settings (a random forest of these runs)…"
POLL_S = 0.5  # seconds between looks at a ranking still being computed


@st.cache_resource(show_spinner=False)
def _importance_executor() -> ThreadPoolExecutor:
    # One worker: a ranking nobody waits for any more (the filter changed again) delays the next by ≤ 0.3 s.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance")


def _rank(frame: pd.DataFrame, params: tuple, target: str) -> tuple[pd.DataFrame | None, str]:
    try:
        return importance_frame(frame, list(params), target), ""
    except ImportanceError as exc:
        return None, lab_ui.one_line(exc)


# The forest takes ~0.3 s for 500 runs: it is computed beside the page (a page that waited for it would
# miss the 0.5 s a filter change may take), once per distinct table, and shared by every session.
@st.cache_resource(show_spinner=False, max_entries=32)
def _importance_future(digest: str, params: tuple, target: str, _frame: pd.DataFrame) -> Future:
    return _importance_executor().submit(_rank, _frame, params, target)


def importance_of(frame: pd.DataFrame, params: Sequence[str], target: str) -> Future:
    """importance_frame of these runs as a Future of (table, '') or (None, the one-line reason it cannot answer)."""
    columns = [c for c in [*params, "status", target, BEST, FINAL] if c in frame.columns]
    data = frame[list(dict.fromkeys(columns))].reset_index(drop=True)  # only what importance reads
    digest = hashlib.sha1(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes()
                          + repr((list(data.columns), tuple(params), target)).encode()).hexdigest()
    future = _importance_future(digest, tuple(params), target, data)
    wait([future], timeout=0.05)  # the one-line refusals (too few runs, nothing varies) come at once
    return future


def _await_ranking(future: Future) -> None:
    """A fragment polling a ranking in progress: the whole page reruns once it is ready (and polling ends)."""
    if future.done():
        st.rerun(scope="app")
    st.caption(RANKING)


def draw_importance(frame: pd.DataFrame, params: Sequence[str], target: str, key: str) -> None:
    """Parallel coordinates (params → target) and the parameter-importance table of these runs; when
    importance cannot answer, its one-line reason as st.info (while it is computed, a caption saying so)."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(parallel_coordinates_figure(frame, params, target), key=key + "parcoords")
    with right:
        future = importance_of(frame, params, target)
        if not future.done():
            st.fragment(run_every=POLL_S)(_await_ranking)(future)
            return
        table, reason = future.result()
        if table is None:
            st.info(lab_ui.plain(reason))
            return
        st.dataframe(
            table, hide_index=True, key=key + "importance", placeholder="—",
            # The note says which settings never vary; without one it would only push the table past its column.
            column_order=[c for c in table.columns if c != "note" or table["note"].astype(bool).any()],
            column_config={
                "importance": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f",
                                                              help="random-forest importance; sums to 1"),
                "correlation": st.column_config.NumberColumn(format="%+.2f",
                                                             help="Spearman rank correlation with the accuracy: "
                                                                  "+ higher values, higher accuracy"),
            },
        )
        st.caption("Importance: how much a random forest of these runs leans on each setting to predict the "
                   "accuracy (finished runs only). Correlation: its sign says which way the setting helps.")


def typed_tags(text: str) -> list[str]:
    """Tags as typed into a text box: separated by spaces or commas."""
    return text.replace(",", " ").split()


def save_tags(store_root: str, name: str, key: str, flash_key: str) -> None:
    """on_click of Save tags: the text (tags separated by spaces or commas) replaces the run's tags."""
    lab_ui.clear_flash(flash_key)
    text = st.session_state.get(key) or ""
    tags = typed_tags(text)
    try:
        Run(Path(store_root) / name).annotate(tags=tags)
    except RunStoreError as exc:  # AnnotationError: a bad tag; nothing was written
        lab_ui.flash(flash_key, "error", lab_ui.one_line(exc), about=name)
        return
    lab_ui.flash(flash_key, "success", f"Tags of {name}: {', '.join(sorted(set(tags))) or 'none'}.", about=name)


def save_note(store_root: str, name: str, key: str, flash_key: str) -> None:
    """on_click of Save note: the text area replaces the run's note (empty clears it)."""
    lab_ui.clear_flash(flash_key)
    try:
        Run(Path(store_root) / name).annotate(note=st.session_state.get(key) or "")
    except RunStoreError as exc:
        lab_ui.flash(flash_key, "error", lab_ui.one_line(exc), about=name)
        return
    lab_ui.flash(flash_key, "success", f"Saved the note of {name}.", about=name)


def draw_annotations(store: RunStore, run: Run, prefix: str) -> None:
    """The run's tags (a text input + Save tags) and note (a text area + Save note), saved to meta.json.

    The widgets' keys carry the annotations' last change, so a saved (or elsewhere changed) value shows
    as saved, while a rejected one stays as typed beside its error."""
    annotations = run.read_annotations()
    if annotations.problem:
        lab_ui.show_error(annotations.problem)
    flash_key = prefix + "annotate"
    tags_key = widget_key(prefix + "tags_", run.name, annotations.updated_at)
    note_key = widget_key(prefix + "note_", run.name, annotations.updated_at)
    st.session_state.setdefault(tags_key, " ".join(annotations.tags))
    st.session_state.setdefault(note_key, annotations.note)
    t1, t2 = st.columns([4, 1], vertical_alignment="bottom")
    t1.text_input("Tags", key=tags_key, placeholder="e.g. baseline cifar-long",
                  help="separated by spaces or commas; letters, digits and . _ : + = @ - (no spaces or '/')")
    t2.button("Save tags", key=prefix + "save_tags", on_click=save_tags,
              args=(str(store.root), run.name, tags_key, flash_key), width="stretch")
    st.text_area("Note", key=note_key, height=90, placeholder="what this run tried, what it showed")
    st.button("Save note", key=prefix + "save_note", on_click=save_note,
              args=(str(store.root), run.name, note_key, flash_key))
    lab_ui.show_flash(flash_key, about=run.name)


def apply_table_edits(store_root: str, names: Sequence[str], edited_rows: Mapping[Any, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Save the tags/note cells edited in the annotations table (st.data_editor's `edited_rows`: row position ->
    changed columns) to each run's meta.json. Returns (runs saved, one-line errors); a run with a bad value
    is left as it was, the others are saved."""
    saved, errors = [], []
    for row, change in sorted(edited_rows.items(), key=lambda item: int(item[0])):
        position = int(row)
        if not 0 <= position < len(names):
            continue
        name = names[position]
        tags = change.get("tags")
        note = change.get("note")
        try:
            Run(Path(store_root) / name).annotate(
                tags=None if tags is None else [str(t) for t in tags],
                note=None if note is None else str(note),
            )
        except RunStoreError as exc:  # AnnotationError: a bad tag or note; this run is unchanged
            errors.append(f"{name}: {lab_ui.one_line(exc)}")
            continue
        saved.append(name)
    return saved, errors


def _save_table_edits(store_root: str, names: list[str], key: str, flash_key: str) -> None:
    """on_change of the annotations table: save what was edited, say what was and what was refused."""
    lab_ui.clear_flash(flash_key)
    edited = (st.session_state.get(key) or {}).get("edited_rows", {})
    saved, errors = apply_table_edits(store_root, names, edited)
    if errors:
        lab_ui.flash(flash_key, "error", errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    elif saved:
        lab_ui.flash(flash_key, "success", f"Saved the tags and notes of {', '.join(saved)}.")
    st.session_state[flash_key + "_round"] = st.session_state.get(flash_key + "_round", 0) + 1  # a fresh table


def draw_annotations_table(store: RunStore, shown: pd.DataFrame, prefix: str) -> None:
    """Every shown run's tags and note, edited in place: pick or type tags in a cell, type the note; saved on change."""
    flash_key = prefix + "table_annotate"
    names = list(shown["name"])
    in_use = sorted({t for tags in shown["tags"] for t in tags})
    table = pd.DataFrame({"name": names, "tags": [list(t) for t in shown["tags"]], "note": list(shown["note"])})
    key = widget_key(prefix + "annotations_", *names, st.session_state.get(flash_key + "_round", 0))
    st.data_editor(
        table, key=key, hide_index=True, num_rows="fixed", disabled=["name"],
        on_change=_save_table_edits, args=(str(store.root), names, key, flash_key),
        column_config={
            "tags": st.column_config.MultiselectColumn(
                options=in_use, accept_new_options=True,
                help="pick tags or type new ones: letters, digits and . _ : + = @ - (no spaces or '/')"),
            "note": st.column_config.TextColumn(help="at most 10,000 characters", max_chars=10_000),
        },
    )
    lab_ui.show_flash(flash_key)


def tag_cells(store_root: str, runs: Sequence[str], key: str, flash_key: str) -> None:
    """on_click of Tag all cells: add the typed tag(s) to every cell that has a run; all checked before any is written."""
    lab_ui.clear_flash(flash_key)
    tags = typed_tags(st.session_state.get(key) or "")
    if not tags:
        lab_ui.flash(flash_key, "error", "type a tag to add to every cell")
        return
    try:
        for tag in tags:
            validate_tag(tag)
        for name in runs:
            Run(Path(store_root) / name).annotate(add_tags=tags)
    except RunStoreError as exc:  # AnnotationError: one line
        lab_ui.flash(flash_key, "error", lab_ui.one_line(exc))
        return
    lab_ui.flash(flash_key, "success", f"Tagged {len(runs)} cell(s) {', '.join(tags)}.")


def draw_sweep_tags_and_importance(store: RunStore, sweep: Any, cells: pd.DataFrame) -> None:
    """A sweep's cells as a group: their tags and notes, Tag all cells, and which of its axes mattered
    (parallel coordinates and importance over sweeps.cells_frame, its axes but the seed as the params)."""
    st.subheader("Tags and what mattered")
    started = [name for name in cells["run"] if (store.root / name).is_dir()]
    annotations = {name: Run(store.root / name).read_annotations() for name in started}
    st.dataframe(
        pd.DataFrame({"run": list(annotations), "tags": [list(a.tags) for a in annotations.values()],
                      "note": [note_preview(a.note, NOTE_PREVIEW) for a in annotations.values()]}),
        hide_index=True, key="sweep_tags_table", column_config={"tags": st.column_config.ListColumn()},
    )
    t1, t2 = st.columns([4, 1], vertical_alignment="bottom")
    t1.text_input("Tag for every cell", key="sweep_tag_all", placeholder="e.g. depth-vs-width",
                  help="added to each cell's tags (separate several by spaces); edit one run's tags on the Runs page")
    t2.button("Tag all cells", key="sweep_tag_cells", on_click=tag_cells, disabled=not started,
              args=(str(store.root), started, "sweep_tag_all", "sweep_tag"), width="stretch")
    if len(started) < len(cells):
        st.caption(f"{len(cells) - len(started)} pending cell(s) have no run yet: tag again once they start.")
    lab_ui.show_flash("sweep_tag")
    params = [axis for axis in sweep.axes if axis != "seed"]
    draw_importance(cells, params, "best_test_acc", key="sweep_")
