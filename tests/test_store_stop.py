"""The stop request in a run directory: written by anyone, polled by the trainer at logging points, cleared at start."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from tiny_runs import tiny_config
from wrn_core.store import RunStore
from wrn_core.store.records import FINISHED, STOPPED

REPO = Path(__file__).resolve().parents[1]


def test_request_is_a_file_anyone_can_write_and_clear(tmp_path):
    store = RunStore(tmp_path)
    held = store.create(tiny_config(), "r", hold="training")  # a trainer holds the lock
    other = store.get("r")  # another reader/writer: no lock needed to ask
    assert not other.stop_requested()
    other.request_stop(by="test")
    assert held.stop_requested() and other.stop_path.name == "stop.request"
    held.clear_stop_request()
    assert not other.stop_requested()
    held.clear_stop_request()  # clearing twice is fine
    held.release()


def _train_in_thread(run):
    from wrn_core.engine.loop import train_run

    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", train_run(run)), daemon=True)
    thread.start()
    return thread, result


def test_a_request_from_another_process_stops_the_trainer_with_a_checkpoint(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(tiny_config(epochs=200, log_every=2), "r")
    thread, result = _train_in_thread(run)
    deadline = time.monotonic() + 120
    while not any(r["kind"] == "step" for r in run.read_metrics()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.is_alive(), "the run ended before the stop was asked for"
    asked = subprocess.run(
        [sys.executable, "-c", f"from wrn_core.store import RunStore; RunStore({str(tmp_path)!r}).get('r').request_stop(by='test')"],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert asked.returncode == 0, asked.stderr
    thread.join(120)
    assert result["status"] == STOPPED
    status = run.read_status()
    assert status["status"] == STOPPED and status["epoch"] < 200
    state = run.load_checkpoint()
    assert state["step"] == status["step"]  # the checkpoint holds the exact position it stopped at
    assert not run.stop_requested()  # answered, so a resume is not stopped at once


def test_a_request_left_from_before_is_cleared_when_training_starts(tmp_path):
    from wrn_core.engine.loop import train_run

    store = RunStore(tmp_path)
    run = store.create(tiny_config(epochs=1), "r")
    run.request_stop(by="an earlier stop")
    assert train_run(run) == FINISHED
    assert not run.stop_requested()
    status = run.read_status()
    assert status["executor"] == "local" and status["host"]


def test_the_job_manager_asks_a_run_trained_on_another_host_through_its_directory(tmp_path):
    import json
    import os

    from wrn_core.jobs import JobManager

    store = RunStore(tmp_path)
    run = store.create(tiny_config(), "r", hold="training")
    # The lock's owner note as a trainer on another machine writes it (no pid of ours to signal).
    os.ftruncate(run.lock.fd, 0)
    os.pwrite(run.lock.fd, json.dumps({"pid": 4242, "host": "another-node", "role": "training", "since": 0}).encode(), 0)
    manager = JobManager(tmp_path)
    try:
        assert manager.stop("r") is True
    finally:
        manager.shutdown(timeout=5)
    assert run.stop_requested()
    run.release()


def test_runs_stop_refuses_a_run_that_is_not_training_in_one_line(tmp_path):
    store = RunStore(tmp_path)
    store.create(tiny_config(), "idle")
    done = subprocess.run([sys.executable, "-m", "wrn_core", "runs", "stop", "idle", "--runs-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "not training" in done.stderr
    assert not store.get("idle").stop_requested()


def test_a_request_stops_every_rank_of_a_torchrun_run_at_one_step(tmp_path):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "wrn_core",
               "train", "--blocks", "1", "--widen-factor", "1", "--synthetic-train", "256", "--synthetic-test", "64",
               "--batch-size", "32", "--device", "cpu", "--log-every", "2", "--epochs", "200", "--name", "ddp",
               "--runs-dir", str(runs), "--quiet"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        store = RunStore(runs)
        deadline = time.monotonic() + 240
        while not (store.exists("ddp") and any(r["kind"] == "step" for r in store.get("ddp").read_metrics())):
            assert time.monotonic() < deadline and proc.poll() is None, "the torchrun run never trained"
            time.sleep(0.1)
        store.get("ddp").request_stop(by="test")
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    run = store.get("ddp")
    status = run.read_status()
    assert status["status"] == STOPPED and status["world_size"] == 2
    state = run.load_checkpoint()
    assert state["step"] == status["step"] and len(state["rng_ranks"]) == 2  # both ranks stopped at that step
    assert not run.stop_requested()


def test_a_prune_request_ends_the_run_pruned_keeps_its_curve_and_a_sweep_does_not_resume_it(tmp_path):
    from wrn_core.engine.loop import train_run
    from wrn_core.engine.resume import prepare_resume
    from wrn_core.store.records import PRUNED
    from wrn_core.sweeps import is_done, make_sweep, next_cells

    store = RunStore(tmp_path)
    sweep = make_sweep("s", tiny_config(epochs=50, log_every=2), [1], [1], seeds=[0, 1])
    pruned_cell, other_cell = sweep.cells()
    run = store.create(pruned_cell.config, pruned_cell.run, sweep="s")
    thread, result = _train_in_thread(run)
    deadline = time.monotonic() + 180
    while not any(r["kind"] == "epoch" for r in run.read_metrics()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert thread.is_alive(), "the run ended before it was pruned"
    store.get(run.name).request_stop(by="pruner", ends=PRUNED, message="test accuracy below the median at epoch 1")
    thread.join(180)
    assert result["status"] == PRUNED
    status = run.status()
    assert status.status == PRUNED and 1 <= status.epoch < 50
    assert "below the median at epoch 1" in status.message and f"resume {run.name}" in status.message
    assert run.load_checkpoint()["step"] == status.step  # its checkpoint, at the position it stopped
    curve = [r["test_acc"] for r in run.read_metrics() if r["kind"] == "epoch"]
    assert len(curve) == status.epoch  # the curve up to the prune is kept
    assert not run.stop_requested()
    # Ended: `sweep --resume` leaves it (the other cell is still to train), and it counts as done.
    assert [c.run for c in next_cells(store, sweep)] == [other_cell.run]
    store.create(other_cell.config, other_cell.run, sweep="s").write_status("finished")
    assert next_cells(store, sweep) == [] and is_done(store, sweep)
    # By hand it is extended like any run: `resume NAME --epochs E`.
    run.acquire()
    plan = prepare_resume(run, epochs=status.epoch + 1)
    assert plan.config.epochs == status.epoch + 1
    run.release()
    assert train_run(run, resume=True) == "finished"
    assert len([r for r in run.read_metrics() if r["kind"] == "epoch"]) == status.epoch + 1


def test_a_stop_request_asks_only_for_stopped_or_pruned(tmp_path):
    import json

    import pytest

    store = RunStore(tmp_path)
    run = store.create(tiny_config(), "r")
    with pytest.raises(ValueError, match="stopped, pruned"):
        run.request_stop(ends="finished")
    assert not run.stop_requested()
    run.stop_path.write_text(json.dumps({"by": "an older version"}))  # a request from before it said what it ends as
    assert run.read_stop_request() == ("stopped", "")
