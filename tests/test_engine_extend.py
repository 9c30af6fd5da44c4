"""Extending a finished run without training at lr 0, the memory refusal reaching a job's child and its log,
and a training rate and ETA that do not jump."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_runs import tiny_config
from wrn_core.engine.reporter import RateMeter, Reporter, eta_seconds
from wrn_core.engine.resume import default_extend, extension_lr_ends_at_zero, prepare_resume
from wrn_core.jobs import JobManager
from wrn_core.jobs.supervisor import last_log_line
from wrn_core.store import RunStore
from wrn_core.store.records import EVALUATING, FAILED, FINISHED, TRAINING


@pytest.mark.parametrize("schedule, expected", [("onecycle", "restart"), ("cosine", "restart"),
                                                ("step", "continue"), ("constant", "continue")])
def test_the_default_extension_restarts_only_a_plan_that_ended_at_lr_0(schedule, expected):
    config = tiny_config(schedule=schedule)
    assert extension_lr_ends_at_zero(config) == (expected == "restart")
    assert default_extend(config) == expected
    # Once extended, the rule reads the plan with its extensions: a restarted one-cycle ends at 0 again.
    assert default_extend(config.with_target(4, expected)) == expected


def _finished_run(tmp_path: Path, schedule: str):
    """A run recorded as finished after its 2 epochs (no checkpoint needed to plan a resume)."""
    run = RunStore(tmp_path).create(tiny_config(schedule=schedule), "done")
    run.write_status(FINISHED, "finished 2 epochs", epoch=2)
    return run


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_extending_a_one_cycle_run_restarts_its_schedule_by_default_and_says_so(tmp_path, schedule):
    run = _finished_run(tmp_path, schedule)
    run.acquire("training")
    try:
        plan = prepare_resume(run, 3)
    finally:
        run.release()
    assert plan.config.extensions[-1].mode == "restart" and plan.warning is None
    assert "ended at learning rate 0" in plan.note and "restart" in plan.note


def test_extending_a_step_run_still_continues_by_default(tmp_path):
    run = _finished_run(tmp_path, "step")
    run.acquire("training")
    try:
        plan = prepare_resume(run, 3)
    finally:
        run.release()
    assert plan.config.extensions[-1].mode == "continue" and plan.note is None and plan.warning is None


def test_cli_resume_says_it_restarts_the_schedule_before_training(tmp_path):
    run = _finished_run(tmp_path, "onecycle")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "wrn_core", "resume", run.name, "--epochs", "3", "--runs-dir",
                           str(tmp_path), "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    note = [i for i, line in enumerate(lines) if line.startswith("note: the onecycle schedule ended at learning rate 0")]
    end = [i for i, line in enumerate(lines) if line.startswith("finished:")]
    assert note and end and note[0] < end[0], done.stderr
    assert run.read_config().extensions[-1].mode == "restart"


# -- the job's child gets --force, and a job that fails says why ---------------------------------------

FAKE_TRAINER = """#!/bin/sh
# Stands in for `python -m wrn_core resume NAME ...`: records its arguments, then refuses like the pre-flight.
echo "$@" > "{args}"
echo "Traceback (most recent call last):"
echo "  File \\"x.py\\", line 1, in <module>"
echo "error: predicted training memory 9,000 MiB against 100 MiB free on RAM: it would not fit; use --force" >&2
echo ""
exit 2
"""


def _fake_manager(tmp_path: Path) -> tuple[JobManager, Path]:
    args = tmp_path / "args.txt"
    script = tmp_path / "fake-python"
    script.write_text(FAKE_TRAINER.format(args=args))
    script.chmod(0o755)
    return JobManager(tmp_path / "runs", slots=["cpu"], python=str(script)), args


@pytest.mark.parametrize("force", [False, True])
def test_a_forced_launch_passes_force_to_the_training_process(tmp_path, force):
    manager, args = _fake_manager(tmp_path)
    try:
        name = manager.submit(tiny_config(), "big", force=force)
        assert manager.wait(name, timeout=60)
    finally:
        manager.shutdown(timeout=30)
    assert ("--force" in args.read_text().split()) == force


def test_a_job_that_exits_early_says_its_logs_last_line(tmp_path):
    manager, _ = _fake_manager(tmp_path)
    try:
        name = manager.submit(tiny_config(), "big")
        assert manager.wait(name, timeout=60)
    finally:
        manager.shutdown(timeout=30)
    status = manager.store.get(name).read_status()
    assert status["status"] == FAILED
    assert status["message"].endswith("error: predicted training memory 9,000 MiB against 100 MiB free on RAM: "
                                      "it would not fit; use --force"), status["message"]


def test_last_log_line_skips_blanks_and_traceback_frames(tmp_path):
    log = tmp_path / "job.log"
    assert last_log_line(log) is None  # no log yet
    log.write_text('Traceback (most recent call last):\n  File "a.py", line 3, in f\n    g()\n'
                   "RuntimeError: CUDA out of memory\n\n   \n")
    assert last_log_line(log) == "RuntimeError: CUDA out of memory"
    log.write_text("epoch 1\rstep 2\rerror: no such dataset\n")
    assert last_log_line(log) == "error: no such dataset"
    log.write_text("\n\n")
    assert last_log_line(log) is None


# -- a steady rate and ETA ------------------------------------------------------------------------------

def test_the_rate_is_smoothed_over_logging_intervals():
    meter = RateMeter()
    # Intervals alternating between 1,650 and 535 images/s (an epoch's short last interval, a loader's setup).
    rates = [meter.add(images, seconds) for images, seconds in [(1650, 1.0), (535, 1.0)] * 10]
    late = rates[4:]
    assert max(late) - min(late) < 0.35 * (1650 - 535)  # the raw figure swings by the whole 1,115
    assert all(535 < r < 1650 for r in late)
    assert RateMeter().add(100, 0.0) is None  # no time measured yet: no rate


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _plan():
    """What Reporter.send reads of a training session: 4 epochs of 10 steps of 32 images."""
    from wrn_core.engine.session import Plan

    return Plan(epochs=4, batch_size=32, steps_per_epoch=10, device="cpu")


def test_eta_counts_the_evaluations_still_due_measured_by_a_clock(tmp_path):
    from wrn_core.engine.session import Position

    run = RunStore(tmp_path).create(tiny_config(), "eta")
    clock, seen = _Clock(), []
    reporter = Reporter(run, seen.append, clock=clock)
    position = Position(step=10, epoch=0)
    reporter.send(_plan(), position, EVALUATING, rate=320.0)
    clock.now += 3.0  # the evaluation (and its checkpoint) took 3 s
    position.epoch = 1
    reporter.send(_plan(), position, TRAINING, rate=320.0)
    assert reporter.eval_s == pytest.approx(3.0)
    # 30 steps x 32 images at 320 images/s, plus 3 evaluations of 3 s.
    assert seen[-1].eta_s == pytest.approx(30 * 32 / 320 + 3 * 3.0)
    assert eta_seconds(960, None) is None and eta_seconds(960, 320.0) == pytest.approx(3.0)


# -- the status says what is loading -----------------------------------------------------------------------

def test_the_loading_status_names_the_data_and_its_size(tmp_path):
    from wrn_core.data import loading_message

    assert loading_message(tiny_config()) == "loading data: 320 + 100 synthetic images"
    assert loading_message(tiny_config(dataset="cifar10")) == "loading data: CIFAR-10 (50,000 + 10,000 images)"
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "1.png").write_bytes(b"not decoded here")
    message = loading_message(tiny_config(dataset="folder", data_dir=str(root)))
    assert message == f"loading data: image folder {root} (4 images to decode; cached for next time)"
    assert loading_message(tiny_config(dataset="folder", data_dir=str(tmp_path / "gone"))) == "loading data: image folder"
