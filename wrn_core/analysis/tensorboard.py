"""A run as TensorBoard event files (scalars, system readings, the HParams session) that trackers import."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from wrn_core.store import Run
from wrn_core.store.records import CREATED, EPOCH, STEP, SYSTEM, WIDTH, of_kind

EVENT_FILE_PREFIX = "events.out.tfevents."  # what SummaryWriter names its files; a re-export replaces them
STEP_TAGS = {"train_loss": "train/loss", "train_acc": "train/acc"}  # step record field -> tag, at the global step
EPOCH_TAGS = {"test_acc": "test/acc", "test_loss": "test/loss", "lr": "lr"}  # epoch record field -> tag
SYSTEM_PREFIX = "system/"  # system/<field> for each numeric reading of a system record
SYSTEM_SKIP = ("kind", "step", "epoch", "time", "wall_time")  # a system record's position, not readings
BEST_TAG = "hparams/best_test_acc"  # the HParams view's metrics: scalars in the run's own directory
FINAL_TAG = "hparams/final_test_acc"
WIDTH_PREFIX = "width/"  # width/<layer>/effective and width/<layer>/dead at each measured epoch's step


@dataclass(frozen=True)
class TensorBoardExport:
    """What export_tensorboard wrote for one run."""

    path: Path  # the event directory (what `tensorboard --logdir` is pointed at, or one run under it)
    scalars: int  # scalar points written, every tag together
    epochs: int  # completed epochs exported
    hparams: dict[str, int | float | str | bool]  # the flattened config, as the HParams session holds it
    metrics: dict[str, float]  # BEST_TAG / FINAL_TAG -> accuracy (fraction); empty without a finite test_acc
    warning: str | None = None  # unreadable metrics.jsonl lines that were skipped, as MetricsLog says


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """Nested dicts as dotted keys ("model.depth"); values an HParams session takes: None -> "none", lists
    (and tuples) as JSON text, anything else that is not int/float/str/bool -> str. torch's hparams()
    stores a bool as the number 1 or 0."""
    flat: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, prefix=f"{name}."))
        elif value is None:
            flat[name] = "none"
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)  # e.g. extensions: "[]", or the list as JSON
        else:
            flat[name] = str(value)
    return flat


def _number(value: Any) -> float | None:
    """A reading TensorBoard can plot: an int or float (not a bool); None for null or anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def accuracy_metrics(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Best and final test accuracy over the epoch records with a finite test_acc; empty when there are none."""
    accuracies = [a for r in of_kind(records, EPOCH)
                  for a in [_number(r.get("test_acc"))] if a is not None and math.isfinite(a)]
    if not accuracies:
        return {}
    return {BEST_TAG: max(accuracies), FINAL_TAG: accuracies[-1]}


def scalar_points(records: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, int, float]]:
    """(tag, value, global step, training seconds) for every point of the records, in file order; null
    fields are skipped. The records are a reader's (resume markers applied), so each point appears once."""
    points: list[tuple[str, float, int, float]] = []
    for record in of_kind(records, STEP, EPOCH, SYSTEM, WIDTH):
        if record["kind"] == WIDTH:
            points += width_points(record)
            continue
        if record["kind"] == SYSTEM:
            fields = {k: SYSTEM_PREFIX + k for k in record if k not in SYSTEM_SKIP}
        else:
            fields = STEP_TAGS if record["kind"] == STEP else EPOCH_TAGS
        seconds = _number(record.get("time")) or 0.0
        for field, tag in fields.items():
            value = _number(record.get(field))
            if value is not None:
                points.append((tag, value, record["step"], seconds))
    return points


def width_points(record: Mapping[str, Any]) -> list[tuple[str, float, int, float]]:
    """A width record's points: width/<layer>/effective (channels) and width/<layer>/dead (channels) per ReLU."""
    seconds = _number(record.get("time")) or 0.0
    return [(f"{WIDTH_PREFIX}{layer['layer']}/{field}", float(layer[field]), record["step"], seconds)
            for layer in record["layers"] for field in ("effective", "dead")]


def _start_wall_time(records: Iterable[Mapping[str, Any]]) -> float:
    """The run's creation time (unix seconds, from the created record); 0 if there is none."""
    for record in of_kind(records, CREATED):
        if _number(record.get("wall_time")) is not None:
            return float(record["wall_time"])
    return 0.0


def remove_event_files(directory: Path) -> int:
    """Delete the TensorBoard event files directly in `directory` (a re-export must not add a second copy of
    every point); returns how many. Other files and subdirectories are left alone."""
    removed = 0
    if directory.is_dir():
        for path in directory.glob(EVENT_FILE_PREFIX + "*"):
            if path.is_file():
                path.unlink()
                removed += 1
    return removed


def export_tensorboard(run: Run, out_dir: Path) -> TensorBoardExport:
    """Write the run's metrics as TensorBoard event files in out_dir, replacing event files already there.

    Tags: train/loss and train/acc at each step record's global step; test/acc, test/loss and lr at each epoch's
    step; system/<field> for each non-null system reading; width/<layer>/effective and width/<layer>/dead at each
    measured epoch's step; hparams/best_test_acc and hparams/final_test_acc at
    the last step. The run's config (flattened, dotted keys) is the HParams plugin's session in the same event
    file, so the HParams view lists this run with its metrics. Event wall times are the run's creation time plus
    training seconds, so TensorBoard's "relative" axis reads training time.

    The config and metrics are read before anything is touched: a corrupt run (RunStoreError) changes nothing.
    """
    config = run.read_config().to_dict()  # RunCorruptError (a RunStoreError) for a missing or invalid config.json
    log = run.read_metrics_log()
    records = log.records
    hparams = flatten_config(config)
    metrics = accuracy_metrics(records)
    points = scalar_points(records)
    start = _start_wall_time(records)
    last_step = max((step for _, _, step, _ in points), default=0)
    last_seconds = max((seconds for _, _, _, seconds in points), default=0.0)
    points += [(tag, value, last_step, last_seconds) for tag, value in metrics.items()]

    # Imported here: torch.utils.tensorboard pulls in torch and tensorboard (seconds), which listing runs never needs.
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_event_files(out_dir)
    writer = SummaryWriter(log_dir=str(out_dir), max_queue=len(points) + 10, flush_secs=3600)
    written = False
    try:
        # The session in the run's own event file (SummaryWriter.add_hparams would make a second, timestamped run).
        for summary in hparams_summaries(hparams, dict.fromkeys(metrics, 0.0)):
            writer.file_writer.add_summary(summary, walltime=start or None)
        for tag, value, step, seconds in points:
            writer.add_scalar(tag, value, global_step=step, walltime=start + seconds if start else None)
        written = True
    finally:
        writer.close()
        if not written:  # no half-written export left to be mistaken for the run
            remove_event_files(out_dir)
    epochs = sum(1 for _ in of_kind(records, EPOCH))
    return TensorBoardExport(out_dir, len(points), epochs, hparams, metrics, log.warning)
