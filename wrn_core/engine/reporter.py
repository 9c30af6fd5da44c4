"""Progress reports: the trainer's hook and heartbeat.json (throttled), built from the session and position."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Callable

from wrn_core.engine.checkpoint import Position
from wrn_core.store import Run
from wrn_core.store.records import HEARTBEAT_INTERVAL_S, Progress

if TYPE_CHECKING:
    from wrn_core.engine.loop import Session

ProgressHook = Callable[[Progress], None]


class Reporter:
    """Sends Progress to the hook and keeps heartbeat.json current (throttled)."""

    def __init__(self, run: Run, hook: ProgressHook | None) -> None:
        self.run = run
        self.hook = hook
        self.last_write = 0.0
        self.last_phase = ""

    def __call__(self, progress: Progress) -> None:
        if self.hook is not None:
            self.hook(progress)
        now = time.monotonic()
        if progress.phase != self.last_phase or now - self.last_write >= HEARTBEAT_INTERVAL_S or progress.notice:
            self.last_write, self.last_phase = now, progress.phase
            try:
                self.run.write_heartbeat(dataclasses.asdict(progress))
            except OSError:
                pass  # the heartbeat is a convenience; the status and metrics writes report disk trouble

    def send(self, session: "Session | None", position: Position, phase: str, loss: float | None = None,
             acc: float | None = None, rate: float | None = None, notice: str | None = None) -> None:
        config = session.config if session else None
        total = session.total_steps if session else 0
        eta = (total - position.step) * config.batch_size / rate if (session and rate) else None
        self(Progress(
            run_name=self.run.name, phase=phase, epoch=position.epoch, epochs=config.epochs if config else 0,
            step=position.step, total_steps=total, steps_per_epoch=session.steps_per_epoch if session else 0,
            images_seen=position.images_seen, elapsed_s=position.train_seconds, images_per_s=rate, eta_s=eta,
            train_loss=loss, train_acc=acc, test_acc=position.last_test_acc,
            device=session.device.type if session else "", notice=notice,
        ))

