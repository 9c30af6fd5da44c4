"""Progress reports: the trainer's hook and heartbeat.json (throttled), built from the session's plan and position, with a smoothed rate and ETA."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from wrn_core.engine.session import Plan, Position
from wrn_core.store import Run
from wrn_core.store.records import EVALUATING, HEARTBEAT_INTERVAL_S, Progress

ProgressHook = Callable[[Progress], None]
# Weight of the past in the images/s average: each logging interval counts 1 - RATE_MEMORY, so one slow or
# fast interval (an epoch's short last one, a loader's epoch setup) moves the figure shown by a third at most.
RATE_MEMORY = 0.7


class RateMeter:
    """Training images/s over logging intervals, as an exponential average weighted by each interval's time.

    Only training intervals are added (evaluation and checkpoints happen between them), so the rate is the
    training rate alone.
    """

    def __init__(self, memory: float = RATE_MEMORY) -> None:
        self.memory = memory
        self.images = 0.0  # decayed sums of images and seconds
        self.seconds = 0.0

    def add(self, images: float, seconds: float) -> float | None:
        """Fold in one interval; returns the smoothed images/s (None until some time has been measured)."""
        if seconds > 0:
            self.images = self.memory * self.images + images
            self.seconds = self.memory * self.seconds + seconds
        return self.images / self.seconds if self.seconds > 0 else None


def eta_seconds(remaining_images: float, rate: float | None, remaining_evals: int = 0, eval_s: float | None = None) -> float | None:
    """Seconds left: the images still to train at `rate` (images/s), plus the evaluations still due at eval_s each."""
    if not rate:
        return None
    return remaining_images / rate + max(0, remaining_evals) * (eval_s or 0.0)


class Reporter:
    """Sends Progress to the hook and keeps heartbeat.json current (throttled)."""

    def __init__(self, run: Run, hook: ProgressHook | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.run = run
        self.hook = hook
        self.clock = clock  # seconds; injectable so tests drive it
        self.last_write = 0.0
        self.last_phase = ""
        self.rate = RateMeter()  # the loop adds each logging interval's images and seconds
        self.eval_started: float | None = None  # clock time of the evaluation in progress
        self.eval_s: float | None = None  # how long the last evaluation took, for the ETA

    def _time_evaluations(self, phase: str) -> None:
        """Measure an evaluation from its EVALUATING report to the next report of another phase."""
        now = self.clock()
        if phase == EVALUATING and self.eval_started is None:
            self.eval_started = now
        elif phase != EVALUATING and self.eval_started is not None:
            self.eval_s, self.eval_started = now - self.eval_started, None

    def __call__(self, progress: Progress) -> None:
        if self.hook is not None:
            self.hook(progress)
        now = self.clock()
        if progress.phase != self.last_phase or now - self.last_write >= HEARTBEAT_INTERVAL_S or progress.notice:
            self.last_write, self.last_phase = now, progress.phase
            try:
                self.run.write_heartbeat(dataclasses.asdict(progress))
            except OSError:
                pass  # the heartbeat is a convenience; the status and metrics writes report disk trouble

    def send(self, plan: Plan | None, position: Position, phase: str, loss: float | None = None,
             acc: float | None = None, rate: float | None = None, notice: str | None = None) -> None:
        """Report the position in this phase; plan None while the session is still being set up."""
        self._time_evaluations(phase)
        eta = None
        if plan is not None:
            # Evaluations left: one per epoch not yet evaluated (the one running now counts whole).
            eta = eta_seconds((plan.total_steps - position.step) * plan.batch_size, rate, plan.epochs - position.epoch,
                              self.eval_s)
        self(Progress(
            run_name=self.run.name, phase=phase, epoch=position.epoch, epochs=plan.epochs if plan else 0,
            step=position.step, total_steps=plan.total_steps if plan else 0,
            steps_per_epoch=plan.steps_per_epoch if plan else 0, images_seen=position.images_seen,
            elapsed_s=position.train_seconds, images_per_s=rate, eta_s=eta, train_loss=loss, train_acc=acc,
            test_acc=position.last_test_acc, device=plan.device if plan else "", notice=notice,
        ))
