"""Tests for the run directory: the lock, append-only metrics, derived statuses, damaged files, full disks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import (
    Run,
    RunBusyError,
    RunCorruptError,
    RunStore,
    RunStoreError,
    RunWriteError,
    parse_metrics,
    validate_run_name,
)


def _config() -> TrainConfig:
    return TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=2)


def hold_in_subprocess(run_path: Path, role: str = "training") -> subprocess.Popen:
    """Another process that takes the run's lock and keeps it until killed; returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from wrn_core.store import Run
        run = Run({str(run_path)!r})
        run.acquire({role!r})
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_create_writes_config_and_a_queued_status_owned_by_its_creator(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "first", hold="queued")
    assert run.read_config() == _config()
    status = run.read_status()
    assert status["status"] == "queued" and status["model_name"] == "WRN-10-1"
    assert status["owner"]["pid"] == os.getpid() and status["owner"]["role"] == "queued"
    assert store.names() == ["first"]
    run.release()
    # Nobody holds it any more: a queued run without its owner is interrupted, and says so.
    released = run.read_status()
    assert released["status"] == "interrupted" and "resume" in released["message"]


def test_generated_names_are_unique(tmp_path):
    store = RunStore(tmp_path)
    names = {store.create(_config()).name for _ in range(3)}
    assert len(names) == 3
    assert all(name.startswith("wrn-10-1-synthetic-") for name in names)


def test_duplicate_name_refused(tmp_path):
    store = RunStore(tmp_path)
    store.create(_config(), "same")
    with pytest.raises(RunStoreError, match="already exists"):
        store.create(_config(), "same")


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "", ".", "..", "/abs", ".hidden", "x" * 101, "a..b", "sp ace"])
def test_unsafe_names_refused(tmp_path, name):
    with pytest.raises(RunStoreError, match="invalid run name"):
        validate_run_name(name)
    if name:  # an empty name asks create() for a generated one
        with pytest.raises(RunStoreError):
            RunStore(tmp_path).create(_config(), name)
    assert not (tmp_path.parent / "evil").exists()


# ---------------------------------------------------------------------------------------------
# The lock


def test_a_second_writer_is_refused_naming_the_holder_and_kill_9_frees_the_run(tmp_path):
    run = RunStore(tmp_path).create(_config(), "locked")
    holder = hold_in_subprocess(run.path)
    try:
        with pytest.raises(RunBusyError, match=rf"run 'locked' is being trained by pid {holder.pid} on "):
            Run(run.path).acquire("training", wait_s=0.2)
        run.write_status("running", "training", pid=holder.pid)
        assert run.read_status()["status"] == "running"
        assert run.owner().pid == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the lock with the process: the run is interrupted at once, and free.
    status = run.read_status()
    assert status["status"] == "interrupted" and str(holder.pid) in status["message"]
    assert run.owner() is None
    other = Run(run.path)
    other.acquire("training", wait_s=0.0)
    other.release()


def test_the_lock_conflicts_within_one_process_too(tmp_path):
    run = RunStore(tmp_path).create(_config(), "twice", hold="training")
    with pytest.raises(RunBusyError, match="being trained by pid"):
        Run(run.path).acquire("training", wait_s=0.1)
    run.acquire("training")  # the holder asking again is fine
    run.release()


def test_reconcile_persists_interrupted_only_for_runs_nobody_holds(tmp_path):
    store = RunStore(tmp_path)
    dead = store.create(_config(), "dead")
    dead.write_status("running", pid=12345678)
    alive = store.create(_config(), "alive")
    holder = hold_in_subprocess(alive.path)
    try:
        alive.write_status("running", pid=holder.pid)
        mine = store.create(_config(), "mine", hold="training")
        mine.write_status("running", pid=os.getpid())
        assert store.reconcile() == ["dead"]
        assert json.loads(dead.status_path.read_text())["status"] == "interrupted"
        assert json.loads(alive.status_path.read_text())["status"] == "running"
        assert json.loads(mine.status_path.read_text())["status"] == "running"
        mine.release()
    finally:
        holder.kill()
        holder.wait()


