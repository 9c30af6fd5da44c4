"""Tests for the run format's one home: record constructors, statuses, the heartbeat, and that nobody else builds records."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from wrn_core.store import records
from wrn_core.store.records import Progress, parse_metrics, progress_from_heartbeat

ROOT = Path(__file__).resolve().parent.parent
RECORDS_MODULE = ROOT / "wrn_core" / "store" / "records.py"
STATUS_NAMES = {"queued", "running", "stopped", "finished", "diverged", "failed", "interrupted", "pruned"}


def test_every_constructor_makes_a_record_readers_keep():
    built = [
        records.created_record(wall_time=1.0),
        records.step_record(step=1, epoch=0.5, images_seen=32, time=0.1, train_loss=2.3, train_acc=0.1, lr=0.1),
        records.epoch_record(epoch=1, step=2, images_seen=64, time=0.2, train_loss=2.2, train_acc=0.2, test_loss=2.1,
                             test_acc=0.25, lr=0.1, epoch_seconds=0.2, images_per_s=320.0, peak_mem_mb=None),
        records.event_record("compile", "took 1.0 s", step=1, epoch=0, time=1.0, seconds=1.0),
        records.system_record(step=2, epoch=1.0, time=0.2, wall_time=2.0, cpu_percent=50.0),
        records.resume_record(from_step=2, from_epoch=1.0, time=0.2, wall_time=3.0, epochs=2),
        records.retry_record(attempt=1, of=3, node="ab" * 16, epoch=1, reason="node abababab lost in epoch 2",
                             wall_time=4.0),
        records.width_record(epoch=1, step=2, time=0.2, images=64, layers=[
            {"layer": "group1.0.relu1", "group": "group 1", "channels": 16, "dead_channels": 1, "effective_width": 9.5,
             "active_fraction": 15 / 16, "dead_indices": [3]}]),
    ]
    assert [r["kind"] for r in built] == ["created", "step", "epoch", "event", "system", "resume", "retry", "width"]
    assert built[-1]["layers"] == [{"layer": "group1.0.relu1", "channels": 16, "dead": 1, "effective": 9.5}]
    assert {r["kind"] for r in built} == set(records.RECORD_KINDS)
    log = parse_metrics("".join(json.dumps(r) + "\n" for r in built))
    assert log.unreadable == 0 and log.superseded == 0
    assert log.records == built


def test_a_width_record_without_its_layers_or_with_impossible_counts_is_unreadable():
    good = records.width_record(epoch=1, step=2, time=0.2, images=64, layers=[
        {"layer": "head.relu", "channels": 4, "dead_channels": 0, "effective_width": 3.0}])
    bad_layers = [
        {**good, "layers": None},
        {**good, "epoch": 1.5},
        {**good, "layers": [{"layer": "head.relu", "channels": 4, "dead": 5, "effective": 3.0}]},  # more dead than channels
        {**good, "layers": [{"layer": "head.relu", "channels": 0, "dead": 0, "effective": 0.0}]},
        {**good, "layers": [{"layer": "head.relu", "channels": 4, "dead": 0, "effective": "3"}]},
    ]
    log = parse_metrics("".join(json.dumps(r) + "\n" for r in [good, *bad_layers]))
    assert log.records == [good] and log.unreadable == len(bad_layers)


def test_status_constants_are_the_file_format():
    assert set(records.STATUSES) == STATUS_NAMES
    assert set(records.ACTIVE_STATUSES) | set(records.ENDED_STATUSES) | set(records.PAUSED_STATUSES) == STATUS_NAMES
    assert not set(records.ACTIVE_STATUSES) & set(records.ENDED_STATUSES)
    assert records.PENDING not in records.STATUSES  # a sweep cell without a run, never a run's status


def test_progress_round_trips_through_a_heartbeat_and_ignores_what_it_does_not_know():
    progress = Progress("r", records.TRAINING, 1, 2, 10, 20, 10, 320, 1.5, 200.0, 1.6, 2.0, 0.3, 0.25, "cpu")
    beat = {**progress.__dict__, "wall_time": 123.0, "added_later": 1}
    assert progress_from_heartbeat(beat) == progress
    assert progress_from_heartbeat(None) is None
    assert progress_from_heartbeat({"run_name": "r"}) is None  # fields missing: not a heartbeat


def _python_files(*parts: str) -> list[Path]:
    files = []
    for part in parts:
        files += sorted((ROOT / part).rglob("*.py"))
    return files


def test_no_module_but_records_builds_a_metrics_record():
    """A dict literal with a "kind" that is a record kind is a record being built by hand."""
    found = []
    for path in _python_files("wrn_core", "dashboard", "pages", "bench"):
        if path == RECORDS_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and key.value == "kind" and isinstance(value, ast.Constant)
                        and value.value in records.RECORD_KINDS):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_status_names_are_spelled_out_in_at_most_ten_places_outside_the_records_module():
    found = []
    for path in _python_files("wrn_core", "dashboard", "pages"):
        if path == RECORDS_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in STATUS_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert len(found) <= 10, found
