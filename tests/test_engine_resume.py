"""Tests for resuming and extending: the learning-rate plan across extensions, the append-only history, refusals."""

from __future__ import annotations

import pytest

from tiny_runs import stop_at, epochs_of, steps_of, tiny_config
from wrn_core.engine.loop import train_run
from wrn_core.engine.resume import prepare_resume
from wrn_core.store import RunCorruptError, RunStore, RunStoreError


def _resume(run, epochs=None, extend="continue"):
    run.acquire("training")
    try:
        return prepare_resume(run, epochs, extend)
    except BaseException:
        run.release()
        raise


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle"])
def test_extending_a_finished_run_continues_from_the_learning_rate_it_ended_at(tmp_path, schedule):
    run = RunStore(tmp_path).create(tiny_config(epochs=2, schedule=schedule, log_every=1), "extend")
    assert train_run(run) == "finished"
    ended_at = steps_of(run)[-1]["lr"]
    plan = _resume(run, epochs=3)
    # One-cycle and cosine end at lr 0: continuing them trains nothing, and the user is told so.
    assert (plan.warning is not None) == (schedule != "step")
    assert train_run(run, resume=True) == "finished"
    added = [r["lr"] for r in steps_of(run) if r["step"] > 20]
    assert len(added) == 10 and added == pytest.approx([ended_at] * 10)
    assert [r["epoch"] for r in epochs_of(run)] == [1, 2, 3]
    config = run.read_config()
    assert (config.epochs, config.schedule_epochs, len(config.extensions)) == (3, 2, 1)


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle"])
def test_restarting_the_schedule_over_the_added_epochs(tmp_path, schedule):
    run = RunStore(tmp_path).create(tiny_config(epochs=2, schedule=schedule, log_every=1), "restart")
    assert train_run(run) == "finished"
    _resume(run, epochs=4, extend="restart")
    assert train_run(run, resume=True) == "finished"
    lrs = {r["step"]: r["lr"] for r in steps_of(run)}
    # Steps 21-40 follow the schedule of a fresh 2-epoch run: the same lr as steps 1-20 had.
    assert [lrs[s] for s in range(21, 41)] == pytest.approx([lrs[s] for s in range(1, 21)])


def test_a_stopped_run_extended_finishes_its_plan_then_the_extension(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=2, schedule="step", log_every=1), "plan")
    stop, hook = stop_at(7)
    assert train_run(run, stop_event=stop, on_progress=hook) == "stopped"
    _resume(run, epochs=3)
    assert train_run(run, resume=True) == "finished"
    whole = RunStore(tmp_path).create(tiny_config(epochs=2, schedule="step", log_every=1), "whole")
    assert train_run(whole) == "finished"
    planned = {r["step"]: r["lr"] for r in steps_of(whole)}
    got = {r["step"]: r["lr"] for r in steps_of(run)}
    assert [got[s] for s in range(1, 21)] == pytest.approx([planned[s] for s in range(1, 21)])  # the plan, unstretched
    assert [got[s] for s in range(21, 31)] == pytest.approx([planned[20]] * 10)


def test_resume_appends_a_marker_and_never_rewrites_a_line(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=2, log_every=1), "append")
    stop, hook = stop_at(13)
    assert train_run(run, stop_event=stop, on_progress=hook) == "stopped"
    with open(run.metrics_path, "a") as f:
        # What a process killed after its checkpoint leaves (points past step 13), a damaged line,
        # and a valid JSON line with a null step.
        f.write('{"kind":"step","step":14,"train_loss":9.9}\n{"kind": "step", "ste\n{"kind":"step","step":null}\n')
    before = run.metrics_path.read_bytes()
    _resume(run)
    assert train_run(run, resume=True) == "finished"
    assert run.metrics_path.read_bytes().startswith(before)  # history kept byte for byte
    log = run.read_metrics_log()
    assert log.unreadable == 2 and log.superseded == 1
    assert [r["step"] for r in log.records if r["kind"] == "step"] == list(range(1, 21))
    assert all(r.get("train_loss") != 9.9 for r in log.records)
    assert [r["from_step"] for r in log.records if r["kind"] == "resume"] == [13]
    assert [r["epoch"] for r in epochs_of(run)] == [1, 2]


def test_resume_refusals_say_why(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(epochs=1), "done")
    assert train_run(run) == "finished"
    with pytest.raises(RunStoreError, match="already finished its 1 epochs"):
        _resume(run)
    assert not run.lock.held
    with pytest.raises(RunStoreError, match="already completed 1 epochs"):
        _resume(run, epochs=1)
    run.checkpoint_path.write_bytes(b"not a checkpoint")
    with pytest.raises(RunCorruptError, match="checkpoint.pt of run 'done' is unreadable"):
        _resume(run, epochs=2)
    assert run.read_status()["status"] == "finished" and run.read_config().epochs == 1  # nothing changed

