"""Tests for the training loop: series, stop, exact resume, divergence, failures, compile, data, system readings."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from tiny_runs import stop_at, epochs_of, steps_of, tiny_config
from wrn_core.engine import build as engine_build
from wrn_core.engine.loop import train_run
from wrn_core.config import WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import Progress


def test_records_the_four_series_every_epoch(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(), "series")
    progress: list[Progress] = []
    assert train_run(run, on_progress=progress.append) == "finished"
    epochs = epochs_of(run)
    assert [r["epoch"] for r in epochs] == [1, 2]
    for record in epochs:
        for key in ("train_acc", "train_loss", "test_acc", "test_loss", "lr", "epoch_seconds", "images_per_s"):
            assert record[key] is not None and math.isfinite(record[key]), key
        assert 0.0 <= record["train_acc"] <= 1.0 and 0.0 <= record["test_acc"] <= 1.0
        assert record["peak_mem_mb"] is None  # CPU: no CUDA memory to report
    steps = steps_of(run)
    # 10 steps per epoch, logged every 3 steps and at each epoch's last step.
    assert [r["step"] for r in steps] == [3, 6, 9, 10, 12, 15, 18, 20]
    assert steps[3]["epoch"] == pytest.approx(1.0)
    status = run.read_status()
    assert status["status"] == "finished" and status["epoch"] == 2
    assert status["best_test_acc"] == max(r["test_acc"] for r in epochs)
    assert status["final_test_acc"] == epochs[-1]["test_acc"]
    assert status["params"] == 77850
    assert progress[-1].phase == "done" and progress[-1].step == 20 and progress[-1].total_steps == 20
    assert {p.phase for p in progress} >= {"training", "evaluating", "done"}


def test_stop_takes_effect_within_one_batch(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(log_every=1), "stop")
    stop = threading.Event()
    seen = []

    def hook(progress: Progress) -> None:
        if progress.phase == "training" and progress.step == 4:
            seen.append(progress.step)
            stop.set()

    assert train_run(run, stop_event=stop, on_progress=hook) == "stopped"
    assert seen == [4]
    checkpoint = run.load_checkpoint()
    assert checkpoint["step"] == 4 and checkpoint["batch_in_epoch"] == 4 and checkpoint["epoch"] == 0
    status = run.read_status()
    assert status["status"] == "stopped" and "resume" in status["message"]
    assert max(r["step"] for r in steps_of(run)) == 4


@pytest.mark.parametrize("stop_step", [20, 13], ids=["after-epoch-2", "mid-epoch-2"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, stop_step):
    store = RunStore(tmp_path)
    config = tiny_config(epochs=4, model=WRNConfig(depth=10, widen_factor=1, dropout=0.3), log_every=1)
    whole = store.create(config, "whole")
    assert train_run(whole) == "finished"

    parts = store.create(config, "parts")
    stop, hook = stop_at(stop_step)
    assert train_run(parts, stop_event=stop, on_progress=hook) == "stopped"
    assert parts.load_checkpoint()["step"] == stop_step
    assert train_run(parts, resume=True) == "finished"

    keys = ("epoch", "step", "images_seen", "train_loss", "train_acc", "test_loss", "test_acc", "lr")
    expected = [{k: r[k] for k in keys} for r in epochs_of(whole)]
    got = [{k: r[k] for k in keys} for r in epochs_of(parts)]
    assert len(got) == 4
    for want, have in zip(expected, got):
        for key in keys:
            assert have[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    assert [r["step"] for r in steps_of(parts)] == [r["step"] for r in steps_of(whole)]


def test_resume_to_more_epochs_continues_the_curve(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=1, schedule="constant"), "more")
    assert train_run(run) == "finished"
    run.write_config(run.read_config().replace(epochs=2))
    assert train_run(run, resume=True) == "finished"
    assert [r["epoch"] for r in epochs_of(run)] == [1, 2]


class _NaNAfter(torch.nn.Module):
    """Wraps a model and returns NaN logits from the given call on (injected divergence)."""

    def __init__(self, model, after: int):
        super().__init__()
        self.model, self.after, self.calls = model, after, 0

    def forward(self, x):
        self.calls += 1
        out = self.model(x)
        if self.training and self.calls >= self.after:
            return out * float("nan")
        return out


def test_non_finite_loss_ends_as_diverged_naming_the_step(tmp_path, monkeypatch):
    real_build = engine_build.build_model
    monkeypatch.setattr(engine_build, "build_model", lambda cfg: _NaNAfter(real_build(cfg), after=5))
    run = RunStore(tmp_path).create(tiny_config(log_every=4), "nan")
    assert train_run(run) == "diverged"
    status = run.read_status()
    assert status["status"] == "diverged"
    assert "step 5" in status["message"]
    # The point logged before the divergence (step 4) is kept.
    assert [r["step"] for r in steps_of(run)] == [4]


class _RaiseAt(torch.nn.Module):
    def __init__(self, model, at: int, error: Exception):
        super().__init__()
        self.model, self.at, self.error, self.calls = model, at, error, 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.at:
            raise self.error
        return self.model(x)


def test_out_of_memory_fails_with_a_hint_and_the_process_keeps_working(tmp_path, monkeypatch):
    real_build = engine_build.build_model
    monkeypatch.setattr(
        engine_build, "build_model", lambda cfg: _RaiseAt(real_build(cfg), 3, torch.OutOfMemoryError("CUDA out of memory"))
    )
    store = RunStore(tmp_path)
    run = store.create(tiny_config(log_every=1), "oom")
    assert train_run(run) == "failed"
    status = run.read_status()
    assert "out of memory" in status["message"] and "smaller batch" in status["message"]
    assert status["error_kind"] == "oom"
    assert [r["step"] for r in steps_of(run)] == [1, 2]
    monkeypatch.setattr(engine_build, "build_model", real_build)
    assert train_run(store.create(tiny_config(epochs=1), "after")) == "finished"


def test_unexpected_error_fails_with_traceback_and_keeps_points(tmp_path, monkeypatch):
    real_build = engine_build.build_model
    monkeypatch.setattr(engine_build, "build_model", lambda cfg: _RaiseAt(real_build(cfg), 4, RuntimeError("boom\nsecond line")))
    run = RunStore(tmp_path).create(tiny_config(log_every=1), "boom")
    assert train_run(run) == "failed"
    status = run.read_status()
    assert status["message"].startswith("RuntimeError: boom") and "\n" not in status["message"]
    assert "Traceback" in run.error_path.read_text()
    assert [r["step"] for r in steps_of(run)] == [1, 2, 3]


def test_bad_data_input_fails_as_input_error(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(subset_train=100000), "subset")
    assert train_run(run) == "failed"
    status = run.read_status()
    assert status["error_kind"] == "input" and status["status"] == "failed"


def test_batch_larger_than_dataset_trains_on_one_batch_of_everything(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(batch_size=1000, epochs=1), "bigbatch")
    assert train_run(run) == "finished"
    assert [(r["step"], r["images_seen"]) for r in epochs_of(run)] == [(1, 320)]


def test_cpu_training_is_reproducible(tmp_path):
    store = RunStore(tmp_path)
    a, b = store.create(tiny_config(epochs=1), "a"), store.create(tiny_config(epochs=1), "b")
    train_run(a)
    train_run(b)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "epoch_seconds", "images_per_s", "wall_time", "boundary_s", "checkpoint_wait_s")} for r in rs if r["kind"] != "system"]
    assert strip(a.read_metrics()) == strip(b.read_metrics())


def test_dataset_decides_the_number_of_classes(tmp_path):
    config = tiny_config(epochs=1, model=WRNConfig(depth=10, widen_factor=1, num_classes=3))
    run = RunStore(tmp_path).create(config, "classes")
    assert train_run(run) == "finished"
    assert run.read_config().model.num_classes == 10





def _image_folder(root, per_class=12, test_per_class=4, classes=2):
    from PIL import Image

    from wrn_core.data import make_synthetic

    ds = make_synthetic(per_class * classes, test_per_class * classes, seed=0, num_classes=classes)
    for split, images, labels in (("train", ds.train_images, ds.train_labels), ("test", ds.test_images, ds.test_labels)):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / ds.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return root


def test_an_unreadable_image_is_skipped_and_counted(tmp_path):
    root = _image_folder(tmp_path / "images")
    broken = sorted((root / "train" / "disk").iterdir())[0]
    broken.write_bytes(b"\x89PNG this is not an image")
    notices = []
    config = tiny_config(dataset="folder", data_dir=str(root), epochs=1, batch_size=8)
    run = RunStore(tmp_path / "runs").create(config, "skip")
    assert train_run(run, on_progress=lambda p: p.notice and notices.append(p.notice)) == "finished"
    (event,) = [r for r in run.read_metrics() if r["kind"] == "event" and r["event"] == "data"]
    assert event["skipped"] == 1 and "train/disk/" in event["message"]
    assert notices == [event["message"]] and notices[0].startswith("skipped 1 unreadable image")
    assert epochs_of(run)[0]["images_seen"] == 16  # 23 readable training images, batches of 8, last dropped


def test_a_class_left_without_readable_images_fails_with_one_line(tmp_path):
    root = _image_folder(tmp_path / "images")
    for path in (root / "train" / "square").iterdir():
        path.write_bytes(b"garbage")
    run = RunStore(tmp_path / "runs").create(tiny_config(dataset="folder", data_dir=str(root), epochs=1), "empty")
    assert train_run(run) == "failed"
    status = run.read_status()
    assert status["error_kind"] == "input" and "every image of class square" in status["message"]


def test_system_records_carry_cpu_and_memory_on_the_cpu(tmp_path):
    from wrn_core.engine.monitor import system_usage

    run = RunStore(tmp_path).create(tiny_config(epochs=2), "system")
    assert train_run(run) == "finished"
    records = run.read_metrics()
    system = [r for r in records if r["kind"] == "system"]
    assert len(system) >= 3  # at the start and after each epoch, more on long epochs
    for record in system:
        assert record["rss_mb"] > 50 and record["cpu_percent"] >= 0
        assert record["cuda_allocated_mb"] is None and record["gpu_util"] is None  # no GPU: not an error
    # Training came between the first reading and the later ones: they measured CPU work (a constant 0 fails).
    assert max(record["cpu_percent"] for record in system[1:]) > 0
    summary = system_usage(records)
    assert summary["peak_rss_mb"] == max(r["rss_mb"] for r in system) and summary["peak_cuda_mb"] is None
