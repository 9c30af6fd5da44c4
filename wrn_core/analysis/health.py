"""Training health: diagnose(records, config) -> findings, one small rule each, cheap enough for every 1 s refresh."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from wrn_core.analysis.width import record_groups, width_records
from wrn_core.store.records import EPOCH, STEP, of_kind

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
# Divergence seen on the test set: the latest test loss above 10 x ln(classes) (23 for 10 classes).
# Looser than the train rule because eval-mode BatchNorm statistics of a run's first few steps can
# put a healthy network's first test losses a few times above a uniform guess: over the 10,106 epoch
# records of the runs on the development machine (tests, a CIFAR-10 reference grid), healthy runs
# peaked at 3.75 x ln(10) (WRN-16-2, SGD lr 0.1, epoch 1 after 5 steps), while Adam at lr 5 on
# synthetic images read 80 to 3,000,000 x ln(10) over its 3 epochs with the train loss back under 3 x.
TEST_EXPLODED_FACTOR = 10.0
# Diverging: the train loss (median of the last 3 points) at least doubled from its lowest
# (median of 3) and is back above ln(classes), i.e. worse than guessing.
GROWTH_FACTOR = 2.0
# Overfitting: train - test accuracy at least 15 points and grown by 2 points or more over the
# last 3 epochs (the paper's runs end about 5 points apart: ~100% train, ~95% test).
OVERFIT_GAP = 0.15
OVERFIT_GROWTH = 0.02
OVERFIT_EPOCHS = 3
# Too early to judge: an accuracy in the chance band before the at-chance rules above may call it
# (fewer than their steps or epochs). A healthy run is there too at first, so this is said as "too
# early to judge", never as "no problems found", and nothing is said once an accuracy leaves the band.
# Flat loss: the epoch train loss has moved less than 1% of its mean over the last 3 epochs
# (4 epoch points). The authors' WRN-40-4 log moves 1-3% per 3 epochs on its lr-0.1 plateau.
FLAT_EPOCHS = 3
FLAT_TOLERANCE = 0.01
# A flat loss at >= 80% of ln(classes) means nothing is being learned (warning); lower down it
# is a plateau (info); below 2% of ln(classes) the training set is fitted (nothing to say).
FLAT_NEAR_CHANCE = 0.8
FLAT_FITTED = 0.02
# Width use (the width records of each epoch's test pass; per group, the mean over its ReLUs of effective ÷
# allocated width, and its dead channels). Width lost: a group's effective width falls by WIDTH_LOSS_SHARE of
# a value it had at most WIDTH_LOSS_EPOCHS epochs before, and has not come back above that since.
# Dead channels: at least DEAD_SHARE of a group's channels dead (zero at >= 99% of positions) at the latest
# measurement. Healthy runs measured here never come near either (see bench/RESULTS.md, "Width over training").
WIDTH_LOSS_SHARE = 0.30
WIDTH_LOSS_EPOCHS = 3
DEAD_SHARE = 0.10
WIDTH_ADVICE = ("a learning rate too high for the optimizer kills ReLUs in the first steps and costs accuracy even "
                "where they revive: lower the lr (Adam: 1e-3 or less), add a warm-up (--warmup-epochs), or use SGD "
                "with momentum")


@dataclass(frozen=True)
class Finding:
    """One training-health diagnosis: which rule fired, how bad it is, what it saw, what to try."""

    rule: str  # not-finite | exploded | test-exploded | diverging | test-at-chance | train-at-chance | too-early
    #            | overfitting | flat-loss | width-lost | dead-channels
    severity: str  # error | warning | info
    message: str  # one line: what the records show
    advice: str  # one line: what to try


@dataclass(frozen=True)
class HealthSeries:
    """What the rules read, prepared once per diagnose: chance levels and the cleaned records."""

    classes: int
    chance: float  # accuracy of a uniform guess, 1 / classes
    band: float  # accuracies at or below this count as "at chance"
    chance_loss: float  # cross-entropy of a uniform guess, ln(classes)
    steps: list[dict[str, Any]]  # step records, one per step, sorted
    epochs: list[dict[str, Any]]  # epoch records, one per epoch, sorted
    tested: list[dict[str, Any]]  # the epoch records with a numeric test_acc
    train_losses: list[float]  # finite train losses: per step, else per epoch
    widths: list[tuple[int, list[dict[str, Any]]]]  # (epoch, analysis.width.record_groups) per measured epoch


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
    for record in of_kind(records, STEP, EPOCH):
        found, key = (steps, _number(record.get("step"))) if record["kind"] == STEP else (epochs, _number(record.get("epoch")))
        if key is not None and math.isfinite(key):
            found[key] = record
    return [dict(steps[k]) for k in sorted(steps)], [dict(epochs[k]) for k in sorted(epochs)]


def _values(rows: list[dict[str, Any]], field: str) -> list[float]:
    """The numeric values of one field, records without one skipped."""
    return [v for v in (_number(r.get(field)) for r in rows) if v is not None]


def prepare(records: Iterable[Mapping[str, Any]], config: Any = None) -> HealthSeries:
    """The HealthSeries the rules read: one pass over the records, no pandas."""
    classes = _num_classes(config)
    chance = 1.0 / classes
    records = list(records)
    steps, epochs = _health_series(records)
    train_losses = _values(steps, "train_loss") or _values(epochs, "train_loss")
    return HealthSeries(
        classes=classes,
        chance=chance,
        band=min(CHANCE_FACTOR * chance, chance + CHANCE_MAX_MARGIN),
        chance_loss=math.log(classes),
        steps=steps,
        epochs=epochs,
        tested=[r for r in epochs if _number(r.get("test_acc")) is not None],
        train_losses=[v for v in train_losses if math.isfinite(v)],
        widths=[(record["epoch"], record_groups(record)) for record in width_records(records)],
    )


def check_not_finite(s: HealthSeries) -> Finding | None:
    """A NaN or infinite train or test loss anywhere, per step or per epoch."""
    for rows, source in ((s.steps, STEP), (s.epochs, EPOCH)):
        bad = _first_non_finite(rows)
        if bad is not None:
            where = f"step {bad.get('step')}" if source == STEP else f"epoch {bad.get('epoch')}"
            return Finding(
                "not-finite", "error", f"the loss became NaN or infinite at {where}: training diverged",
                "lower the learning rate (try 10x lower) or add warm-up; check the inputs for NaNs",
            )
    return None


def check_exploded(s: HealthSeries) -> Finding | None:
    """The latest train loss far above a uniform guess's."""
    if not s.train_losses or s.train_losses[-1] <= EXPLODED_FACTOR * s.chance_loss:
        return None
    return Finding(
        "exploded", "error",
        f"train loss {s.train_losses[-1]:.4g} is over {EXPLODED_FACTOR:g}x a uniform guess's "
        f"({s.chance_loss:.2f} for {s.classes} classes): training diverged",
        "lower the learning rate (try 10x lower) or add warm-up; with Adam, a lr near 1e-3",
    )