def test_delete_refuses_a_held_run_and_removes_a_free_one(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "busy")
    holder = hold_in_subprocess(run.path)
    try:
        with pytest.raises(RunBusyError, match=f"being trained by pid {holder.pid}.*stop it before deleting"):
            store.delete("busy")
        assert store.exists("busy")
    finally:
        holder.kill()
        holder.wait()
    store.delete("busy")
    assert store.names() == []
    with pytest.raises(RunStoreError, match="no run named"):
        store.get("busy")


# ---------------------------------------------------------------------------------------------
# metrics.jsonl


def test_metrics_append_and_torn_last_line(tmp_path):
    run = RunStore(tmp_path).create(_config(), "torn")
    run.append_metrics([{"kind": "step", "step": 1}, {"kind": "step", "step": 2}])
    with open(run.metrics_path, "a") as f:
        f.write('{"kind": "step", "st')  # a crash mid-write
    log = run.read_metrics_log()
    assert [r.get("step") for r in log.records] == [None, 1, 2] and log.unreadable == 1  # "created" comes first
    # The next append must not glue onto the torn fragment, which stays in the file.
    run.append_metrics([{"kind": "step", "step": 3}])
    assert [r["step"] for r in run.read_metrics() if r["kind"] == "step"] == [1, 2, 3]
    assert '{"kind": "step", "st\n' in run.metrics_path.read_text()
    assert run.read_metrics_log().warning == "1 unreadable line in metrics.jsonl (skipped)"


def test_resume_markers_supersede_later_points_and_bad_records_are_counted():
    lines = [
        {"kind": "step", "step": 1}, {"kind": "step", "step": 2}, {"kind": "epoch", "epoch": 1, "step": 2},
        {"kind": "step", "step": 3}, {"kind": "step", "step": 4},  # trained past the checkpoint, then killed
        {"kind": "resume", "from_step": 2},
        {"kind": "step", "step": 3}, {"kind": "step", "step": None}, {"kind": "epoch", "epoch": "2", "step": 4},
        {"kind": "step", "step": 4}, {"kind": "epoch", "epoch": 2, "step": 4}, {"kind": "custom", "x": 1},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n[1, 2]\n"
    log = parse_metrics(text)
    kept = [(r["kind"], r.get("step"), r.get("epoch")) for r in log.records]
    assert kept == [("step", 1, None), ("step", 2, None), ("epoch", 2, 1), ("resume", None, None),
                    ("step", 3, None), ("step", 4, None), ("epoch", 4, 2), ("custom", None, None)]
    assert log.superseded == 2
    assert log.unreadable == 4  # the null step, the string epoch, the non-JSON line, the non-object
    assert log.warning == "4 unreadable lines in metrics.jsonl (skipped)"


# ---------------------------------------------------------------------------------------------
# status.json


def test_status_is_merged_and_replaced_atomically(tmp_path):
    run = RunStore(tmp_path).create(_config(), "status", hold="training")
    run.write_status("running", "go", epoch=1)
    run.write_status(best_test_acc=0.5)
    status = json.loads(run.status_path.read_text())
    assert status["status"] == "running" and status["epoch"] == 1 and status["best_test_acc"] == 0.5
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError):
        run.write_status("bogus")
    run.release()


def _two_epochs(run: Run) -> None:
    run.append_metrics([
        {"kind": "step", "step": 5, "images_seen": 160, "time": 1.0},
        {"kind": "epoch", "epoch": 1, "step": 5, "images_seen": 160, "time": 1.5, "test_acc": 0.4},
        {"kind": "epoch", "epoch": 2, "step": 10, "images_seen": 320, "time": 3.0, "test_acc": 0.3},
    ])


@pytest.mark.parametrize("damage", ["{not json", "", "[]", '{"status": "exploded"}'])
def test_an_unreadable_status_is_rebuilt_from_facts_and_never_invented(tmp_path, damage):
    run = RunStore(tmp_path).create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=4), "broken")
    _two_epochs(run)
    run.status_path.write_text(damage)
    status = run.read_status()
    assert status["status"] == "interrupted" and status["rebuilt"] is True
    assert status["message"].startswith("status.json was") and "rebuilt from metrics.jsonl: 2/4 epochs" in status["message"]
    assert (status["epoch"], status["epochs"], status["step"], status["images_seen"]) == (2, 4, 10, 320)
    assert (status["best_test_acc"], status["final_test_acc"], status["train_seconds"]) == (0.4, 0.3, 3.0)
    assert status["created_at"] is not None and status["model_name"] == "WRN-10-1"
    # The next write merges into the rebuilt status: nothing dropped, no 'failed' made up.
    run.acquire("training")
    run.write_status(params=77850)
    written = json.loads(run.status_path.read_text())
    assert written["status"] == "interrupted" and written["epoch"] == 2 and written["params"] == 77850
    assert written["created_at"] == status["created_at"] and written["best_test_acc"] == 0.4
    run.release()


