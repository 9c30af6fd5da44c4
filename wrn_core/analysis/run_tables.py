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


def runs_frame(summaries: Sequence[RunSummary]) -> pd.DataFrame:
    """One row per run, newest first, with accuracies in percent; the columns after `problem` are the config
    fields runs are filtered and grouped by (`epochs` is 'done/planned', `planned_epochs` the number planned)."""
    rows = []
    for s in sorted(summaries, key=lambda s: (s.created_at or 0.0, s.name), reverse=True):
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
    return frame


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


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Settings (rows, model.* flattened) whose values differ between runs (columns)."""
    flat = {name: _flatten(config) for name, config in configs.items()}
    keys: list[str] = []
    for values in flat.values():
        for key in values:
            if key not in keys:
                keys.append(key)
    differing = []
    for key in keys:
        seen = [json.dumps(values.get(key, "<missing>"), sort_keys=True, default=str) for values in flat.values()]
        if len(set(seen)) > 1:
            differing.append(key)
    frame = pd.DataFrame(
        {name: [values.get(key) for key in differing] for name, values in flat.items()},
        index=pd.Index(differing, name="setting"),
        dtype="object",
    )
    return frame


def note_preview(note: str, chars: int) -> str:
    """A note's first line, cut at `chars` characters; an ellipsis says there is more."""
    text = (note or "").strip()
    first = text.splitlines()[0] if text else ""
    if len(first) > chars:
        return first[:chars].rstrip() + "…"
    return first if first == text else first + " …"
