"""wrn_core.analysis.run_tables: the runs table (its settings and metric columns), step/epoch frames, smoothing, overlay curves,
config diffs and the transposed comparison."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from wrn_core.analysis import (
    RUN_COLUMNS,
    compare_frame,
    config_diff,
    curves_frame,
    metric_column,
    metric_summary,
    metrics_frames,
    runs_frame,
    setting_columns,
    smooth,
)
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


def test_runs_frame_with_settings_adds_every_other_config_field(tmp_path):
    store = RunStore(tmp_path)
    config = TrainConfig(model=WRNConfig(depth=16, widen_factor=2, num_classes=100), synthetic_train=700,
                         subset_test=50, schedule="cosine", epochs=3)
    store.create(config, "a")
    plain, full = runs_frame(store.summaries()), runs_frame(store.summaries(), settings=True)
    assert list(plain.columns) == list(RUN_COLUMNS)  # the CLI's `runs list` keeps its columns
    assert list(full.columns[: len(RUN_COLUMNS)]) == list(RUN_COLUMNS)
    row = full.iloc[0]
    assert (row["synthetic_train"], row["subset_test"], row["num_classes"], row["schedule"]) == (700, 50, 100, "cosine")
    assert pd.isna(row["subset_train"]) and row["extensions"] == "[]"
    # Covered by RUN_COLUMNS under their own names (epochs as planned_epochs: `epochs` stays 'done/planned'), or
    # no effect on a result (log_every, eval_batch_size): no second column.
    assert len(full.columns) == len(set(full.columns)) and full.iloc[0]["epochs"] == "0/3"
    assert "log_every" not in full.columns and "eval_batch_size" not in full.columns
    settings = setting_columns(full)
    assert {"blocks", "widen_factor", "planned_epochs", "seed", "synthetic_train", "schedule"} <= set(settings)
    assert not {"name", "status", "best test acc (%)", "params", "tags", "depth"} & set(settings)


def test_metric_summary_best_min_max_last_per_metric():
    records = [epoch(1, 4, test_acc=0.30, test_loss=1.9), epoch(2, 8, test_acc=0.50, test_loss=1.2),
               epoch(3, 12, test_acc=0.45, test_loss=1.4)]
    values = metric_summary(records)
    assert metric_column("test_acc", "best") == "best test acc (%)"  # runs_frame's own columns for these two
    assert metric_column("test_acc", "last") == "final test acc (%)"
    assert values["best test acc (%)"] == pytest.approx(50.0) and values["final test acc (%)"] == pytest.approx(45.0)
    assert values["min test acc (%)"] == pytest.approx(30.0) and values["max test acc (%)"] == pytest.approx(50.0)
    # A loss is best at its minimum.
    assert values["best test loss"] == pytest.approx(1.2) and values["max test loss"] == pytest.approx(1.9)
    assert values["last test loss"] == pytest.approx(1.4)
    assert math.isnan(metric_summary([])["best train loss"])
    with pytest.raises(ValueError, match="unknown metric column"):
        metric_column("test_acc", "median")


def test_compare_frame_is_one_column_per_run_and_shows_only_what_differs_by_default():
    a = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=500, epochs=2).to_dict()
    b = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=4000, epochs=3).to_dict()
    results = runs_frame([summary("b", best_test_acc=0.57, epochs=3), summary("a", best_test_acc=None, epochs=2)])
    table = compare_frame({"a": a, "b": b}, results)
    assert list(table.columns) == ["a", "b"] and table.index.name == "setting"
    assert list(table.index) == ["epochs done/planned", "best test acc (%)", "synthetic_train", "epochs"]
    assert table.loc["best test acc (%)", "a"] is None and table.loc["best test acc (%)", "b"] == pytest.approx(57.0)
    assert (table.loc["synthetic_train", "a"], table.loc["synthetic_train", "b"]) == (500, 4000)
    everything = compare_frame({"a": a, "b": b}, results, only_differences=False)
    assert {"status", "model.widen_factor", "optimizer", "synthetic_test"} <= set(everything.index)
    assert everything.loc["model.widen_factor"].tolist() == [1, 1]
