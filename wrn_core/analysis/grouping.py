"""Runs filtered and grouped by their config (seeds averaged): the grouped table and mean ± std curves per group."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from wrn_core.errors import DataError

# The config fields (runs_frame columns) one can filter and group by. `planned_epochs` is the number of
# epochs planned; runs_frame's `epochs` column is the text 'done/planned'.
GROUP_FIELDS = ("model", "dataset", "optimizer", "lr", "widen_factor", "blocks", "depth", "dropout",
                "planned_epochs", "batch_size", "status")
# Other names a user may type for a field (the CLI's flags and the paper's letters).
FIELD_ALIASES = {"k": "widen_factor", "widen-factor": "widen_factor", "n": "blocks", "epochs": "planned_epochs",
                 "batch-size": "batch_size"}
TAG_FILTER = "tag"  # filter key: keep runs having all the given tags (a `tags` column of lists)
SEED = "seed"  # never a group field: a group is the runs that differ only in their seed
# Accuracy columns: runs_frame's (percent), else cells_frame's (fractions, shown as percent here).
ACCURACIES = {"best": ("best test acc (%)", "best_test_acc"), "final": ("final test acc (%)", "final_test_acc")}
# group_runs' columns after the group fields.
GROUP_STATS = ("n", "best_test_acc_mean", "best_test_acc_std", "final_test_acc_mean", "final_test_acc_std", "runs")
NAME_COLUMNS = ("name", "run")  # runs_frame names a run `name`, sweeps.cells_frame `run`


class AnalysisError(DataError, ValueError):
    """Bad input to an analysis (an unknown field, a seed to group by): one line, exit 2 from the CLI."""


def resolve_field(field: str) -> str:
    """The column a field name means: aliases (k, n, epochs) resolved, the rest as given."""
    return FIELD_ALIASES.get(field, FIELD_ALIASES.get(field.lower(), field))


def _known(frame: pd.DataFrame) -> str:
    return ", ".join([f for f in GROUP_FIELDS if f in frame.columns] + [SEED, TAG_FILTER])


def _column(frame: pd.DataFrame, field: str) -> str:
    """The frame's column for a field, or AnalysisError naming the fields there are."""
    column = resolve_field(field)
    if column not in frame.columns:
        raise AnalysisError(f"unknown field {field!r}; choose from {_known(frame)}")
    return column


def _wanted(series: pd.Series, field: str, values: Sequence[Any]) -> list[Any]:
    """The filter values in the column's type: text such as '0.1' from a command line compares as a number."""
    if not pd.api.types.is_numeric_dtype(series):
        return [str(v) if not isinstance(v, str) else v for v in values]
    wanted = []
    for value in values:
        try:
            wanted.append(float(value))
        except (TypeError, ValueError):
            raise AnalysisError(f"{field}={value!r}: {field} is a number") from None
    return wanted


