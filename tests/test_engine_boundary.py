"""Tests for the epoch boundary: one compiled graph, plans drawn ahead on the device, checkpoints off the loop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import trainer_env
from tiny_runs import epochs_of, steps_of, tiny_config
from wrn_core.data import DeviceLoader
from wrn_core.engine.checkpoint import CheckpointWriter, snapshot
from wrn_core.engine.loop import train_run
from wrn_core.engine.resume import prepare_resume
from wrn_core.store import RunStore, RunWriteError

REPO = Path(__file__).resolve().parent.parent


def test_a_compiled_run_compiles_the_train_graph_once_and_never_recompiles(tmp_path):
    """The compiled path (used on GPUs) runs end to end on the CPU and logs its compile cost once.
    Evaluations between epochs run through the eager module: another batch shape and eval mode
    would otherwise compile a second graph (dynamo's counters count every graph it captures).
    The suite's one CPU compile: it costs tens of seconds on a 2-core machine."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    run = RunStore(tmp_path).create(tiny_config(compile=True, epochs=3, eval_batch_size=50), "compiled")
    assert train_run(run) == "finished", run.read_status()
    assert len(epochs_of(run)) == 3
    assert counters["stats"]["unique_graphs"] == 1
    assert counters["frames"]["ok"] == 1  # one frame compiled: no recompilation for later steps or epochs
    events = [r for r in run.read_metrics() if r["kind"] == "event"]
    assert [e["event"] for e in events] == ["compile"]  # one warm-up, recorded at the step it happened
    assert events[0]["step"] == 1 and events[0]["seconds"] > 0
    assert "torch.compile" in events[0]["message"]


def test_epoch_plans_are_drawn_ahead_and_stay_on_the_loaders_device():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    loader = DeviceLoader(images, labels, 8, [0.5] * 3, [0.25] * 3, train=True, augment=True, seed=3)
    fresh = DeviceLoader(images, labels, 8, [0.5] * 3, [0.25] * 3, train=True, augment=True, seed=3)
    loader.prefetch(1)
    assert 1 in loader._plans
    first = [x for x, _ in loader.epoch(1)]
    # The prefetched plan is the plan: the same batches as a loader that drew it on demand.
    assert all(torch.equal(a, b) for a, b in zip(first, (x for x, _ in fresh.epoch(1))))
    order, rows, cols = loader._plan_for(1)
    assert {t.device for t in (order, rows, cols)} == {images.device}
    assert all(x.device == images.device for x in first)


def _writer_on_a_full_disk(tmp_path, name: str):
    """A held run whose checkpoint writes fail as a full disk does, and a writer for it."""
    run = RunStore(tmp_path).create(tiny_config(), name, hold="training")

    def full(state):
        raise RunWriteError(28, "no space left on device while writing the checkpoint")

    run.save_checkpoint = full  # type: ignore[method-assign]
    return run, CheckpointWriter(run)


def test_a_failed_background_write_surfaces_in_the_loop(tmp_path):
    run, writer = _writer_on_a_full_disk(tmp_path, "bg")
    writer.submit({"model": {}, "step": 0})
    with pytest.raises(RunWriteError, match="no space left"):
        writer.wait()
    assert writer.wait() == pytest.approx(0.0, abs=1.0)  # reported once, then nothing pending
    run.release()


def test_a_snapshot_does_not_change_when_training_goes_on():
    weights = {"w": torch.ones(3), "nested": [torch.zeros(2)]}
    copy = snapshot(weights)
    weights["w"].add_(1.0)
    weights["nested"][0].add_(5.0)
    assert torch.equal(copy["w"], torch.ones(3)) and torch.equal(copy["nested"][0], torch.zeros(2))


# A trainer whose second checkpoint write stalls before it reaches the disk: the test kills it there.
STALLED_WRITE = textwrap.dedent("""
    import os, sys, time
    import wrn_core.store.run as run_module
    from wrn_core.cli import main

    real = run_module.write_atomic
    calls = []

    def stalling(path, data, what=None):
        if what == "the checkpoint":
            calls.append(path)
            if len(calls) == 2:
                open(sys.argv[1], "w").close()  # the test's cue: the write of epoch 2 is under way
                time.sleep(300)
        return real(path, data, what)

    run_module.write_atomic = stalling
    sys.exit(main(sys.argv[2:]))
""")


def test_kill_during_a_background_checkpoint_write_loses_only_that_checkpoint(tmp_path):
    args = ["train", "--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic", "--synthetic-train", "320",
            "--synthetic-test", "100", "--epochs", "3", "--batch-size", "32", "--eval-batch-size", "100", "--lr", "0.05",
            "--schedule", "onecycle", "--device", "cpu", "--log-every", "3", "--runs-dir", str(tmp_path), "--quiet"]
    cue = tmp_path / "writing"
    env = trainer_env(PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", STALLED_WRITE, str(cue), *args, "--name", "killed"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not cue.exists():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the second checkpoint write never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = RunStore(tmp_path)
    run = store.get("killed")
    assert run.read_status()["status"] == "interrupted"
    assert [r["epoch"] for r in epochs_of(run)] == [1, 2]  # epoch 2 was recorded; its checkpoint was not
    assert run.load_checkpoint()["epoch"] == 1  # the last completed checkpoint is intact
    run.acquire("training")
    prepare_resume(run)
    assert train_run(run, resume=True) == "finished"
    whole = store.create(tiny_config(epochs=3), "whole")
    assert train_run(whole) == "finished"
    assert [r["epoch"] for r in epochs_of(run)] == [1, 2, 3]  # every epoch once: the replayed one replaces its first try
    assert [r["step"] for r in steps_of(run)] == [r["step"] for r in steps_of(whole)]
    for got, want in zip(epochs_of(run), epochs_of(whole)):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["test_acc"] == pytest.approx(want["test_acc"], abs=1e-9)
    assert json.loads(run.status_path.read_text())["status"] == "finished"


def test_a_failed_background_write_is_noticed_without_waiting_for_the_next_boundary(tmp_path):
    run, writer = _writer_on_a_full_disk(tmp_path, "soon")
    writer.raise_if_failed()  # nothing written yet: nothing to say
    writer.submit({"model": {}, "step": 0})
    writer._thread.join()
    with pytest.raises(RunWriteError, match="no space left"):
        writer.raise_if_failed()
    run.release()


class BoundaryClock:
    """perf_counter for the loop and the checkpoint writer, moved only by what a test says takes time (and 1 µs
    per read): an evaluation, a write the test holds. It tells the held write when the loop has begun waiting
    for it (the first read inside CheckpointWriter.wait with a write under way), so the wait is measured whole."""

    TICK = 1e-6

    def __init__(self) -> None:
        self.now = 100.0
        self.armed = False
        self.waiting = threading.Event()  # the loop has started waiting for the write under way
        self._lock = threading.Lock()

    def perf_counter(self) -> float:
        with self._lock:
            self.now += self.TICK
            value = self.now
            if self.armed:
                self.armed = False
                self.waiting.set()
        return value

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """The BoundaryClock in place of time.perf_counter for the loop and the checkpoint writer."""
    import wrn_core.engine.checkpoint as checkpoint_module
    import wrn_core.engine.loop as loop_module

    fake = BoundaryClock()
    patched_time = SimpleNamespace(perf_counter=fake.perf_counter, monotonic=time.monotonic, time=time.time, sleep=time.sleep)
    monkeypatch.setattr(loop_module, "time", patched_time)
    monkeypatch.setattr(checkpoint_module, "time", patched_time)
    real_wait = CheckpointWriter.wait

    def wait(writer):
        fake.armed = writer._thread is not None  # a write is under way: its end may come once waiting has begun
        return real_wait(writer)

    monkeypatch.setattr(CheckpointWriter, "wait", wait)
    return fake


def _held_first_write(run, clock: BoundaryClock) -> None:
    """The run's first checkpoint write takes 5 s on the clock and cannot end before someone waits for it."""
    real_save, writes = run.save_checkpoint, []

    def save(state):
        writes.append(state["step"])
        if len(writes) == 1:
            assert clock.waiting.wait(timeout=300), "nobody waited for the held checkpoint write"
            clock.advance(5.0)
        real_save(state)

    run.save_checkpoint = save  # type: ignore[method-assign]


def test_a_submit_waits_only_for_a_write_still_going_and_says_how_long(tmp_path, clock):
    run = RunStore(tmp_path).create(tiny_config(), "writer", hold="training")
    _held_first_write(run, clock)
    writer = CheckpointWriter(run)
    assert writer.submit({"model": {}, "step": 1}) == pytest.approx(0.0, abs=1e-4)  # nothing before it
    assert writer.submit({"model": {}, "step": 2}) == pytest.approx(5.0, abs=1e-4)  # the first was still being written
    writer.wait()  # the second has been written: the next submit has nothing to wait for
    assert writer.submit({"model": {}, "step": 3}) == pytest.approx(0.0, abs=1e-4)
    writer.wait()
    assert run.load_checkpoint()["step"] == 3
    run.release()


def test_boundary_s_and_checkpoint_wait_s_say_what_the_boundary_waited_for(tmp_path, clock, monkeypatch):
    """Epoch 1's checkpoint is still being written when epoch 2 ends (5 s more); every evaluation takes 3 s."""
    import wrn_core.engine.loop as loop_module

    real_evaluate = loop_module.evaluation_pass

    def evaluate(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        clock.advance(3.0)
        return result

    monkeypatch.setattr(loop_module, "evaluation_pass", evaluate)
    run = RunStore(tmp_path).create(tiny_config(epochs=3), "boundary")
    _held_first_write(run, clock)
    assert train_run(run) == "finished"
    got = [(r["boundary_s"], r["checkpoint_wait_s"]) for r in epochs_of(run)]
    # Evaluation is not the boundary's; the held write is waited for whole, at the next boundary only.
    assert got == [pytest.approx((0.0, 0.0), abs=1e-4), pytest.approx((5.0, 5.0), abs=1e-4),
                   pytest.approx((0.0, 0.0), abs=1e-4)]
    assert [r["epoch_seconds"] >= 3.0 for r in epochs_of(run)] == [True, True, True]
