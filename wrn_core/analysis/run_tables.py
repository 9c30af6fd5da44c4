"""Run summaries and metrics records as pandas DataFrames: the runs table, step/epoch frames, overlay curves, config diffs."""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from wrn_core.store import RunSummary, iso
from wrn_core.store.records import EPOCH, STEP, of_kind

RUN_COLUMNS = (
    "name",
    "model",
    "optimizer",
    "dataset",
    "status",
    "epochs",
    "best test acc (%)",
    "final test acc (%)",
    "params",
    "duration (s)",
    "created",
    "tags",
    "note",
    "problem",
    # The config fields a run is filtered and grouped by (analysis.grouping.GROUP_FIELDS), after the shown ones.
    "depth",
    "blocks",
    "widen_factor",
    "dropout",
    "lr",
    "batch_size",
    "planned_epochs",
    "seed",
)
# runs_frame columns that are not settings of a run: its name, results, notes and what follows from other settings
# (the model's name and depth follow from blocks and widen_factor). Every other column is a setting.
NOT_SETTINGS = ("name", "model", "status", "epochs", "best test acc (%)", "final test acc (%)", "params", "duration (s)",
                "created", "tags", "note", "problem", "depth")
# config.json settings (model.* flattened) that RUN_COLUMNS already holds under a name of its own, and those that
# cannot change a result: log_every (when train points are written), eval_batch_size (how the evaluation, in eval
# mode, is batched). runs_frame(settings=True) adds every other setting as a column named after its key.
COVERED_SETTINGS = ("model.depth", "model.widen_factor", "model.dropout", "lr", "batch_size", "epochs", "seed",
                    "dataset", "optimizer")
NO_EFFECT_SETTINGS = ("log_every", "eval_batch_size")
STEP_COLUMNS = ("step", "epoch", "images_seen", "time", "train_loss", "train_acc", "lr")
EPOCH_COLUMNS = (
    "epoch",
    "step",
    "images_seen",
    "time",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_seconds",
    "images_per_s",
    "peak_mem_mb",
)
CURVE_METRICS = ("train_acc", "train_loss", "test_acc", "test_loss")
# Per-epoch metrics the runs table can show a column of: (label, whether a higher value is the better one).
TABLE_METRICS = {
    "test_acc": ("test acc (%)", True),
    "train_acc": ("train acc (%)", True),
    "test_loss": ("test loss", False),
    "train_loss": ("train loss", False),
    "images_per_s": ("images/s", True),
    "epoch_seconds": ("epoch seconds", False),
}
AGGREGATES = ("best", "min", "max", "last")  # of a metric over a run's epochs; best = max or min, as the metric goes
# The two metric columns runs_frame has from status.json (no metrics read): best and last test accuracy.
STATUS_METRIC_COLUMNS = {("test_acc", "best"): "best test acc (%)", ("test_acc", "last"): "final test acc (%)"}
# "flops": training FLOPs, images_seen x 6 x MACs per image (see wrn_core.model.flops); needs flops_per_image.
X_AXES = ("epoch", "time", "images_seen", "flops")
CURVE_COLUMNS = ("run", "metric", "source", "x", "value")


