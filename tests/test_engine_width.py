"""Width use measured on each epoch's evaluation pass: equal to `evaluate` on the same checkpoint, a hand-killed channel
reads dead from its epoch on, --width-every, resume keeps every epoch once, and 2 gloo processes equal one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    from tiny_runs import stop_at, tiny_config
except ImportError:  # tests/ imported as a package
    from tests.tiny_runs import stop_at, tiny_config

from wrn_core.engine.loop import train_run
from wrn_core.inspect import evaluate_run
from wrn_core.store import Run, RunStore
from wrn_core.store.records import WIDTH, of_kind

REPO = Path(__file__).resolve().parents[1]


def widths_of(run: Run) -> list[dict]:
    return list(of_kind(run.read_metrics(), WIDTH))


def assert_equals_evaluate(record: dict, run: Run) -> None:
    """The record against `evaluate`'s width_use of the run's checkpoint: channels and dead exact, effective 1e-4."""
    evaluation = evaluate_run(run, use_cache=False)
    assert evaluation["step"] == record["step"]
    expected = evaluation["width_use"]
    assert [layer["layer"] for layer in record["layers"]] == [row["layer"] for row in expected]
    assert [layer["channels"] for layer in record["layers"]] == [row["channels"] for row in expected]
    assert [layer["dead"] for layer in record["layers"]] == [row["dead_channels"] for row in expected]
    for layer, row in zip(record["layers"], expected):
        assert layer["effective"] == pytest.approx(row["effective_width"], rel=1e-4), layer["layer"]


def test_the_last_epochs_width_record_equals_evaluate_on_the_same_checkpoint(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=2), "w")
    assert train_run(run) == "finished"
    widths = widths_of(run)
    assert [w["epoch"] for w in widths] == [1, 2]
    assert widths[-1]["images"] == 100
    assert [layer["layer"] for layer in widths[0]["layers"]] == [
        "group1.0.relu1", "group1.0.relu2", "group2.0.relu1", "group2.0.relu2", "group3.0.relu1", "group3.0.relu2",
        "head.relu"]
    assert_equals_evaluate(widths[-1], run)


def _kill_channel(run: Run, bn: str, channel: int) -> None:
    """Make one channel of the ReLU after `bn` output zero for every image: its BatchNorm's scale 0, shift -10.

    No gradient reaches a ReLU that is always zero, so the channel stays dead while training goes on."""
    state = torch.load(run.path / "checkpoint.pt", weights_only=False)
    state["model"][f"{bn}.weight"][channel] = 0.0
    state["model"][f"{bn}.bias"][channel] = -10.0
    torch.save(state, run.path / "checkpoint.pt")


def test_a_channel_zeroed_by_hand_reads_dead_from_that_epoch_on(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(tiny_config(epochs=1, schedule="constant", lr=0.02), "dead")
    assert train_run(run) == "finished"
    _kill_channel(run, "group2.0.bn2", 5)  # the BatchNorm before group2.0.relu2
    run.write_config(run.read_config().replace(epochs=3))
    assert train_run(run, resume=True) == "finished"
    widths = widths_of(run)
    assert [w["epoch"] for w in widths] == [1, 2, 3]
    dead = [{layer["layer"]: layer["dead"] for layer in w["layers"]} for w in widths]
    assert dead[0]["group2.0.relu2"] == 0
    assert all(epoch["group2.0.relu2"] >= 1 for epoch in dead[1:])
    assert_equals_evaluate(widths[-1], run)


def test_width_every_zero_writes_none_and_every_two_measures_even_epochs_and_the_last(tmp_path):
    store = RunStore(tmp_path)
    off = store.create(tiny_config(epochs=2, width_every=0), "off")
    assert train_run(off) == "finished"
    assert widths_of(off) == []
    sparse = store.create(tiny_config(epochs=3, width_every=2), "sparse")
    assert train_run(sparse) == "finished"
    assert [w["epoch"] for w in widths_of(sparse)] == [2, 3]


def test_a_resumed_run_has_every_epochs_width_once(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=3), "resumed")
    stop, hook = stop_at(15)  # half-way through the second epoch
    assert train_run(run, stop_event=stop, on_progress=hook) == "stopped"
    assert [w["epoch"] for w in widths_of(run)] == [1]
    assert train_run(run, resume=True) == "finished"
    widths = widths_of(run)
    assert [w["epoch"] for w in widths] == [1, 2, 3]
    epochs = {r["epoch"]: r["step"] for r in of_kind(run.read_metrics(), "epoch")}
    assert all(w["step"] == epochs[w["epoch"]] for w in widths)


def test_two_gloo_processes_measure_what_one_process_measures_on_the_same_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "wrn_core",
               "train", "--blocks", "1", "--widen-factor", "1", "--synthetic-train", "128", "--synthetic-test", "63",
               "--batch-size", "32", "--eval-batch-size", "16", "--device", "cpu", "--epochs", "1",
               "--runs-dir", str(runs), "--name", "ddp", "--quiet"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunStore(runs).get("ddp")
    (record,) = widths_of(run)
    assert record["images"] == 63  # 31 + 32: both ranks' shards
    assert_equals_evaluate(record, run)
