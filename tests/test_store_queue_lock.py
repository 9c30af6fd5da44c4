"""A run queued by a remote queue (a Ray sweep's driver) reads `queued` while that queue holds its lock, for any reader."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from wrn_core.store import RunStore
from wrn_core.store.lock import ROLE_QUEUED, queue_lock_name
from wrn_core.store.records import INTERRUPTED, QUEUED, RUNNING
from tiny_runs import tiny_config

# A queue's process: holds the queue lock in the runs folder until killed.
QUEUE_HOLDER = """
import sys, time
from pathlib import Path
from wrn_core.store.lock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire("queued", "sweep grid", wait_s=0.0)
print("held", flush=True)
time.sleep(600)
"""


def _queued_by_remote_queue(tmp_path, lock_name: str):
    store = RunStore(tmp_path)
    run = store.create(tiny_config(), name="grid-n1-k1-s0")
    run.acquire(ROLE_QUEUED, wait_s=0.0)
    run.write_status(QUEUED, "queued on Ray: waiting for a worker", executor="ray", queue_lock=lock_name)
    run.release()  # a trainer on another node takes run.lock itself when Ray starts it
    return store, run


def test_a_remotely_queued_run_reads_queued_while_its_queue_lives_and_interrupted_after(tmp_path):
    name = queue_lock_name("grid")
    store, run = _queued_by_remote_queue(tmp_path, name)
    holder = subprocess.Popen([sys.executable, "-c", QUEUE_HOLDER, str(tmp_path / name)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        status = run.read_status()
        assert status["status"] == QUEUED and status["owner"]["pid"] == holder.pid
        before = run.status_path.read_bytes()
        assert store.reconcile() == []  # `runs list` and every page reconcile: a live queue's run is left alone
        assert run.status_path.read_bytes() == before
        assert store.summary(run.name).status == QUEUED
        assert store.names() == [run.name]  # the queue's lock file is never listed as a run
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert run.read_status()["status"] == INTERRUPTED  # the queue is gone: nobody will start it
    assert store.reconcile() == [run.name]
    assert json.loads(run.status_path.read_text())["status"] == INTERRUPTED


def test_a_queue_lock_name_outside_the_runs_folder_is_ignored(tmp_path):
    outside = tmp_path / "elsewhere.queue.lock"
    outside.touch()
    for bogus in ("../elsewhere.queue.lock", str(outside), "grid.sweep.json", 7):
        store, run = _queued_by_remote_queue(tmp_path / str(abs(hash(str(bogus)))), bogus)
        assert run.read_status()["status"] == INTERRUPTED, bogus


def test_a_running_status_never_borrows_the_queue_lock(tmp_path):
    """queue_lock stays in status.json once a trainer has started; only a queued status consults it."""
    name = queue_lock_name("grid")
    store, run = _queued_by_remote_queue(tmp_path, name)
    run.acquire("training", wait_s=0.0)
    run.write_status(RUNNING, "training")
    run.release()  # the trainer died without writing its end
    holder = subprocess.Popen([sys.executable, "-c", QUEUE_HOLDER, str(tmp_path / name)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run.read_status()["status"] == INTERRUPTED
    finally:
        holder.kill()
        holder.wait()
