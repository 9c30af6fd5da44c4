"""A run's metrics records as downloadable text: one CSV row per epoch, or every record as JSON, with its tags and note."""

from __future__ import annotations

import io
import json
import math
from typing import Any, Iterable, Mapping

import pandas as pd

from wrn_core.analysis.run_tables import metrics_frames
from wrn_core.analysis.width import width_frame
from wrn_core.store.meta import Annotations

EXPORT_COLUMNS = ("epoch", "train_acc", "train_loss", "test_acc", "test_loss", "lr", "time", "images_seen")
ACCURACY_COLUMNS = ("train_acc", "test_acc")  # fractions in [0, 1] in the records
PERCENT_SUFFIX = "_pct"  # the column names of accuracies written in percent
SIGNIFICANT_DIGITS = 6  # of every decimal written: 16.4, not 16.400000000000002 (0.164 × 100 in floating point)


def _round(value: Any) -> Any:
    """A float to SIGNIFICANT_DIGITS significant digits (NaN and infinities as they are); anything else as it is."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return value


def _export_rows(records: Iterable[Mapping[str, Any]], percent: bool = False) -> pd.DataFrame:
    """The epoch rows in EXPORT_COLUMNS, counts as integers (so the CSV says 128, not 128.0), decimals to
    SIGNIFICANT_DIGITS; with percent, accuracies × 100 under names that say so (test_acc_pct)."""
    _, epochs = metrics_frames(records)
    frame = epochs[list(EXPORT_COLUMNS)].copy()
    frame["epoch"] = frame["epoch"].astype("Int64")
    frame["images_seen"] = frame["images_seen"].astype("Int64")
    if percent:
        for column in ACCURACY_COLUMNS:
            frame[column] = frame[column] * 100.0
        frame = frame.rename(columns={c: c + PERCENT_SUFFIX for c in ACCURACY_COLUMNS})
    for column in frame.columns:
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].map(_round)
    return frame


def export_csv(records: Iterable[Mapping[str, Any]], percent: bool = False, annotations: Annotations | None = None) -> str:
    """One CSV row per completed epoch: epoch, train_acc, train_loss, test_acc, test_loss, lr, time, images_seen,
    decimals to 6 significant digits (more than any of them is measured to).

    Accuracies are fractions as in metrics.jsonl; percent=True writes them in percent as train_acc_pct and
    test_acc_pct (what the dashboard shows and downloads). With annotations, every row also carries the
    run's `tags` (space-separated: a tag has no spaces) and `note`, so a table of many runs' rows keeps them.
    """
    return _csv(_export_rows(records, percent), annotations)


def export_width_csv(records: Iterable[Mapping[str, Any]], annotations: Annotations | None = None) -> str:
    """Width use as CSV, one row per (measured epoch, ReLU) in forward order: epoch, step, order, layer, group,
    channels, dead, effective, effective_fraction, dead_fraction (decimals to 6 significant digits); with
    annotations, the run's tags and note on every row as export_csv writes them."""
    frame = width_frame(records)
    for column in ("effective", "effective_fraction", "dead_fraction"):
        frame[column] = frame[column].map(_round)
    return _csv(frame, annotations)


def _csv(frame: pd.DataFrame, annotations: Annotations | None) -> str:
    """The frame as CSV text; with annotations, the run's `tags` (space-separated: a tag has no spaces) and `note`
    on every row, so a table of many runs' rows keeps them."""
    if annotations is not None:
        frame = frame.assign(tags=" ".join(annotations.tags), note=annotations.note)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
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


def export_json(records: Iterable[Mapping[str, Any]], annotations: Annotations | None = None, name: str | None = None) -> str:
    """All metrics records (step, epoch and event) as a JSON array, non-finite numbers as null.

    With annotations, an object instead: {"name", "tags", "note", "records": that array}.
    """
    rows = [_finite(dict(r)) for r in records]
    if annotations is None:
        return json.dumps(rows, indent=2, allow_nan=False) + "\n"
    document = {"name": name, "tags": list(annotations.tags), "note": annotations.note, "records": rows}
    return json.dumps(document, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