def check_test_exploded(s: HealthSeries) -> Finding | None:
    """The latest test loss far above a uniform guess's: the train loss can look sane again (BatchNorm
    renormalises each batch) while the weights make the test predictions confidently wrong."""
    last = s.tested[-1] if s.tested else None
    loss = _number(last.get("test_loss")) if last else None
    if loss is None or not math.isfinite(loss) or loss <= TEST_EXPLODED_FACTOR * s.chance_loss:
        return None
    accuracy = _number(last.get("test_acc"))
    at_chance = accuracy is not None and accuracy <= s.band
    return Finding(
        "test-exploded", "error",
        f"test loss {loss:,.4g} at epoch {last.get('epoch')} is over {TEST_EXPLODED_FACTOR:g}x a uniform guess's "
        f"({s.chance_loss:.2f} for {s.classes} classes)"
        + (f" with test accuracy {accuracy:.1%}, at chance: training diverged" if at_chance
           else ": the test predictions are confidently wrong"),
        "lower the learning rate (try 10x lower) or add warm-up; with Adam, a lr near 1e-3",
    )


def check_diverging(s: HealthSeries) -> Finding | None:
    """The (median-of-3) train loss at least doubled from its lowest and worse than a uniform guess."""
    if not s.train_losses:
        return None
    smoothed = _median3(s.train_losses)
    if smoothed[-1] > s.chance_loss and smoothed[-1] >= GROWTH_FACTOR * min(smoothed):
        return Finding(
            "diverging", "warning",
            f"train loss rose from {min(smoothed):.3f} to {smoothed[-1]:.3f}, above a uniform "
            f"guess's {s.chance_loss:.2f}: training is diverging",
            "lower the learning rate or add warm-up; a lr spike from the schedule can do this too",
        )
    return None


def check_test_at_chance(s: HealthSeries) -> Finding | None:
    """Test accuracy at chance while train accuracy climbs: the seed article's 17% symptom."""
    if len(s.tested) < TEST_CHANCE_EPOCHS:
        return None
    recent = [_number(r.get("test_acc")) for r in s.tested[-TEST_CHANCE_EPOCHS:]]
    train_acc = _number(s.tested[-1].get("train_acc"))
    step = _number(s.tested[-1].get("step")) or 0.0
    climbed = train_acc is not None and train_acc >= s.band + CLIMB_MARGIN
    if not (all(a is not None and a <= s.band for a in recent) and climbed and step >= TEST_CHANCE_MIN_STEPS):
        return None
    return Finding(
        "test-at-chance", "error",
        f"test accuracy {recent[-1]:.1%} is at chance ({s.chance:.0%} for {s.classes} classes) after "
        f"{len(s.tested)} epochs while train accuracy climbed to {train_acc:.1%}",
        "suspect a train/eval mismatch (BatchNorm or dropout mode, test images normalised "
        "differently) or wrong test labels",
    )


