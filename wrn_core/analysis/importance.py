"""Which setting mattered: parameter importance of config fields for a run's accuracy (a random forest, as W&B and Optuna show)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from wrn_core.analysis.run_tables import setting_columns
from wrn_core.analysis.grouping import AnalysisError, resolve_field
from wrn_core.store.records import FINISHED

MIN_RUNS = 4  # fewer finished runs than this cannot say anything about several parameters
N_ESTIMATORS = 200
RANDOM_STATE = 0  # a fixed forest: the same runs always give the same importances
# Targets by their plain name, and the runs_frame column (percent) each may be found under instead.
TARGET_ALIASES = {"best_test_acc": "best test acc (%)", "final_test_acc": "final test acc (%)"}
IMPORTANCE_COLUMNS = ("param", "importance", "correlation", "note")


class ImportanceError(AnalysisError):
    """Parameter importance cannot answer (too few finished runs, nothing varies): one line saying why."""


def _target_column(frame: pd.DataFrame, target: str) -> str:
    """The column holding the target: its own name, or runs_frame's percent column for best/final_test_acc."""
    if target in frame.columns:
        return target
    alias = TARGET_ALIASES.get(target)
    if alias is not None and alias in frame.columns:
        return alias
    raise ImportanceError(f"no column {target!r} to explain in this table")


def _scored(frame: pd.DataFrame, params: Sequence[str], target: str) -> tuple[pd.DataFrame, list[str], pd.Series]:
    """(the finished runs with a finite target, the params' columns, that target), or ImportanceError."""
    if isinstance(params, str):
        params = [params]
    if not params:
        raise ImportanceError("name at least one parameter to rank")
    columns = list(dict.fromkeys(resolve_field(p) for p in params))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ImportanceError(f"unknown parameter {missing[0]!r}; the table has {', '.join(map(str, frame.columns))}")
    y = pd.to_numeric(frame[_target_column(frame, target)], errors="coerce").astype("float64")
    keep = np.isfinite(y.to_numpy())
    if "status" in frame.columns:
        keep &= (frame["status"] == FINISHED).to_numpy(dtype=bool, na_value=False)
    if keep.sum() < MIN_RUNS:
        raise ImportanceError(f"parameter importance needs at least {MIN_RUNS} finished runs; "
                              f"{int(keep.sum())} {'has' if keep.sum() == 1 else 'have'} finished")
    return frame[keep].reset_index(drop=True), columns, y[keep].reset_index(drop=True)


def _shown(value: Any) -> str:
    """A constant's value as a note shows it: 2, 0.1, sgd-nesterov, missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "missing"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _design(data: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The forest's inputs: numeric params as they are (NaN kept: sklearn's trees route missing values),
    categorical ones (text, bool) one-hot with the missing value as a category; and each param's input columns."""
    parts, owner = [], {}
    for column in columns:
        series = data[column]
        if _is_numeric(series):
            name = f"{column}"
            parts.append(pd.to_numeric(series, errors="coerce").astype("float64").rename(name).to_frame())
            owner[column] = [name]
        else:
            hot = pd.get_dummies(series.astype("object").map(_shown), prefix=f"{column}=", prefix_sep="",
                                 dtype="float64")
            parts.append(hot)
            owner[column] = list(hot.columns)
    return pd.concat(parts, axis=1), owner


def importance_frame(frame: pd.DataFrame, params: Sequence[str], target: str = "best_test_acc") -> pd.DataFrame:
    """Columns param, importance, correlation, note; one row per param, sorted by importance (descending).

    Only finished runs (when the table has a `status` column) with a finite target count; `target` may be
    best_test_acc or final_test_acc on runs_frame too (its percent columns: importances do not depend on
    the units). importance: a RandomForestRegressor's impurity importance (N_ESTIMATORS trees,
    RANDOM_STATE fixed), a categorical param's one-hot columns summed back into it, normalised to sum to 1
    over the params that vary. correlation: Spearman's rank correlation of the param with the target for
    numeric params, NaN for categorical ones (their order means nothing). A param that never varies over
    those runs gets importance and correlation NaN and the note "never varies (always 2)", listed last.
    ImportanceError (one line) when there are fewer than MIN_RUNS such runs, when no param varies, or when
    the target itself never varies.
    """
    from sklearn.ensemble import RandomForestRegressor  # here: `runs list` needs no sklearn at import

    data, columns, y = _scored(frame, params, target)
    constant = {c: data[c].iloc[0] for c in columns if data[c].astype("object").map(_shown).nunique() <= 1}
    varying = [c for c in columns if c not in constant]
    if not varying:
        said = ", ".join(f"{c} always {_shown(v)}" for c, v in constant.items())
        raise ImportanceError(f"no parameter varies over the {len(data)} finished runs ({said})")
    if y.nunique() <= 1:
        raise ImportanceError(f"{target} never varies over the {len(data)} finished runs (always {_shown(float(y.iloc[0]))}): "
                              "nothing to explain")
    x, owner = _design(data, varying)
    forest = RandomForestRegressor(n_estimators=N_ESTIMATORS, random_state=RANDOM_STATE)
    forest.fit(x, y.to_numpy())
    by_input = dict(zip(x.columns, forest.feature_importances_))
    raw = {c: float(sum(by_input[name] for name in owner[c])) for c in varying}
    total = sum(raw.values())
    if not total > 0:  # every tree a single leaf: a few runs whose bootstrap samples never differed
        raise ImportanceError(f"the forest found no split in {target} over the {len(data)} finished runs; train more runs")
    rows = []
    for column in varying:
        series = data[column]
        correlation = float(pd.to_numeric(series, errors="coerce").astype("float64").corr(y, method="spearman")) \
            if _is_numeric(series) else math.nan
        rows.append({"param": column, "importance": raw[column] / total,
                     "correlation": correlation, "note": ""})
    rows.sort(key=lambda r: -r["importance"])
    rows += [{"param": c, "importance": math.nan, "correlation": math.nan, "note": f"never varies (always {_shown(v)})"}
             for c, v in constant.items()]
    result = pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS))
    result["importance"] = result["importance"].astype("float64")
    result["correlation"] = result["correlation"].astype("float64")
    return result


def varying_settings(frame: pd.DataFrame) -> list[str]:
    """The settings of a runs_frame (run_tables.setting_columns: every config field, the data sizes included when it was
    made with settings=True) whose value differs between its runs, in table order; a missing value counts as a value."""
    return [c for c in setting_columns(frame) if frame[c].nunique(dropna=False) > 1]


def parameter_importance(frame: pd.DataFrame, params: Sequence[str], target: str = "best_test_acc") -> dict[str, float]:
    """param -> importance for `target` (see importance_frame), summing to 1, most important first.

    Params that never vary are left out (importance_frame lists them with their note); ImportanceError
    (one line) when it cannot answer: fewer than MIN_RUNS finished runs, no param varies, a constant target.
    """
    table = importance_frame(frame, params, target)
    table = table[table["importance"].notna()]
    return dict(zip(table["param"], table["importance"].astype(float)))
