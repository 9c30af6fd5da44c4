"""Pure functions from run summaries and metrics records to pandas DataFrames and export text."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from wrn_core.store import RunSummary, iso

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
    "problem",
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
EXPORT_COLUMNS = ("epoch", "train_acc", "train_loss", "test_acc", "test_loss", "lr", "time", "images_seen")
CURVE_METRICS = ("train_acc", "train_loss", "test_acc", "test_loss")
# "flops": training FLOPs, images_seen x 6 x MACs per image (see wrn_core.flops); needs flops_per_image.
X_AXES = ("epoch", "time", "images_seen", "flops")


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
    """One row per run, newest first, with accuracies in percent."""
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
                "problem": s.problem,
            }
        )
    frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    # Explicit dtypes so an all-missing column is still numeric (Arrow/plotly friendly).
    for column in ("best test acc (%)", "final test acc (%)", "duration (s)"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["params"] = pd.to_numeric(frame["params"], errors="coerce").astype("Int64")
    return frame


def metrics_frames(records: Iterable[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(step rows, epoch rows) as DataFrames, each sorted by step; unknown kinds are ignored."""
    steps, epochs = [], []
    for record in records:
        kind = record.get("kind")
        if kind == "step":
            steps.append({c: record.get(c) for c in STEP_COLUMNS})
        elif kind == "epoch":
            epochs.append({c: record.get(c) for c in EPOCH_COLUMNS})
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
    EMA weight applied per run and metric. x="flops" puts each point at images_seen x
    flops_per_image[run] (training FLOPs per image, wrn_core.flops); runs without a figure
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
        train_source, train = ("step", steps) if not steps.empty else ("epoch", epochs)
        for metric in CURVE_METRICS:
            source, frame = (train_source, train) if metric.startswith("train") else ("epoch", epochs)
            if frame.empty:
                continue
            part = frame[[x, metric]].dropna(subset=[x]).rename(columns={x: "x", metric: "value"})
            part = part.sort_values("x", kind="stable")
            part["value"] = smooth(part["value"].reset_index(drop=True), smoothing).to_numpy()
            part.insert(0, "source", source)
            part.insert(0, "metric", metric)
            part.insert(0, "run", name)
            parts.append(part.reset_index(drop=True))
    if not parts:
        return pd.DataFrame(
            {
                "run": pd.Series(dtype="object"),
                "metric": pd.Series(dtype="object"),
                "source": pd.Series(dtype="object"),
                "x": pd.Series(dtype="float64"),
                "value": pd.Series(dtype="float64"),
            }
        )
    return pd.concat(parts, ignore_index=True)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
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


