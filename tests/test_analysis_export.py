"""wrn_core.analysis.run_export: a run's records as CSV (one row per epoch) and as JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest

from wrn_core.analysis import EXPORT_COLUMNS, export_csv, export_json

from metric_records import RECORDS, step


def test_export_csv_one_row_per_epoch():
    text = export_csv(RECORDS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["test_acc"]) == pytest.approx(0.45)
    assert rows[0]["images_seen"] == "128"
    assert export_csv([]).strip() == ",".join(EXPORT_COLUMNS)


def test_export_json_round_trips_and_is_valid_with_nan():
    data = json.loads(export_json(RECORDS))
    assert data == RECORDS
    diverged = [dict(step(2, 0.5, float("nan"), 0.1))]
    text = export_json(diverged)
    assert "NaN" not in text and json.loads(text)[0]["train_loss"] is None
