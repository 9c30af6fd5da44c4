"""wrn_core.analysis.run_tables: the runs table, step/epoch frames, smoothing, overlay curves and config diffs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from wrn_core.analysis import RUN_COLUMNS, config_diff, curves_frame, metrics_frames, runs_frame, smooth
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore

from metric_records import RECORDS, epoch, summary


def test_runs_frame_columns_and_units():
    frame = runs_frame([summary("old"), summary("new", created_at=1_800_000_000.0, best_test_acc=None, params=None)])
    assert list(frame.columns) == list(RUN_COLUMNS)
    assert list(frame["name"]) == ["new", "old"]  # newest first
    old = frame.set_index("name").loc["old"]
    assert old["model"] == "WRN-10-1" and old["epochs"] == "2/3"
    assert old["best test acc (%)"] == pytest.approx(50.0)
    assert old["final test acc (%)"] == pytest.approx(45.0)
    assert old["params"] == 77850 and old["duration (s)"] == pytest.approx(12.3)
    assert old["created"].startswith("2023-11-14")
    assert math.isnan(frame.set_index("name").loc["new", "best test acc (%)"])


def test_runs_frame_empty_and_from_store(tmp_path):
    assert list(runs_frame([]).columns) == list(RUN_COLUMNS)
    store = RunStore(tmp_path)
    held = store.create(TrainConfig(model=WRNConfig(depth=10, widen_factor=2), epochs=4), "a", hold="queued")
    frame = runs_frame(store.summaries())
    held.release()
    assert frame.loc[0, "name"] == "a" and frame.loc[0, "status"] == "queued" and frame.loc[0, "epochs"] == "0/4"
    assert frame.loc[0, "model"] == "WRN-10-2"


def test_metrics_frames_split_and_sort():
    steps, epochs = metrics_frames(list(reversed(RECORDS)))
    assert list(steps["step"]) == [2, 4, 6, 8]
    assert list(epochs["epoch"]) == [1, 2]
    assert epochs["test_acc"].tolist() == [0.25, 0.45]
    empty_steps, empty_epochs = metrics_frames([])
    assert empty_steps.empty and "train_loss" in empty_steps.columns
    assert empty_epochs.empty and "test_acc" in empty_epochs.columns


def test_metrics_frames_keeps_last_duplicate_epoch():
    _, epochs = metrics_frames([epoch(1, 4, 0.1), epoch(1, 4, 0.2)])
    assert epochs["test_acc"].tolist() == [0.2]


def test_smooth():
    values = pd.Series([1.0, 2.0, 3.0, 4.0])
    assert smooth(values, 0).tolist() == values.tolist()
    smoothed = smooth([0.0, 10.0, 10.0, 10.0], 0.9)
    assert smoothed.iloc[0] == 0.0  # debiased: the first value is kept
    assert 0.0 < smoothed.iloc[1] < 10.0 and smoothed.is_monotonic_increasing
    assert smooth([], 0.5).empty
    with pytest.raises(ValueError):
        smooth(values, 1.0)
    with pytest.raises(ValueError):
        smooth(values, -0.1)


@pytest.mark.parametrize("x, expected", [("epoch", [0.5, 1.0, 1.5, 2.0]), ("time", [1.0, 2.0, 3.0, 4.0]), ("images_seen", [64, 128, 192, 256])])
def test_curves_frame_axes(x, expected):
    frame = curves_frame({"a": RECORDS}, x=x)
    assert set(frame.columns) == {"run", "metric", "source", "x", "value"}
    train = frame[frame["metric"] == "train_acc"]
    assert train["source"].unique().tolist() == ["step"]
    assert train["x"].tolist() == expected
    test = frame[frame["metric"] == "test_acc"]
    assert test["source"].unique().tolist() == ["epoch"] and test["value"].tolist() == [0.25, 0.45]


def test_curves_frame_flops_axis():
    frame = curves_frame({"a": RECORDS, "b": RECORDS, "unknown": RECORDS}, x="flops",
                         flops_per_image={"a": 6.0e6, "b": 1.2e7, "unknown": None})
    assert sorted(frame["run"].unique()) == ["a", "b"]  # no FLOPs figure: left out
    a_train = frame[(frame["run"] == "a") & (frame["metric"] == "train_acc")]
    assert a_train["x"].tolist() == pytest.approx([64 * 6.0e6, 128 * 6.0e6, 192 * 6.0e6, 256 * 6.0e6])
    b_test = frame[(frame["run"] == "b") & (frame["metric"] == "test_acc")]
    assert b_test["x"].tolist() == pytest.approx([128 * 1.2e7, 256 * 1.2e7])  # images seen x FLOPs per image
    with pytest.raises(ValueError, match="flops_per_image"):
        curves_frame({"a": RECORDS}, x="flops")


def test_curves_frame_overlays_runs_and_falls_back_to_epoch_points():
    only_epochs = [r for r in RECORDS if r["kind"] == "epoch"]
    frame = curves_frame({"a": RECORDS, "b": only_epochs, "empty": []})
    assert sorted(frame["run"].unique()) == ["a", "b"]
    b_train = frame[(frame["run"] == "b") & (frame["metric"] == "train_loss")]
    assert b_train["source"].unique().tolist() == ["epoch"] and len(b_train) == 2
    smoothed = curves_frame({"a": RECORDS}, smoothing=0.5)
    raw = curves_frame({"a": RECORDS})
    assert smoothed["value"].iloc[0] == raw["value"].iloc[0]
    assert smoothed["value"].iloc[1] != raw["value"].iloc[1]
    with pytest.raises(ValueError):
        curves_frame({"a": RECORDS}, x="steps")
    assert curves_frame({}).empty


def test_config_diff_only_differing_keys():
    a = TrainConfig(model=WRNConfig(depth=10, widen_factor=8), optimizer="adam", lr=1e-3).to_dict()
    b = TrainConfig(model=WRNConfig(depth=28, widen_factor=8), optimizer="sgd-nesterov", lr=0.1).to_dict()
    diff = config_diff({"a": a, "b": b})
    assert set(diff.index) == {"model.depth", "optimizer", "lr"}
    assert list(diff.columns) == ["a", "b"]
    assert diff.loc["model.depth", "a"] == 10 and diff.loc["model.depth", "b"] == 28
    assert config_diff({"a": a, "same": dict(a)}).empty
    missing = config_diff({"a": {"x": 1, "y": 2}, "b": {"x": 1}})
    assert list(missing.index) == ["y"] and missing.loc["y", "b"] is None
