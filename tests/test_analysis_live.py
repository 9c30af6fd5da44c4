"""wrn_core.analysis.live: one position of a run for every live read-out (heartbeat while training, records otherwise)."""

from __future__ import annotations

import dataclasses

from wrn_core.analysis.live import live_position
from wrn_core.store.records import Progress, RunStatus

from metric_records import RECORDS


def beat(**changes) -> Progress:
    """A heartbeat 25 steps into the first of 2 epochs of 184 steps each."""
    base = Progress(run_name="r", phase="training", epoch=0, epochs=2, step=25, total_steps=368, steps_per_epoch=184,
                    images_seen=1600, elapsed_s=12.5, images_per_s=128.0, eta_s=40.0, train_loss=2.2, train_acc=0.15,
                    test_acc=None, device="cpu")
    return dataclasses.replace(base, **changes)


# status.json as the trainer leaves it between epoch boundaries: written at the start, not since.
STARTED = RunStatus.from_dict({"status": "running", "epochs": 2, "epoch": 0, "step": 0, "images_seen": 0,
                               "best_test_acc": None, "train_seconds": 0.0})


def test_while_training_the_heartbeat_gives_the_position_not_the_stale_status():
    position = live_position(STARTED, beat())
    assert (position.phase, position.epoch, position.epochs) == ("training", 1, 2)  # the first epoch, in progress
    assert (position.step, position.total_steps, position.images_seen) == (25, 368, 1600)
    assert position.train_seconds == 12.5 and position.best_test_acc is None
    assert position.fraction == 25 / 368


def test_evaluating_counts_the_epoch_being_evaluated():
    # The trainer reports completed epochs (0) while it evaluates the first: that is epoch 1 of 2, as in training.
    evaluating = live_position(STARTED, beat(phase="evaluating", step=184))
    after = live_position(STARTED, beat(phase="training", epoch=1, step=184, test_acc=0.3))
    assert (evaluating.epoch, evaluating.step) == (1, 184)
    assert (after.epoch, after.step, after.best_test_acc) == (2, 184, 0.3)


def test_the_best_accuracy_comes_from_the_records_the_charts_draw():
    # RECORDS hold two tested epochs (25% then 45%); status.json has not been rewritten since the start.
    position = live_position(STARTED, beat(epoch=2, step=4, test_acc=0.45), RECORDS)
    assert position.best_test_acc == 0.45 and position.last_test_acc == 0.45


def test_without_a_heartbeat_the_records_are_newer_than_status_json():
    stopped = RunStatus.from_dict({"status": "stopped", "epochs": 8, "epoch": 1, "step": 2, "images_seen": 64,
                                   "best_test_acc": 0.25, "train_seconds": 1.0})
    position = live_position(stopped, None, RECORDS)
    assert (position.phase, position.epoch, position.epochs) == (None, 2, 8)
    points = [r for r in RECORDS if r["kind"] in ("step", "epoch")]
    assert position.step == max(r["step"] for r in points) and position.images_seen == max(r["images_seen"] for r in points)
    assert position.best_test_acc == 0.45 and position.fraction == 2 / 8


def test_a_heartbeat_left_by_a_finished_run_is_not_read_as_training():
    finished = RunStatus.from_dict({"status": "finished", "epochs": 2, "epoch": 2, "step": 368, "images_seen": 23552,
                                    "best_test_acc": 0.5, "train_seconds": 60.0})
    position = live_position(finished, beat(phase="training", step=300))
    assert position.phase is None and (position.epoch, position.step) == (2, 368)