def test_a_rebuilt_status_of_a_complete_run_reads_finished(tmp_path):
    run = RunStore(tmp_path).create(_config(), "complete")
    _two_epochs(run)
    run.status_path.unlink()
    assert run.read_status()["status"] == "finished"


# ---------------------------------------------------------------------------------------------
# config.json and listings


@pytest.mark.parametrize("content,fragment", [
    ("{oops", "config.json of run 'bad' is unreadable"),
    ("{}", "config.json of run 'bad' lacks model, dataset, optimizer, epochs, batch_size"),
    ('{"model": {"depth": 15, "widen_factor": 1}, "dataset": "synthetic", "optimizer": "sgd", "epochs": 1, "batch_size": 8}',
     "config.json of run 'bad' is invalid (depth 15 is not 6N+4"),
])
def test_a_corrupt_config_is_a_one_line_error_never_defaults(tmp_path, content, fragment):
    store = RunStore(tmp_path)
    store.create(_config(), "good")
    bad = store.create(_config(), "bad")
    bad.config_path.write_text(content)
    with pytest.raises(RunCorruptError, match=re.escape(fragment)) as info:
        bad.read_config()
    assert "\n" not in str(info.value)
    # The listing still shows both; the damaged one with what could be read and its problem.
    rows = {row.name: row for row in store.summaries()}
    assert rows["good"].problem == "" and fragment in rows["bad"].problem
    assert rows["bad"].status == "interrupted"
    store.delete("bad")
    assert store.names() == ["good"]


def test_one_unreadable_run_directory_never_breaks_the_listing(tmp_path):
    store = RunStore(tmp_path)
    store.create(_config(), "fine")
    weird = store.create(_config(), "weird")
    weird.status_path.unlink()
    weird.status_path.mkdir()  # a directory where a file should be
    rows = {row.name: row for row in store.summaries()}
    assert set(rows) == {"fine", "weird"} and "status.json" in rows["weird"].problem


def test_summaries_show_finished_runs(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_config(), "one")
    run.write_status("finished", epoch=2, best_test_acc=0.4, final_test_acc=0.3, params=123, train_seconds=5.0)
    (summary,) = store.summaries()
    assert (summary.name, summary.status, summary.epoch, summary.best_test_acc, summary.params) == ("one", "finished", 2, 0.4, 123)
    assert summary.model_name == "WRN-10-1" and summary.optimizer == "sgd-nesterov" and summary.problem == ""


# ---------------------------------------------------------------------------------------------
# Full disks


def small_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of `size` at path (root only); False where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError:  # no mount command
        return False
    return result.returncode == 0


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A directory whose disk fills up: a 64 KiB tmpfs where mounting works, else writes that raise ENOSPC."""
    mount = tmp_path / "small"
    if small_tmpfs(mount, "64k"):
        yield mount
        unmount(mount)
        return
    mount.mkdir(exist_ok=True)
    from disk_full import filling_open, install

    # Every file written under the mount holds 64 KiB, then fails like a full disk.
    install(filling_open(lambda path: path.startswith(str(mount)), 65536), monkeypatch)
    yield mount


def test_a_full_disk_is_a_one_line_write_error_and_leaves_no_temporary_file(full_disk):
    run = RunStore(full_disk).create(_config(), "full", hold="training")
    with pytest.raises(RunWriteError) as info:
        run.save_checkpoint({"model": {}, "step": 0, "blob": b"x" * 200_000})
    assert str(info.value) == "no space left on device while writing the checkpoint"
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(RunWriteError, match="no space left on device while writing metrics.jsonl"):
        run.append_metrics([{"kind": "event", "step": 0, "blob": "y" * 200_000}])
    run.release()
    # Readers keep working on what is there.
    assert RunStore(full_disk).summaries()[0].name == "full"


def test_heartbeat_round_trip(tmp_path, monkeypatch):
    import wrn_core.store.run as run_module

    run = RunStore(tmp_path).create(_config(), "beat", hold="training")
    assert run.read_heartbeat() is None
    monkeypatch.setattr(run_module.time, "time", lambda: 1_700_000_000.5)  # the writer's clock, read once
    run.write_heartbeat({"phase": "training", "step": 3})
    monkeypatch.undo()
    assert run.read_heartbeat() == {"phase": "training", "step": 3, "wall_time": 1_700_000_000.5}
    run.release()


# ---------------------------------------------------------------------------------------------
# A reader racing the writer's last two steps

RACE_ROUNDS = 1500

# A trainer's ending, over and over: status running, then its final status, then the lock released.
FINISHING_WRITER = """
import sys
from wrn_core.store import Run
from wrn_core.store.records import FINISHED, RUNNING
run = Run(sys.argv[1])
run.acquire("training")  # held before the reader starts: a queued run nobody holds reads interrupted, rightly
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    run.acquire("training")  # (in the first round already held: only the role is written)
    run.write_status(RUNNING, "training")
    run.write_status(FINISHED, "finished")
    run.release()