def _percent(value: Any) -> float | None:
    """A fraction in [0, 1] as a percentage, or None when missing/not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return 100.0 * number


def runs_frame(summaries: Sequence[RunSummary], settings: bool = False) -> pd.DataFrame:
    """One row per run, newest first, with accuracies in percent; the columns after `problem` are the config
    fields runs are filtered and grouped by (`epochs` is 'done/planned', `planned_epochs` the number planned).

    settings: also a column for every other setting in the runs' config.json (synthetic_train, subset_train,
    schedule, weight_decay, augment, …; see COVERED_SETTINGS and NO_EFFECT_SETTINGS), missing where a run's
    config lacks it; setting_columns(frame) names them all."""
    summaries = sorted(summaries, key=lambda s: (s.created_at or 0.0, s.name), reverse=True)
    rows = []
    for s in summaries:
        rows.append(
            {
                "name": s.name,
                "model": s.model_name,
                "optimizer": s.optimizer,
                "dataset": s.dataset,
                "status": s.status,
                "epochs": f"{s.epoch}/{s.epochs}",
                "best test acc (%)": _percent(s.best_test_acc),
                "final test acc (%)": _percent(s.final_test_acc),
                "params": s.params,
                "duration (s)": round(float(s.duration_s or 0.0), 1),
                "created": iso(s.created_at),
                "tags": list(s.tags),  # a list per run: filters keep runs having all the tags asked for
                "note": s.note,
                "problem": s.problem,
                "depth": s.depth,
                "blocks": s.blocks,
                "widen_factor": s.widen_factor,
                "dropout": s.dropout,
                "lr": s.lr,
                "batch_size": s.batch_size,
                "planned_epochs": s.epochs or None,
                "seed": s.seed,
            }
        )
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    # Explicit dtypes so an all-missing column is still numeric (Arrow/plotly friendly).
    for column in ("best test acc (%)", "final test acc (%)", "duration (s)", "dropout", "lr"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("params", "depth", "blocks", "widen_factor", "batch_size", "planned_epochs", "seed"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    if settings:
        extra = _settings_columns([s.config for s in summaries])
        frame = pd.concat([frame, extra], axis=1)
    return frame


def _setting_value(value: Any) -> Any:
    """A config value as a table cell: scalars as they are, lists and mappings (extensions) as compact JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _settings_columns(configs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The settings of these configs that runs_frame has no column for, one column per setting key (model.* by
    its own name), typed: integers Int64, other numbers float64, the rest (text, flags, JSON) as objects."""
    skip = set(COVERED_SETTINGS) | set(NO_EFFECT_SETTINGS)
    rows = [{key.removeprefix("model."): _setting_value(value) for key, value in _flatten(config).items()
             if key not in skip} if isinstance(config, Mapping) else {} for config in configs]
    table = pd.DataFrame(rows, index=pd.RangeIndex(len(rows)), dtype="object")  # values as read: 500 stays an int
    for column in table.columns:
        known = table[column].dropna()
        if known.empty or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in known):
            continue
        numbers = pd.to_numeric(table[column])
        table[column] = numbers.astype("Int64" if all(isinstance(v, int) for v in known) else "float64")
    return table


def setting_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of a runs_frame that are settings of the runs (NOT_SETTINGS left out), in table order."""
    return [c for c in frame.columns if c not in NOT_SETTINGS]


def metric_column(metric: str, aggregate: str) -> str:
    """The runs-table column of a metric's aggregate: 'min test loss', 'last images/s'; best and last test
    accuracy are runs_frame's own 'best test acc (%)' and 'final test acc (%)'."""
    if metric not in TABLE_METRICS or aggregate not in AGGREGATES:
        raise ValueError(f"unknown metric column {metric}:{aggregate}; metrics {', '.join(TABLE_METRICS)}, "
                         f"aggregates {', '.join(AGGREGATES)}")
    return STATUS_METRIC_COLUMNS.get((metric, aggregate)) or f"{aggregate} {TABLE_METRICS[metric][0]}"


def metric_columns() -> dict[str, tuple[str, str]]:
    """Every metric column the runs table offers: column -> (metric, aggregate), metric by metric."""
    return {metric_column(m, a): (m, a) for m in TABLE_METRICS for a in AGGREGATES}


def metric_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """A run's metric columns (metric_columns) from its epoch records: best, min, max and last value of each
    TABLE_METRICS metric over its epochs (accuracies in percent; a resumed run's superseded epochs are already
    gone from the records). A metric with no value in any epoch is NaN in all four."""
    _, epochs = metrics_frames(records)
    values = {}
    for metric, (_, higher_is_better) in TABLE_METRICS.items():
        series = epochs[metric].dropna() * (100.0 if metric.endswith("acc") else 1.0)
        empty = series.empty
        low, high = (math.nan, math.nan) if empty else (float(series.min()), float(series.max()))
        figures = {"best": high if higher_is_better else low, "min": low, "max": high,
                   "last": math.nan if empty else float(series.iloc[-1])}
        for aggregate in AGGREGATES:
            values[metric_column(metric, aggregate)] = figures[aggregate]
    return values


def metrics_frames(records: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(step rows, epoch rows) as DataFrames, each sorted by step; unknown kinds are ignored."""
    records = list(records)
    steps = [{c: record.get(c) for c in STEP_COLUMNS} for record in of_kind(records, STEP)]
    epochs = [{c: record.get(c) for c in EPOCH_COLUMNS} for record in of_kind(records, EPOCH)]
    step_frame = _numeric(pd.DataFrame(steps, columns=list(STEP_COLUMNS)))
    epoch_frame = _numeric(pd.DataFrame(epochs, columns=list(EPOCH_COLUMNS)))
    if not epoch_frame.empty:
        # A resumed run may log an epoch twice; the later record wins.
        epoch_frame = epoch_frame.drop_duplicates(subset="epoch", keep="last")
        epoch_frame = epoch_frame.sort_values(["step", "epoch"], kind="stable").reset_index(drop=True)
    if not step_frame.empty:
        step_frame = step_frame.drop_duplicates(subset="step", keep="last")
        step_frame = step_frame.sort_values("step", kind="stable").reset_index(drop=True)
    return step_frame, epoch_frame


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as float64 in place, non-numbers as NaN (records may hold nulls or strings)."""
    for column in frame.columns:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def smooth(series: Iterable[float] | pd.Series, weight: float) -> pd.Series:
    """Exponential moving average (debiased, like TensorBoard); weight 0 returns the values unchanged."""
    values = series if isinstance(series, pd.Series) else pd.Series(list(series), dtype="float64")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0.0 <= weight < 1.0):
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight!r}")
    values = pd.to_numeric(values, errors="coerce").astype("float64")
    if weight == 0 or values.empty:
        return values.copy()
    return values.ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean()


