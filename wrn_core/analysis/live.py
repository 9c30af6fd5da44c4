"""Where a run stands now, from one source: its trainer's heartbeat (Progress) while it trains, its records and status otherwise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from wrn_core.store.records import (
    COMPILING,
    EPOCH,
    EVALUATING,
    LOADING,
    RUNNING,
    STEP,
    TRAINING,
    Progress,
    RunStatus,
    of_kind,
)

# Phases in which the trainer works on an epoch it has not completed yet: "epoch 3/8" is the third.
_IN_EPOCH_PHASES = (LOADING, COMPILING, TRAINING, EVALUATING)


@dataclass(frozen=True)
class LivePosition:
    """What every live read-out shows of one run; None where it is not known yet."""

    state: str  # the run's status (queued, running, finished, …)
    phase: str | None  # the trainer's phase while it runs (training, evaluating, …), else None
    epoch: int  # the epoch being worked on (1-based) while training or evaluating, else the completed epochs
    epochs: int  # planned epochs (0 when unknown)
    step: int  # optimizer steps done
    total_steps: int | None  # steps of the whole plan (None until the trainer knows them)
    images_seen: int
    train_seconds: float | None
    best_test_acc: float | None  # fraction; the best epoch's test accuracy so far
    last_test_acc: float | None  # fraction; the latest epoch's
    images_per_s: float | None
    eta_s: float | None
    device: str | None

    @property
    def fraction(self) -> float:
        """How much of the plan is done, in [0, 1]: steps while training, completed epochs otherwise."""
        if self.total_steps:
            return min(1.0, self.step / self.total_steps)
        done = self.epoch if self.phase not in _IN_EPOCH_PHASES else self.epoch - 1
        return min(1.0, max(0, done) / self.epochs) if self.epochs else 0.0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _best(values: Iterable[Any]) -> float | None:
    numbers = [v for v in (_number(x) for x in values) if v is not None]
    return max(numbers) if numbers else None


def live_position(status: RunStatus, progress: Progress | None = None,
                  records: Iterable[Mapping[str, Any]] = ()) -> LivePosition:
    """The run's position: the heartbeat's while the run trains (it is written about once a second), else the
    later of status.json and the last step or epoch record (status.json is written at epoch boundaries only).

    The best and latest test accuracies come from the epoch records (the same points the charts draw) and
    status.json, so no read-out says "—" while a chart shows a tested epoch.
    """
    records = list(records)
    state = status.status
    epochs_done = list(of_kind(records, EPOCH))
    points = list(of_kind(records, STEP, EPOCH))
    last = max(points, key=lambda r: int(r.get("step") or 0), default={})
    tested = [r.get("test_acc") for r in epochs_done]
    best = _best([*tested, status.best_test_acc])
    last_test = _number(epochs_done[-1].get("test_acc")) if epochs_done else _number(status.final_test_acc)
    epochs = status.epochs or 0
    if progress is not None and state == RUNNING:
        epochs = progress.epochs or epochs
        in_epoch = progress.phase in _IN_EPOCH_PHASES and progress.epoch < epochs
        return LivePosition(
            state=state, phase=progress.phase, epoch=progress.epoch + 1 if in_epoch else progress.epoch,
            epochs=epochs, step=progress.step, total_steps=progress.total_steps or None,
            images_seen=max(progress.images_seen, int(last.get("images_seen") or 0)),
            train_seconds=_number(progress.elapsed_s), best_test_acc=_best([best, progress.test_acc]),
            last_test_acc=_number(progress.test_acc) if progress.test_acc is not None else last_test,
            images_per_s=_number(progress.images_per_s), eta_s=_number(progress.eta_s), device=progress.device or None,
        )
    step = max(status.step, int(last.get("step") or 0))
    images = max(status.images_seen or 0, int(last.get("images_seen") or 0))
    seconds = _best([status.train_seconds, last.get("time")])
    completed = max(status.epoch, max((int(r.get("epoch") or 0) for r in epochs_done), default=0))
    return LivePosition(
        state=state, phase=None, epoch=completed, epochs=epochs, step=step, total_steps=None, images_seen=images,
        train_seconds=seconds, best_test_acc=best, last_test_acc=last_test, images_per_s=None, eta_s=None,
        device=status.device or None,
    )
