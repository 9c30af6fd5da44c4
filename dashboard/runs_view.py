"""Runs-page views of many runs: the listing (cached), filters, the runs or groups table with metric columns,
colours, group bands and the transposed comparison."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import cached_reads, formatting
from dashboard.run_annotations import NOTE_PREVIEW
from wrn_core.analysis import (
    compare_frame,
    curves_frame,
    group_curves,
    member_curves,
    metric_summary,
    note_preview,
    runs_frame,
)
from wrn_core.analysis.run_tables import COMPARE_RESULTS, STATUS_METRIC_COLUMNS, metric_columns
from wrn_core.analysis.grouping import TAG_FILTER
from wrn_core.plots import compare_figure, group_curves_figure
from wrn_core.plots.style import PALETTE, color_map
from wrn_core.reference import official_curve
from wrn_core.store import Run, RunStore, RunSummary
from wrn_core.store.records import ACTIVE_STATUSES, INTERRUPTED

# Filters shown above the table, in this order: (runs_frame column or "tag", label).
FILTERS = (("model", "model"), ("dataset", "dataset"), ("optimizer", "optimizer"), ("lr", "lr"),
           ("widen_factor", "k"), ("blocks", "N"), ("status", "status"), (TAG_FILTER, "tag"))
FILTERS_PER_ROW = 4  # at 1440 px each filter is then ~230 px wide: a picked value reads in full
# The runs table's columns, in order, around the metric columns the user picks (after `epochs`); `problem` is
# added when a run has one. The rest of runs_frame (the settings) is for filters, grouping and importance.
TABLE_HEAD = ("name", "status", "model", "dataset", "optimizer", "epochs")
TABLE_TAIL = ("params", "duration (s)", "tags", "note")
DEFAULT_METRIC_COLUMNS = tuple(STATUS_METRIC_COLUMNS.values())  # best and final test accuracy, from status.json
SUMMARY_FILES = ("config.json", "status.json", "meta.json")  # what a run's row is read from
FRAMES_KEPT = 8  # runs frames kept per process, one per distinct listing (runs and versions of their files)
MAX_CURVE_RUNS = 20  # runs whose metrics a grouped view reads at most (each may hold thousands of lines)
DEFAULT_GROUPS = 3  # groups drawn when none is ticked: those of the newest runs


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
    stamps = tuple(cached_reads.file_stamp(path / f) for f in SUMMARY_FILES)
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
    return metric_summary(cached_reads.read_records(Run(Path(path))))


def with_metric_columns(store: RunStore, frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The runs with these metric columns (analysis metric_columns()): best and final test accuracy as runs_frame
    has them (from status.json), any other read from the runs' epochs (metrics.jsonl, once per change of it)."""
    wanted = [c for c in columns if c not in frame.columns]
    if not wanted:
        return frame
    values = {c: [] for c in wanted}
    for name in frame["name"]:
        run = Run(store.root / name)
        summary = _metric_summary_cached(*cached_reads.metrics_stamp(run))
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
    records = {name: cached_reads.read_records(Run(Path(path))) for name, (path, _) in stamps}
    curves = curves_frame(records, x=x, smoothing=smoothing, flops_per_image=dict(flops) if x == "flops" else None)
    by_group = {label: list(runs) for label, runs in groups}
    banded = group_curves(curves, by_group)
    return group_curves_figure(banded, metric, colors=dict(colors),
                               members=member_curves(curves, by_group) if members else None, x=x)


def bands_figure(store: RunStore, groups: Mapping[str, Sequence[str]], x: str, smoothing: float,
                 flops: Mapping[str, float | None], metric: str, colors: Mapping[str, str] | None = None,
                 members: bool = False):
    """The groups' mean ± std curves of a metric, with (members) each member run's own faint curve under its
    band; colors: run name or group label -> colour (metrics read once per file change, figure cached)."""
    names = [name for runs in groups.values() for name in runs]
    stamps = tuple((name, cached_reads.metrics_stamp(Run(store.root / name))) for name in dict.fromkeys(names))
    return _bands_cached(tuple((label, tuple(runs)) for label, runs in groups.items()), stamps, x, float(smoothing),
                         tuple(sorted((k, v) for k, v in flops.items() if k in names)), metric,
                         tuple(sorted((colors or {}).items())), bool(members))


# Shared like _bands_cached: keyed by each run's metrics.jsonl stamp and the chart's settings, so a filter or
# group change that keeps the same runs drawn does not rebuild a figure of thousands of points.
@st.cache_resource(show_spinner=False, max_entries=16)
def _compare_cached(stamps: tuple, x: str, smoothing: float, log_cost: bool, flops: tuple, reference: bool,
                    log_x: bool, colors: tuple):
    records = {name: cached_reads.read_records(Run(Path(path))) for name, (path, _) in stamps}
    return compare_figure(records, x=x, smoothing=smoothing, log_cost=log_cost, flops_per_image=dict(flops),
                          reference=official_curve(x) if reference else None, log_x=log_x, colors=dict(colors))


def cached_compare_figure(store: RunStore, names: Sequence[str], x: str, smoothing: float, log_cost: bool,
                          flops: Mapping[str, float | None], reference: bool, log_x: bool,
                          colors: Mapping[str, str] | None = None):
    """plots.compare_figure of these runs (with the authors' curve when reference; colors: run -> colour),
    rebuilt only when a run's metrics.jsonl or a setting changed."""
    stamps = tuple((name, cached_reads.metrics_stamp(Run(store.root / name))) for name in names)
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
        return formatting.diff_value(setting, value)

    return pd.DataFrame({name: [readable(setting, v) for setting, v in frame[name].items()] for name in frame.columns},
                        index=frame.index, dtype="object")