def check_train_at_chance(s: HealthSeries) -> Finding | None:
    """Train accuracy still at chance after an epoch and enough steps."""
    if len(s.epochs) < TRAIN_CHANCE_EPOCHS:
        return None
    last = s.epochs[-1]
    train_acc = _number(last.get("train_acc"))
    step = _number(last.get("step")) or 0.0
    if not (train_acc is not None and train_acc <= s.band and step >= TRAIN_CHANCE_MIN_STEPS):
        return None
    epochs = len(s.epochs)
    return Finding(
        "train-at-chance", "warning",
        f"train accuracy {train_acc:.1%} is still at chance ({s.chance:.0%} for {s.classes} classes) "
        f"after {epochs} epoch{'s' if epochs != 1 else ''} ({int(step)} steps)",
        "the learning rate is likely far too high or too low; else check the data "
        "(labels match the images, normalisation)",
    )


def _latest(rows: list[dict[str, Any]], field: str) -> float | None:
    """The field's value in the last record that has it as a number."""
    values = _values(rows, field)
    return values[-1] if values else None


def check_too_early(s: HealthSeries) -> Finding | None:
    """Nothing trained yet, or an accuracy at chance before the at-chance rules may judge it."""
    if not s.steps and not s.epochs:
        return Finding("too-early", "info", "too early to judge: no training step recorded yet",
                       "wait for the first steps; the checks run on every refresh")
    step = max(_values(s.steps + s.epochs, "step"), default=0.0)
    train_acc = _latest(s.steps, "train_acc") if s.steps else _latest(s.epochs, "train_acc")
    test_acc = _latest(s.tested, "test_acc")
    train_open = train_acc is not None and train_acc <= s.band and (
        step < TRAIN_CHANCE_MIN_STEPS or len(s.epochs) < TRAIN_CHANCE_EPOCHS)
    test_open = test_acc is not None and test_acc <= s.band and (
        step < TEST_CHANCE_MIN_STEPS or len(s.tested) < TEST_CHANCE_EPOCHS)
    if not (train_open or test_open):
        return None
    seen = [f"{name} accuracy {value:.1%}" for name, value, open_ in
            (("test", test_acc, test_open), ("train", train_acc, train_open)) if open_]
    wait = TEST_CHANCE_MIN_STEPS if test_open else TRAIN_CHANCE_MIN_STEPS
    return Finding(
        "too-early", "info",
        f"too early to judge: {' and '.join(seen)} {'is' if len(seen) == 1 else 'are'} at chance "
        f"({s.chance:.0%} for {s.classes} classes) after {int(step)} step{'s' if step != 1 else ''} and "
        f"{len(s.epochs)} epoch{'s' if len(s.epochs) != 1 else ''}; a healthy run can stay there for its first {wait} steps",
        "train longer (more epochs, or a smaller batch for more steps) before reading this run as healthy; "
        "if it stays at chance, check the learning rate and the data",
    )


def check_overfitting(s: HealthSeries) -> Finding | None:
    """A large train-test accuracy gap that is still growing."""
    pairs = ((_number(r.get("train_acc")), _number(r.get("test_acc"))) for r in s.tested)
    gaps = [t - e for t, e in pairs if t is not None and e is not None]
    if len(gaps) <= OVERFIT_EPOCHS:
        return None
    growth = gaps[-1] - gaps[-1 - OVERFIT_EPOCHS]
    if not (gaps[-1] >= OVERFIT_GAP and growth >= OVERFIT_GROWTH):
        return None
    return Finding(
        "overfitting", "warning",
        f"train accuracy is {100 * gaps[-1]:.0f} points above test and the gap grew by "
        f"{100 * growth:.0f} points over the last {OVERFIT_EPOCHS} epochs: overfitting",
        "add augmentation, dropout (the paper: 0.3) or weight decay (the paper: 5e-4), or more training images",
    )