def filter_runs(frame: pd.DataFrame, filters: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The rows whose value of every filtered field is one of the given values (AND over fields, OR within one).

    Keys are GROUP_FIELDS, `seed` or any other column (aliases k, n, epochs work); numbers may be given as
    text ('0.1'). The key `tag` keeps the runs whose `tags` column (a list of strings per run) holds ALL the
    given tags; without a `tags` column no run has a tag. An empty list of values leaves that field unfiltered
    (a multiselect with nothing chosen). An unknown field raises AnalysisError (one line).
    """
    keep = np.ones(len(frame), dtype=bool)
    for field, values in filters.items():
        values = [values] if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) else list(values)
        if not values:
            continue
        if field == TAG_FILTER:
            tags = frame["tags"] if "tags" in frame.columns else pd.Series([[]] * len(frame), index=frame.index)
            needed = {str(v) for v in values}
            keep &= np.fromiter((needed <= set(t if isinstance(t, (list, tuple, set)) else ()) for t in tags),
                                dtype=bool, count=len(frame))
            continue
        column = _column(frame, field)
        series = frame[column]
        wanted = _wanted(series, field, values)
        if pd.api.types.is_numeric_dtype(series):
            keep &= series.astype("float64").isin(wanted).to_numpy(dtype=bool, na_value=False)
        else:
            keep &= series.astype("object").isin(wanted).to_numpy(dtype=bool, na_value=False)
    return frame[keep].reset_index(drop=True)


def _accuracy(frame: pd.DataFrame, which: str) -> pd.Series:
    """The best or final test accuracy in percent, from runs_frame's percent column or a fraction column."""
    percent, fraction = ACCURACIES[which]
    if percent in frame.columns:
        return pd.to_numeric(frame[percent], errors="coerce").astype("float64")
    if fraction in frame.columns:
        return pd.to_numeric(frame[fraction], errors="coerce").astype("float64") * 100.0
    return pd.Series(np.nan, index=frame.index, dtype="float64")


def group_runs(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per group of runs sharing the values of `by`: the group fields, `n` (runs in the group),
    `best_test_acc_mean`, `best_test_acc_std`, `final_test_acc_mean`, `final_test_acc_std` and `runs` (names).

    Accuracies are in percent, like runs_frame (a frame with fraction columns, such as sweeps.cells_frame,
    is converted). Means skip runs without an accuracy yet; std has ddof=1 (NaN for one run). Runs missing a
    field form a group of their own (NaN). `seed` is refused: groups average over seeds. Groups are sorted by
    their fields.
    """
    if isinstance(by, str):
        by = [by]
    if not by:
        raise AnalysisError(f"name at least one field to group by; choose from {_known(frame)}")
    if any(resolve_field(f) == SEED for f in by):
        raise AnalysisError("seed cannot be a group field: groups average over seeds")
    columns = list(dict.fromkeys(_column(frame, f) for f in by))
    name = next((c for c in NAME_COLUMNS if c in frame.columns), None)
    data = frame[columns].copy()
    data["_best"], data["_final"] = _accuracy(frame, "best"), _accuracy(frame, "final")
    data["_name"] = frame[name].astype(str) if name else [str(i) for i in range(len(frame))]
    grouped = data.groupby(columns, dropna=False, sort=True).agg(
        n=("_name", "size"),
        best_test_acc_mean=("_best", "mean"),
        best_test_acc_std=("_best", "std"),
        final_test_acc_mean=("_final", "mean"),
        final_test_acc_std=("_final", "std"),
        runs=("_name", list),
    )
    grouped = grouped.reset_index()
    grouped["n"] = grouped["n"].astype("int64")
    return grouped


def member_curves(curves: pd.DataFrame, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """The points of curves_frame's long table that belong to the groups' runs: columns run, metric, x, value and
    group (a run in two groups is there twice); points without x or value left out, one point per run, metric and x."""
    members = pd.DataFrame([(label, str(run)) for label, runs in groups.items() for run in dict.fromkeys(runs)],
                           columns=["group", "run"])
    columns = ["run", "metric", "x", "value"]
    if curves.empty or members.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("x", "value") else object) for c in [*columns, "group"]})
    points = curves[columns].dropna(subset=["x", "value"])
    points = points.assign(run=points["run"].astype(str)).drop_duplicates(["run", "metric", "x"], keep="last")
    return points.merge(members, on="run")


def group_curves(curves: pd.DataFrame, groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Mean ± std of each metric per group per x, from curves_frame's long table (run, metric, source, x, value).

    groups: group label -> its runs' names. Columns: group, x, then `<metric>_mean` and `<metric>_std` for
    each metric in `curves` (in CURVE_METRICS' units: accuracies stay fractions), and n. A group's members
    are its runs that have points in `curves`; n is how many. Runs are aligned on their exact x values and
    only the x every member has for a metric are kept (a metric's std and mean at an x come from all n
    members): bands end where the shortest member ends, and per-step points line up only between runs that
    log at the same fractional epochs (same dataset size, batch size and log_every); per-epoch test points
    always do. A metric a member lacks entirely leaves that group's metric empty (NaN). std has ddof=1
    (NaN for n=1). Rows follow the order of `groups`, then x.
    """
    metrics = list(dict.fromkeys(curves["metric"])) if "metric" in curves.columns else []
    stat_columns = [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    empty = pd.DataFrame({"group": pd.Series(dtype=object), "x": pd.Series(dtype="float64"),
                          **{c: pd.Series(dtype="float64") for c in stat_columns}, "n": pd.Series(dtype="int64")})
    points = member_curves(curves, groups)
    if points.empty:
        return empty
    size = points.groupby("group")["run"].nunique().rename("n")
    stats = points.groupby(["group", "metric", "x"])["value"].agg(["mean", "std", "count"]).reset_index()
    stats = stats.merge(size, left_on="group", right_index=True)
    stats = stats[stats["count"] == stats["n"]]  # only the x every member has
    if stats.empty:
        return empty
    wide = stats.pivot(index=["group", "x", "n"], columns="metric", values=["mean", "std"])
    wide.columns = [f"{metric}_{stat}" for stat, metric in wide.columns]
    wide = wide.reset_index()
    for column in stat_columns:
        if column not in wide.columns:
            wide[column] = np.nan
    order = {label: i for i, label in enumerate(groups)}
    wide = wide.sort_values(["group", "x"], key=lambda s: s.map(order) if s.name == "group" else s, kind="stable")
    wide["n"] = wide["n"].astype("int64")
    return wide[["group", "x", *stat_columns, "n"]].reset_index(drop=True)


def mean_std(mean: Any, std: Any) -> str:
    """'51.00 ± 1.41' in percent; the mean alone for one run (std NaN); '—' without a value."""
    if mean is None or pd.isna(mean):
        return "—"
    return f"{float(mean):.2f}" if std is None or pd.isna(std) else f"{float(mean):.2f} ± {float(std):.2f}"


def groups_table(grouped: pd.DataFrame) -> pd.DataFrame:
    """group_runs' frame as a table reads it: the group fields, n, best and final test accuracy (%) as 'mean ± std'."""
    table = grouped[[c for c in grouped.columns if c not in GROUP_STATS]].copy()
    table["n"] = grouped["n"]
    for which in ("best", "final"):
        table[f"{which} test acc (%)"] = [mean_std(m, s) for m, s in
                                         zip(grouped[f"{which}_test_acc_mean"], grouped[f"{which}_test_acc_std"])]
    return table
