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


def test_export_csv_writes_decimals_as_people_read_them():
    # 0.164 × 100 is 16.400000000000002 in floating point: the download says 16.4.
    record = {"kind": "epoch", "epoch": 1, "step": 4, "images_seen": 128, "time": 1.23456789, "train_loss": 2.302585093,
              "train_acc": 0.164, "test_loss": 2.1, "test_acc": 0.164, "lr": 5e-05}
    percent = list(csv.DictReader(io.StringIO(export_csv([record], percent=True))))[0]
    assert percent["test_acc_pct"] == "16.4" and percent["train_acc_pct"] == "16.4"
    assert percent["train_loss"] == "2.30259" and percent["time"] == "1.23457" and float(percent["lr"]) == 5e-05
    assert list(csv.DictReader(io.StringIO(export_csv([record]))))[0]["test_acc"] == "0.164"
