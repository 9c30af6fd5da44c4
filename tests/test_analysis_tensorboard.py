"""wrn_core.analysis.tensorboard: a run's records as TensorBoard event files, read back with TensorBoard's reader."""

from __future__ import annotations

import json

import pytest

from wrn_core.analysis.tensorboard import (
    BEST_TAG,
    FINAL_TAG,
    export_tensorboard,
    flatten_config,
)
from wrn_core.store import RunStore
from wrn_core.store import RunCorruptError
from wrn_core.store.records import event_record, resume_record, system_record

from metric_records import epoch, step
from tb_events import event_files, read_back
from tiny_runs import tiny_config

SUPERSEDED_LOSS = 9.0  # the losses of the points a resume went back over: none may appear

# Three epochs of 4 steps, logged every 2; the run was killed after step 10 and resumed from the checkpoint at
# step 4 (end of epoch 1), so steps 6-10 and epoch 2 of the first attempt are superseded.
RESUMED = [
    step(2, 0.5, 2.0, 0.2),
    step(4, 1.0, 1.8, 0.3),
    epoch(1, 4, 0.25, 1.9),
    system_record(4, 1.0, 2.0, 1_000_000_002.0, cpu_percent=150.0, rss_mb=800.0, cuda_allocated_mb=None,
                  gpu_util=None),
    step(6, 1.5, SUPERSEDED_LOSS, 0.9),
    step(8, 2.0, SUPERSEDED_LOSS, 0.9),
    epoch(2, 8, 0.9, SUPERSEDED_LOSS),
    step(10, 2.5, SUPERSEDED_LOSS, 0.9),
    resume_record(4, 1.0, 2.0, 1_000_000_100.0, 3),
    step(6, 1.5, 1.6, 0.4),
    step(8, 2.0, 1.4, 0.5),
    epoch(2, 8, 0.55, 1.5),
    event_record("compile", "compiled", 8, 2.0, 4.0, seconds=1.5),
    step(10, 2.5, 1.2, 0.6),
    step(12, 3.0, 1.1, 0.65),
    epoch(3, 12, 0.5, 1.4),
    system_record(12, 3.0, 6.0, 1_000_000_110.0, cpu_percent=120.0, rss_mb=820.0, cuda_allocated_mb=None,
                  gpu_util=None),
]


def make_run(tmp_path, name="resumed", records=RESUMED, **config):
    run = RunStore(tmp_path / "runs").create(tiny_config(**config), name=name)
    run.append_metrics(records)
    return run


def test_every_point_once_at_its_global_step_with_the_resume_applied(tmp_path):
    result = export_tensorboard(make_run(tmp_path), tmp_path / "tb")
    back = read_back(tmp_path / "tb")
    s = back.scalars
    assert [p[0] for p in s["train/loss"]] == [2, 4, 6, 8, 10, 12]
    assert [v for _, v in s["train/loss"]] == pytest.approx([2.0, 1.8, 1.6, 1.4, 1.2, 1.1])
    assert [v for _, v in s["train/acc"]] == pytest.approx([0.2, 0.3, 0.4, 0.5, 0.6, 0.65])
    assert all(v != SUPERSEDED_LOSS for tag in s for _, v in s[tag])
    # Every epoch once, in order, at its own global step.
    assert [p[0] for p in s["test/acc"]] == [4, 8, 12]
    assert [v for _, v in s["test/acc"]] == pytest.approx([0.25, 0.55, 0.5])
    assert [v for _, v in s["test/loss"]] == pytest.approx([1.9, 1.5, 1.4])
    assert [p[0] for p in s["lr"]] == [4, 8, 12] and [v for _, v in s["lr"]] == pytest.approx([0.1] * 3)
    # System readings at their steps; null readings are not written at all.
    assert s["system/cpu_percent"] == [(4, 150.0), (12, 120.0)]
    assert [v for _, v in s["system/rss_mb"]] == [800.0, 820.0]
    assert "system/cuda_allocated_mb" not in s and "system/gpu_util" not in s and "system/wall_time" not in s
    assert result.epochs == 3
    assert result.scalars == sum(len(points) for points in s.values())


def test_the_config_is_the_hparams_session_in_the_runs_own_event_file(tmp_path):
    run = make_run(tmp_path, lr=0.07, weight_decay=None)
    result = export_tensorboard(run, tmp_path / "tb")
    assert event_files(tmp_path / "tb") == sorted((tmp_path / "tb").glob("events.out.tfevents.*"))  # no subdirectory
    assert len(event_files(tmp_path / "tb")) == 1
    back = read_back(tmp_path / "tb")
    hp = back.hparams
    assert hp["model.depth"] == 10 and hp["model.widen_factor"] == 1
    assert hp["lr"] == pytest.approx(0.07)
    assert hp["dataset"] == "synthetic" and hp["optimizer"] == "sgd-nesterov" and hp["schedule"] == "onecycle"
    assert hp["weight_decay"] == "none" and hp["data_dir"] == "none"
    assert hp["extensions"] == "[]"
    assert hp["augment"] == 1.0  # torch's hparams() writes a bool as a number
    assert set(hp) == set(result.hparams) == set(flatten_config(run.read_config().to_dict()))
    # The metrics: best and final test accuracy, as scalars in the same directory so the view has values.
    assert back.metric_tags == [BEST_TAG, FINAL_TAG]
    assert result.metrics == {BEST_TAG: 0.55, FINAL_TAG: 0.5}
    assert back.scalars[BEST_TAG] == [(12, pytest.approx(0.55))]
    assert back.scalars[FINAL_TAG] == [(12, pytest.approx(0.5))]