def _export_rows(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    _, epochs = metrics_frames(records)
    frame = epochs[list(EXPORT_COLUMNS)].copy()
    frame["epoch"] = frame["epoch"].astype("Int64")
    frame["images_seen"] = frame["images_seen"].astype("Int64")
    return frame


def export_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """One CSV row per completed epoch: epoch, train_acc, train_loss, test_acc, test_loss, lr, time, images_seen."""
    buffer = io.StringIO()
    _export_rows(records).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def _finite(value: Any) -> Any:
    """Replace NaN/inf (a diverged run) with None so the JSON stays valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def export_json(records: Iterable[Mapping[str, Any]]) -> str:
    """All metrics records (step, epoch and event) as a JSON array, non-finite numbers as null."""
    return json.dumps([_finite(dict(r)) for r in records], indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Training health: diagnose(records, config) -> findings, cheap enough for every 1 s refresh.

SEVERITIES = ("error", "warning", "info")  # most severe first

# Accuracy "near chance": at most 1.5 x 1/classes (15% for 10 classes) ...
CHANCE_FACTOR = 1.5
# ... and at most 10 points above chance, since 1.5 x chance is already 75% for 2 classes.
CHANCE_MAX_MARGIN = 0.10
# Train accuracy "climbs" when it is at least 5 points above that band.
CLIMB_MARGIN = 0.05
# Both chance rules also wait for enough optimizer steps. A CIFAR epoch is 391 steps, but a tiny
# data set's epoch is a couple of dozen, often inside a warm-up. Measured on healthy WRN-10-1
# synthetic runs: on 256 images the test accuracy (eval-mode BatchNorm statistics) trails at
# chance for the first ~30 steps; with batch 16 and a one-cycle warm-up the train accuracy was
# still 12.6% at step 100 and 26.5% at step 150; the Quick CPU demo shrunk to 1,500 images ends
# epoch 1 (23 steps) at 10.7% and reaches 72% by epoch 5.
TEST_CHANCE_MIN_STEPS = 100
TRAIN_CHANCE_MIN_STEPS = 200
# Test accuracy at chance: judged after 2 epochs, and only when the last 2 evaluations both are.
TEST_CHANCE_EPOCHS = 2
# Train accuracy at chance: judged after 1 epoch.
TRAIN_CHANCE_EPOCHS = 1
# Divergence: a train loss above 3 x ln(classes). ln(classes) is the loss of a uniform guess,
# near where a freshly initialised WRN starts (2.3-2.5 for 10 classes); learning only lowers it.
EXPLODED_FACTOR = 3.0
# Diverging: the train loss (median of the last 3 points) at least doubled from its lowest
# (median of 3) and is back above ln(classes), i.e. worse than guessing.
GROWTH_FACTOR = 2.0
# Overfitting: train - test accuracy at least 15 points and grown by 2 points or more over the
# last 3 epochs (the paper's runs end about 5 points apart: ~100% train, ~95% test).
OVERFIT_GAP = 0.15
OVERFIT_GROWTH = 0.02
OVERFIT_EPOCHS = 3
# Flat loss: the epoch train loss has moved less than 1% of its mean over the last 3 epochs
# (4 epoch points). The authors' WRN-40-4 log moves 1-3% per 3 epochs on its lr-0.1 plateau.
FLAT_EPOCHS = 3
FLAT_TOLERANCE = 0.01
# A flat loss at >= 80% of ln(classes) means nothing is being learned (warning); lower down it
# is a plateau (info); below 2% of ln(classes) the training set is fitted (nothing to say).
FLAT_NEAR_CHANCE = 0.8
FLAT_FITTED = 0.02


@dataclass(frozen=True)
class Finding:
    """One training-health diagnosis: which rule fired, how bad it is, what it saw, what to try."""

    rule: str  # not-finite | exploded | diverging | test-at-chance | train-at-chance | overfitting | flat-loss
    severity: str  # error | warning | info
    message: str  # one line: what the records show
    advice: str  # one line: what to try


def _number(value: Any) -> float | None:
    """A record field as a float (NaN/inf kept), or None when missing or not a number."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _num_classes(config: Any) -> int:
    """Classes from a TrainConfig or its config.json dict (model.num_classes); 10 when unknown."""
    model = getattr(config, "model", None)
    if model is None and isinstance(config, Mapping):
        model = config.get("model")
    value = model.get("num_classes") if isinstance(model, Mapping) else getattr(model, "num_classes", None)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2:
        return value
    return 10


def _median3(values: list[float]) -> list[float]:
    """Running median of 3 (of 1 and 2 for the first points): damps one-batch spikes."""
    medians = []
    for i in range(len(values)):
        window = sorted(values[max(0, i - 2) : i + 1])
        medians.append(window[len(window) // 2])
    return medians


def _first_non_finite(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first record whose train or test loss is NaN or infinite."""
    for row in rows:
        for field in ("train_loss", "test_loss"):
            value = _number(row.get(field))
            if value is not None and not math.isfinite(value):
                return row
    return None


def _health_series(records: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(step records, epoch records): the later record wins for a repeated step/epoch; sorted."""
    steps: dict[float, Mapping[str, Any]] = {}
    epochs: dict[float, Mapping[str, Any]] = {}
    for record in records:
        if not isinstance(record, Mapping):
            continue
        kind = record.get("kind")
        if kind == "step":
            key = _number(record.get("step"))
            if key is not None and math.isfinite(key):
                steps[key] = record
        elif kind == "epoch":
            key = _number(record.get("epoch"))
            if key is not None and math.isfinite(key):
                epochs[key] = record
    return [dict(steps[k]) for k in sorted(steps)], [dict(epochs[k]) for k in sorted(epochs)]


def _values(rows: list[dict[str, Any]], field: str) -> list[float]:
    return [v for v in (_number(r.get(field)) for r in rows) if v is not None]


def diagnose(records: Iterable[Mapping[str, Any]], config: Any = None) -> list[Finding]:
    """Training-health findings for a run's metrics records, most severe first (empty: healthy).

    config is a TrainConfig or its config.json dict (for the number of classes). Unknown record
    kinds and missing, null or non-numeric fields are ignored. Pure and cheap: one pass over the
    records, no pandas. Thresholds are the constants above.
    """
    classes = _num_classes(config)
    chance = 1.0 / classes
    band = min(CHANCE_FACTOR * chance, chance + CHANCE_MAX_MARGIN)
    chance_loss = math.log(classes)
    steps, epochs = _health_series(records)
    findings: list[Finding] = []

    # Divergence: a non-finite loss anywhere, or a train loss far above a uniform guess's.
    train_losses = _values(steps, "train_loss") or _values(epochs, "train_loss")
    diverged = False
    for rows, source in ((steps, "step"), (epochs, "epoch")):
        bad = _first_non_finite(rows)
        if bad is not None:
            where = f"step {bad.get('step')}" if source == "step" else f"epoch {bad.get('epoch')}"
            findings.append(Finding(
                "not-finite", "error", f"the loss became NaN or infinite at {where}: training diverged",
                "lower the learning rate (try 10x lower) or add warm-up; check the inputs for NaNs",
            ))
            diverged = True
            break
    finite_losses = [v for v in train_losses if math.isfinite(v)]
    if not diverged and finite_losses:
        latest = finite_losses[-1]
        smoothed = _median3(finite_losses)
        if latest > EXPLODED_FACTOR * chance_loss:
            findings.append(Finding(
                "exploded", "error",
                f"train loss {latest:.4g} is over {EXPLODED_FACTOR:g}x a uniform guess's "
                f"({chance_loss:.2f} for {classes} classes): training diverged",
                "lower the learning rate (try 10x lower) or add warm-up; with Adam, a lr near 1e-3",
            ))
            diverged = True
        elif smoothed[-1] > chance_loss and smoothed[-1] >= GROWTH_FACTOR * min(smoothed):
            findings.append(Finding(
                "diverging", "warning",
                f"train loss rose from {min(smoothed):.3f} to {smoothed[-1]:.3f}, above a uniform "
                f"guess's {chance_loss:.2f}: training is diverging",
                "lower the learning rate or add warm-up; a lr spike from the schedule can do this too",
            ))
            diverged = True

    tested = [r for r in epochs if _number(r.get("test_acc")) is not None]
    # Test at chance while train accuracy climbs: the seed article's 17% symptom.
    test_at_chance = False
    if len(tested) >= TEST_CHANCE_EPOCHS:
        recent = [_number(r.get("test_acc")) for r in tested[-TEST_CHANCE_EPOCHS:]]
        train_acc = _number(tested[-1].get("train_acc"))
        step = _number(tested[-1].get("step")) or 0.0
        climbed = train_acc is not None and train_acc >= band + CLIMB_MARGIN
        if all(a is not None and a <= band for a in recent) and climbed and step >= TEST_CHANCE_MIN_STEPS:
            findings.append(Finding(
                "test-at-chance", "error",
                f"test accuracy {recent[-1]:.1%} is at chance ({chance:.0%} for {classes} classes) after "
                f"{len(tested)} epochs while train accuracy climbed to {train_acc:.1%}",
                "suspect a train/eval mismatch (BatchNorm or dropout mode, test images normalised "
                "differently) or wrong test labels",
            ))
            test_at_chance = True

    # Train accuracy still at chance after an epoch and enough steps.
    if not diverged and len(epochs) >= TRAIN_CHANCE_EPOCHS:
        last = epochs[-1]
        train_acc = _number(last.get("train_acc"))
        step = _number(last.get("step")) or 0.0
        if train_acc is not None and train_acc <= band and step >= TRAIN_CHANCE_MIN_STEPS:
            findings.append(Finding(
                "train-at-chance", "warning",
                f"train accuracy {train_acc:.1%} is still at chance ({chance:.0%} for {classes} classes) "
                f"after {len(epochs)} epoch{'s' if len(epochs) != 1 else ''} ({int(step)} steps)",
                "the learning rate is likely far too high or too low; else check the data "
                "(labels match the images, normalisation)",
            ))

    # Overfitting: a large train-test gap that is still growing.
    gaps = [t - e for t, e in ((_number(r.get("train_acc")), _number(r.get("test_acc"))) for r in tested)
            if t is not None and e is not None]
    if not test_at_chance and len(gaps) > OVERFIT_EPOCHS:
        growth = gaps[-1] - gaps[-1 - OVERFIT_EPOCHS]
        if gaps[-1] >= OVERFIT_GAP and growth >= OVERFIT_GROWTH:
            findings.append(Finding(
                "overfitting", "warning",
                f"train accuracy is {100 * gaps[-1]:.0f} points above test and the gap grew by "
                f"{100 * growth:.0f} points over the last {OVERFIT_EPOCHS} epochs: overfitting",
                "add augmentation, dropout (the paper: 0.3) or weight decay (the paper: 5e-4), or more training images",
            ))

    # Flat loss over the last epochs.
    epoch_losses = _values(epochs, "train_loss")
    window = epoch_losses[-(FLAT_EPOCHS + 1):]
    if not diverged and len(window) == FLAT_EPOCHS + 1 and all(math.isfinite(v) for v in window):
        mean = sum(window) / len(window)
        if mean >= FLAT_FITTED * chance_loss and (max(window) - min(window)) <= FLAT_TOLERANCE * mean:
            if mean >= FLAT_NEAR_CHANCE * chance_loss:
                findings.append(Finding(
                    "flat-loss", "warning",
                    f"train loss has stayed at {mean:.3f} (near a uniform guess's {chance_loss:.2f}) "
                    f"for {FLAT_EPOCHS} epochs: nothing is being learned",
                    "raise the learning rate if it is tiny; else check that the labels match the images",
                ))
            else:
                findings.append(Finding(
                    "flat-loss", "info",
                    f"train loss has stayed at {mean:.3f} (within {FLAT_TOLERANCE:.0%}) for {FLAT_EPOCHS} epochs: a plateau",
                    "a step schedule's next decay usually moves it; with a constant rate, lower it or use a schedule",
                ))
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
