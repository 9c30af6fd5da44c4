"""Tiny training runs shared by the engine tests: a config that trains in seconds, and its records by kind."""

from __future__ import annotations

import threading

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store.records import Progress


def tiny_config(**changes) -> TrainConfig:
    base = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=1),
        dataset="synthetic",
        synthetic_train=320,  # 10 steps of 32 per epoch
        synthetic_test=100,
        epochs=2,
        batch_size=32,
        lr=0.05,
        schedule="onecycle",
        device="cpu",
        log_every=3,
        eval_batch_size=100,
    )
    return base.replace(**changes)


def epochs_of(run):
    return [r for r in run.read_metrics() if r["kind"] == "epoch"]


def steps_of(run):
    return [r for r in run.read_metrics() if r["kind"] == "step"]



def stop_at(step_to_stop: int) -> tuple[threading.Event, object]:
    """A stop event and a progress hook that sets it once training reaches the step."""
    stop = threading.Event()

    def hook(progress: Progress) -> None:
        if progress.step >= step_to_stop:
            stop.set()

    return stop, hook