def test_wall_times_are_creation_time_plus_training_seconds(tmp_path):
    run = make_run(tmp_path)
    created = run.read_metrics()[0]["wall_time"]
    export_tensorboard(run, tmp_path / "tb")
    back = read_back(tmp_path / "tb")
    assert back.wall_times["train/loss"] == pytest.approx([created + 0.5 * n for n in (2, 4, 6, 8, 10, 12)])
    assert back.wall_times["system/cpu_percent"] == pytest.approx([created + 2.0, created + 6.0])


def test_a_second_export_replaces_the_first(tmp_path):
    run = make_run(tmp_path)
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "notes.txt").write_text("mine")
    export_tensorboard(run, tmp_path / "tb")
    export_tensorboard(run, tmp_path / "tb")
    assert len(event_files(tmp_path / "tb")) == 1
    assert [p[0] for p in read_back(tmp_path / "tb").scalars["test/acc"]] == [4, 8, 12]
    assert (tmp_path / "tb" / "notes.txt").read_text() == "mine"  # only event files are replaced


def test_a_run_without_epochs_has_its_session_and_no_metrics(tmp_path):
    result = export_tensorboard(make_run(tmp_path, records=[step(2, 0.5, 2.0, 0.2)]), tmp_path / "tb")
    back = read_back(tmp_path / "tb")
    assert result.metrics == {} and back.metric_tags == [] and result.epochs == 0
    assert back.hparams["model.depth"] == 10
    assert back.scalars == {"train/loss": [(2, 2.0)], "train/acc": [(2, pytest.approx(0.2))]}


def test_a_nan_accuracy_is_no_metric(tmp_path):
    records = [epoch(1, 4, 0.3), epoch(2, 8, float("nan"))]
    result = export_tensorboard(make_run(tmp_path, records=records), tmp_path / "tb")
    assert result.metrics == {BEST_TAG: 0.3, FINAL_TAG: 0.3}


def test_a_corrupt_config_raises_and_writes_nothing(tmp_path):
    run = make_run(tmp_path)
    run.config_path.write_text(json.dumps({"model": {"depth": 10}}))
    with pytest.raises(RunCorruptError):
        export_tensorboard(run, tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_unreadable_lines_are_skipped_and_reported(tmp_path):
    run = make_run(tmp_path)
    with open(run.metrics_path, "a", encoding="utf-8") as f:
        f.write("{torn\n")
    result = export_tensorboard(run, tmp_path / "tb")
    assert result.warning == "1 unreadable line in metrics.jsonl (skipped)"
    assert [p[0] for p in read_back(tmp_path / "tb").scalars["test/acc"]] == [4, 8, 12]


def test_flatten_config_dots_nested_keys_and_keeps_hparam_types():
    flat = flatten_config({"model": {"depth": 16, "inner": {"on": True}}, "lr": 0.1, "name": "x", "none": None,
                           "extensions": [{"from_epoch": 2, "epochs": 3}], "pair": (1, "a")})
    assert flat == {"model.depth": 16, "model.inner.on": True, "lr": 0.1, "name": "x", "none": "none",
                    "extensions": '[{"from_epoch": 2, "epochs": 3}]', "pair": '[1, "a"]'}


GPU_READINGS = {"cuda_allocated_mb": 512.0, "cuda_reserved_mb": 1024.0, "cuda_peak_mb": 900.0, "gpu_util": 87.0,
                "gpu_memory_util": 41.0, "gpu_memory_used_mb": 3000.0, "gpu_temp_c": 64.0, "gpu_power_w": 250.5}


def test_gpu_readings_become_system_scalars_when_present(tmp_path):
    """A run trained on a GPU: every cuda_* and gpu_* reading is a system/<field> scalar at its step."""
    records = [step(2, 0.5, 2.0, 0.2), epoch(1, 4, 0.25, 1.9),
               system_record(4, 1.0, 2.0, 1_000_000_002.0, cpu_percent=99.0, rss_mb=700.0, **GPU_READINGS),
               system_record(8, 2.0, 4.0, 1_000_000_004.0, cpu_percent=98.0, rss_mb=701.0,
                             **{field: value + 1 for field, value in GPU_READINGS.items()})]
    export_tensorboard(make_run(tmp_path, "gpu", records), tmp_path / "tb")
    s = read_back(tmp_path / "tb").scalars
    for field, value in GPU_READINGS.items():
        assert [point for point, _ in s[f"system/{field}"]] == [4, 8], field
        assert [v for _, v in s[f"system/{field}"]] == pytest.approx([value, value + 1]), field