"""


def test_a_reader_never_sees_interrupted_while_a_run_finishes(tmp_path):
    """read_status in a tight loop while another process writes its final status and releases the lock."""
    run = RunStore(tmp_path).create(_config(), "race")
    writer = subprocess.Popen([sys.executable, "-c", FINISHING_WRITER, str(run.path), str(RACE_ROUNDS)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen: dict[str, int] = {}
    try:
        assert writer.stdout.readline().strip() == "ready"
        writer.stdin.write("go\n")
        writer.stdin.flush()
        deadline = time.monotonic() + 300
        while writer.poll() is None and time.monotonic() < deadline:
            status = Run(run.path).read_status()["status"]
            seen[status] = seen.get(status, 0) + 1
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.wait(timeout=30) == 0
    assert "interrupted" not in seen, seen
    assert seen.get("running", 0) > 0 and seen.get("finished", 0) > 0, seen  # the reader did meet both sides


# A status.json as runs wrote it before the typed reader existed (no executor, world_size or queue_lock yet).
OLD_STATUS = {
    "status": "failed", "message": "no images found in /data/train", "created_at": 1700000000.0,
    "started_at": 1700000001.5, "updated_at": 1700000002.0, "finished_at": 1700000002.0, "epoch": 0, "epochs": 3,
    "step": 0, "model_name": "WRN-10-1", "dataset": "folder", "optimizer": "sgd-nesterov", "device": "cpu",
    "pid": 4242, "host": "old-box", "error_kind": "input",
}


def test_an_old_runs_status_reads_typed_with_its_cause(tmp_path):
    run = RunStore(tmp_path).create(_config(), "old")
    run.status_path.write_text(json.dumps(OLD_STATUS))
    status = run.status()
    assert (status.status, status.cause, status.message) == ("failed", "input", OLD_STATUS["message"])
    assert (status.epoch, status.epochs, status.step, status.pid, status.host) == (0, 3, 0, 4242, "old-box")
    assert (status.executor, status.world_size, status.queue_lock, status.owner) == ("", None, "", None)
    assert not status.active and not status.rebuilt
    assert RunStore(tmp_path).summary("old").status == "failed"  # the runs table reads it as before


def test_a_cause_is_written_under_status_jsons_own_name_and_cleared_by_none(tmp_path):
    run = RunStore(tmp_path).create(_config(), "cause")
    run.write_status("failed", "disk full", cause="io")
    assert json.loads(run.status_path.read_text())["error_kind"] == "io"  # what existing readers look for
    assert run.status().cause == "io"
    run.write_status("running", cause=None)
    assert json.loads(run.status_path.read_text())["error_kind"] is None and run.status().cause is None


def test_typed_status_fields_of_another_type_read_as_missing(tmp_path):
    from wrn_core.store.records import RunStatus

    status = RunStatus.from_dict({"status": "running", "epoch": "2", "best_test_acc": True, "params": 1.5,
                                  "error_kind": 7, "owner": "pid 1"})
    assert (status.epoch, status.best_test_acc, status.params, status.cause, status.owner) == (0, None, None, None, None)
    assert status.active
