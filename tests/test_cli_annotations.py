"""`runs tag`, `runs note`, `runs list --tag`, and annotations in `runs show` and the exports — including a run that trains."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrn_core.cli import main
from wrn_core.store import Run, RunStore
from wrn_core.store.lock import probe_owner
from wrn_core.store.records import FINISHED
from tiny_runs import tiny_config

REPO = Path(__file__).resolve().parents[1]
WRITER_FILES = ("metrics.jsonl", "status.json", "run.lock", "heartbeat.json", "config.json", "checkpoint.pt")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture()
def store(tmp_path):
    store = RunStore(tmp_path)
    for name in ("a", "b", "c"):
        store.create(tiny_config(), name=name)
    return store


def _fails_in_one_line(args: list[str], capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    return err


def test_tag_note_and_list_by_tag(store, capsys):
    runs = ["--runs-dir", str(store.root)]
    assert main(["runs", "tag", "a", "baseline", "k1", *runs]) == 0
    assert capsys.readouterr().out.strip() == "a: baseline, k1"
    assert main(["runs", "tag", "b", "k1", *runs]) == 0
    assert main(["runs", "note", "a", "the first try", *runs]) == 0
    assert "note set (13 characters)" in capsys.readouterr().out
    assert main(["runs", "list", "--tag", "k1", *runs]) == 0
    listed = capsys.readouterr().out
    assert {"a", "b"} <= {line.split()[0] for line in listed.splitlines()[1:]} and "\n   c " not in listed
    assert main(["runs", "list", "--tag", "k1", "--tag", "baseline", *runs]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["a"] and "the first try" in rows[0]
    assert main(["runs", "tag", "a", "baseline", "--remove", *runs]) == 0
    assert capsys.readouterr().out.strip() == "a: k1"
    assert main(["runs", "note", "a", "", *runs]) == 0
    assert "note cleared" in capsys.readouterr().out
    assert store.get("a").read_annotations().note == ""


def test_bad_annotation_input_is_one_line_and_changes_nothing(store, capsys):
    runs = ["--runs-dir", str(store.root)]
    main(["runs", "tag", "a", "keep", *runs])
    main(["runs", "note", "a", "kept", *runs])
    capsys.readouterr()
    meta = store.get("a").path / "meta.json"
    before = meta.read_bytes()
    assert "no run named 'ghost'" in _fails_in_one_line(["runs", "tag", "ghost", "t", *runs], capsys)
    assert "invalid tag 'two words'" in _fails_in_one_line(["runs", "tag", "a", "two words", *runs], capsys)
    assert "invalid tag 'x/y'" in _fails_in_one_line(["runs", "tag", "a", "x/y", *runs], capsys)
    assert "has no tag 'nope'" in _fails_in_one_line(["runs", "tag", "a", "nope", "--remove", *runs], capsys)
    assert "at most 10,000" in _fails_in_one_line(["runs", "note", "a", "n" * 10_001, *runs], capsys)
    assert "no run has tag 'zzz' (tags in use: keep)" in _fails_in_one_line(["runs", "list", "--tag", "zzz", *runs], capsys)
    assert meta.read_bytes() == before
    assert not (store.get("b").path / "meta.json").exists()


def test_show_and_exports_carry_tags_and_note(store, capsys):
    runs = ["--runs-dir", str(store.root)]
    from metric_records import RECORDS

    store.get("a").append_metrics(RECORDS)
    main(["runs", "tag", "a", "wide", "seed:1", *runs])
    main(["runs", "note", "a", 'line one\nline "two", with a comma', *runs])
    capsys.readouterr()
    assert main(["runs", "show", "a", *runs]) == 0
    shown = json.JSONDecoder().raw_decode(capsys.readouterr().out)[0]
    assert shown["tags"] == ["seed:1", "wide"] and shown["note"].startswith("line one\n")
    assert main(["runs", "export", "a", "--format", "json", *runs]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert (exported["name"], exported["tags"]) == ("a", ["seed:1", "wide"])
    assert [r["epoch"] for r in exported["records"] if r["kind"] == "epoch"] == [1, 2]
    assert main(["runs", "export", "a", "--format", "csv", *runs]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {(r["tags"], r["note"]) for r in rows} == {("seed:1 wide", 'line one\nline "two", with a comma')}


def _snapshot(run_dir: Path) -> dict[str, tuple]:
    """Inode, size, mtime and content hash of each writer's file: what a write or a replace would change."""
    facts = {}
    for name in WRITER_FILES:
        path = run_dir / name
        if path.exists():
            st = path.stat()
            facts[name] = (st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return facts


def test_tagging_a_training_run_leaves_its_metrics_status_and_lock_untouched(tmp_path):
    """A real trainer holds the run; it is frozen (SIGSTOP) so that any change to its files could only be ours."""
    args = [sys.executable, "-m", "wrn_core", "train", "--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic",
            "--synthetic-train", "320", "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu",
            "--log-every", "1", "--epochs", "3", "--runs-dir", str(tmp_path), "--name", "live", "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = Run(tmp_path / "live")
    try:
        deadline = time.monotonic() + 120
        while not any(r["kind"] == "step" for r in run.read_metrics()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started training"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            owner = probe_owner(run.lock.path)
            assert owner is not None and owner.pid == proc.pid
            before = _snapshot(run.path)
            tagged = run_cli("runs", "tag", "live", "watching", "k1", "--runs-dir", str(tmp_path))
            noted = run_cli("runs", "note", "live", "tagged mid-epoch", "--runs-dir", str(tmp_path))
            assert (tagged.returncode, noted.returncode) == (0, 0), (tagged.stderr, noted.stderr)
            assert _snapshot(run.path) == before
            assert probe_owner(run.lock.path).pid == proc.pid  # the trainer still holds its lock
            assert run.read_status()["status"] == "running"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=240) == 0, proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert run.read_status()["status"] == FINISHED
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2, 3]
    annotations = run.read_annotations()  # the trainer's later writes left the user's file alone
    assert (annotations.tags, annotations.note) == (("k1", "watching"), "tagged mid-epoch")