def curves_frame(
    runs: Mapping[str, Iterable[Mapping[str, Any]]],
    x: str = "epoch",
    smoothing: float = 0.0,
    flops_per_image: Mapping[str, float | None] | None = None,
) -> pd.DataFrame:
    """Long table for overlays: run, metric, source ('step'|'epoch'), x, value.

    Train curves use the per-step points when there are any (else the per-epoch ones);
    test curves use the per-epoch points. Accuracies stay fractions; `smoothing` is an
    EMA weight applied per run and metric to per-step curves only (an EMA over a few epochs would
    draw a run that ended at 98.8% ending near 92%). x="flops" puts each point at images_seen x
    flops_per_image[run] (training FLOPs per image, wrn_core.model.flops); runs without a figure
    there are left out.
    """
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose one of {', '.join(X_AXES)}")
    if x == "flops" and flops_per_image is None:
        raise ValueError("the flops x axis needs flops_per_image (training FLOPs per image, per run)")
    parts = []
    for name, records in runs.items():
        steps, epochs = metrics_frames(records)
        if x == "flops":
            per_image = flops_per_image.get(name)
            if per_image is None:
                continue
            steps = steps.assign(flops=steps["images_seen"] * float(per_image))
            epochs = epochs.assign(flops=epochs["images_seen"] * float(per_image))
        parts.extend(_run_curves(name, steps, epochs, x, smoothing))
    if not parts:
        dtypes = ("object", "object", "object", "float64", "float64")
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in zip(CURVE_COLUMNS, dtypes)})
    return pd.concat(parts, ignore_index=True)


def _run_curves(name: str, steps: pd.DataFrame, epochs: pd.DataFrame, x: str, smoothing: float) -> list[pd.DataFrame]:
    """One run's curves_frame rows, one frame per metric that has points."""
    train_source, train = (STEP, steps) if not steps.empty else (EPOCH, epochs)
    parts = []
    for metric in CURVE_METRICS:
        source, frame = (train_source, train) if metric.startswith("train") else (EPOCH, epochs)
        if frame.empty:
            continue
        part = frame[[x, metric]].dropna(subset=[x]).rename(columns={x: "x", metric: "value"})
        part = part.sort_values("x", kind="stable")
        if source == STEP:  # per-epoch points are few and each one is a measurement: never smoothed
            part["value"] = smooth(part["value"].reset_index(drop=True), smoothing).to_numpy()
        part.insert(0, "source", source)
        part.insert(0, "metric", metric)
        part.insert(0, "run", name)
        parts.append(part.reset_index(drop=True))
    return parts


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as one level, keys joined by dots (model.depth)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Result rows a comparison starts with: runs_frame column -> row label (not a config key: `epochs` is one).
COMPARE_RESULTS = {"status": "status", "epochs": "epochs done/planned", "best test acc (%)": "best test acc (%)",
                   "final test acc (%)": "final test acc (%)", "params": "params", "duration (s)": "duration (s)",
                   "tags": "tags", "note": "note"}
_MISSING = "<missing>"  # how a setting a run lacks compares (it differs from any value, None included)


def compare_frame(configs: Mapping[str, Mapping[str, Any]], results: pd.DataFrame | None = None,
                  only_differences: bool = True) -> pd.DataFrame:
    """Runs side by side, transposed: one column per run (in the order of `configs`), one row per setting.

    Rows: the COMPARE_RESULTS of `results` (a runs_frame; its rows are matched by `name`) when given, then every
    setting of the configs (model.* flattened, e.g. model.depth) in the order first seen. only_differences:
    only the rows whose value is not the same in every run. Cells hold the values as read (None where a run
    lacks the setting or has no value yet); the index is named `setting`."""
    names = list(configs)
    flat = {name: _flatten(config) for name, config in configs.items()}
    rows: dict[str, list[Any]] = {}
    if results is not None and not results.empty:
        by_name = results.drop_duplicates("name").set_index("name")
        for column, label in COMPARE_RESULTS.items():
            if column in by_name.columns:
                rows[label] = [_cell(by_name[column].get(name)) if name in by_name.index else None for name in names]
    for values in flat.values():
        for key in values:
            if key not in rows:
                rows[key] = [flat[name].get(key, _MISSING) for name in names]
    if only_differences:
        rows = {key: cells for key, cells in rows.items()
                if len({json.dumps(c, sort_keys=True, default=str) for c in cells}) > 1}
    cells = [[None if c is _MISSING else c for c in row] for row in rows.values()]
    return pd.DataFrame(cells, columns=names, index=pd.Index(list(rows), name="setting"), dtype="object")


def _cell(value: Any) -> Any:
    """A runs_frame cell as a comparison holds it: missing numbers (NaN, NA) as None, tags as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Settings (rows, model.* flattened) whose values differ between runs (columns): compare_frame without results."""
    return compare_frame(configs)


def note_preview(note: str, chars: int) -> str:
    """A note's first line, cut at `chars` characters; an ellipsis says there is more."""
    text = (note or "").strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > chars:
        return first[:chars].rstrip() + "…"
    return first if first == text else first + " …"