def check_flat_loss(s: HealthSeries) -> Finding | None:
    """The epoch train loss flat over the last epochs: a warning near chance, else an info (a plateau)."""
    window = _values(s.epochs, "train_loss")[-(FLAT_EPOCHS + 1):]
    if len(window) != FLAT_EPOCHS + 1 or not all(math.isfinite(v) for v in window):
        return None
    mean = sum(window) / len(window)
    if not (mean >= FLAT_FITTED * s.chance_loss and (max(window) - min(window)) <= FLAT_TOLERANCE * mean):
        return None
    if mean >= FLAT_NEAR_CHANCE * s.chance_loss:
        return Finding(
            "flat-loss", "warning",
            f"train loss has stayed at {mean:.3f} (near a uniform guess's {s.chance_loss:.2f}) "
            f"for {FLAT_EPOCHS} epochs: nothing is being learned",
            "raise the learning rate if it is tiny; else check that the labels match the images",
        )
    return Finding(
        "flat-loss", "info",
        f"train loss has stayed at {mean:.3f} (within {FLAT_TOLERANCE:.0%}) for {FLAT_EPOCHS} epochs: a plateau",
        "a step schedule's next decay usually moves it; with a constant rate, lower it or use a schedule",
    )


def check_dead_channels(s: HealthSeries) -> Finding | None:
    """At the latest width measurement, the group with the largest share of dead channels, if it is DEAD_SHARE or more."""
    if not s.widths:
        return None
    epoch, groups = s.widths[-1]
    worst = max(groups, key=lambda g: g["dead_fraction"], default=None)
    if worst is None or worst["dead_fraction"] < DEAD_SHARE:
        return None
    return Finding(
        "dead-channels", "warning",
        f"{worst['dead_fraction']:.0%} of {worst['group']}'s channels are dead at epoch {epoch} ({worst['dead']} of "
        f"{worst['channels']} almost never fire on the test images)", WIDTH_ADVICE,
    )


def _largest_loss(series: list[tuple[int, float]]) -> tuple[float, int, float, int, float] | None:
    """(share lost, from epoch, from value, to epoch, to value) of a group's effective width: the largest fall within
    WIDTH_LOSS_EPOCHS epochs that the latest value has not climbed back from; None if there is none."""
    latest = series[-1][1] if series else 0.0
    found = []
    for i, (start, high) in enumerate(series):
        for end, low in series[i + 1:]:
            if end - start > WIDTH_LOSS_EPOCHS or high <= 0:
                break
            if latest <= (1 - WIDTH_LOSS_SHARE) * high:
                found.append(((high - low) / high, start, high, end, low))
    # The largest share; of equal ones the shortest span, then the latest: where the width went.
    return max(found, key=lambda f: (f[0], f[1] - f[3], f[1]), default=None)


def check_width_lost(s: HealthSeries) -> Finding | None:
    """A group whose effective width fell by WIDTH_LOSS_SHARE or more within WIDTH_LOSS_EPOCHS epochs and stayed down."""
    losses = []
    for group in dict.fromkeys(g["group"] for _, groups in s.widths for g in groups):
        series = [(epoch, g["effective_fraction"]) for epoch, groups in s.widths for g in groups if g["group"] == group]
        loss = _largest_loss(series)
        if loss is not None and loss[0] >= WIDTH_LOSS_SHARE:
            losses.append((group, *loss))
    if not losses:
        return None
    group, share, start, high, end, low = max(losses, key=lambda loss: loss[1])
    return Finding(
        "width-lost", "warning",
        f"{group} lost {share:.0%} of its effective width between epochs {start} and {end} ({high:.0%} → {low:.0%} of "
        f"its channels carry the signal)", WIDTH_ADVICE,
    )


def diagnose(records: Iterable[Mapping[str, Any]], config: Any = None) -> list[Finding]:
    """Training-health findings for a run's metrics records, most severe first (empty: healthy; an info
    "too-early" finding while the records are too few to tell a healthy run from one stuck at chance).

    config is a TrainConfig or its config.json dict (for the number of classes). Unknown record
    kinds and missing, null or non-numeric fields are ignored. Pure and cheap: one pass over the
    records, no pandas. Thresholds are the constants above.
    """
    s = prepare(records, config)
    # At most one divergence finding, the most telling; a diverged run's accuracy and loss say
    # nothing about chance or plateaus, and a test set at chance says nothing about overfitting.
    divergence = check_not_finite(s) or check_exploded(s) or check_test_exploded(s) or check_diverging(s)
    at_chance = check_test_at_chance(s)
    findings = [divergence, at_chance]
    if divergence is None:
        findings.append(check_train_at_chance(s))
    if not any(findings):  # no verdict yet: say when the records are too few to give one
        findings.append(check_too_early(s))
    if at_chance is None:
        findings.append(check_overfitting(s))
    if divergence is None:
        findings.append(check_flat_loss(s))
    findings += [check_width_lost(s), check_dead_channels(s)]
    return sorted((f for f in findings if f is not None), key=lambda f: SEVERITIES.index(f.severity))
