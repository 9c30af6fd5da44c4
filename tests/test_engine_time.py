"""Time in the engine: training seconds exclude time stopped, the heartbeat's ETA and one-second throttle, and a
system reading every 5 s (fake clocks, no waiting)."""

from __future__ import annotations

import time
import types

import pytest
import torch

from tiny_runs import stop_at, steps_of, tiny_config
from wrn_core.engine import loop, monitor
from wrn_core.engine.loop import train_run
from wrn_core.engine.monitor import SystemMonitor
from wrn_core.engine.reporter import Reporter
from wrn_core.engine.session import Plan, Position
from wrn_core.store import RunStore
from wrn_core.store.records import TRAINING

PAUSE_S = 1000.0  # how long the fake clock says the run stayed stopped


class Clock:
    """A clock the test moves by hand, as a stand-in for the `time` module of the code under test."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_training_seconds_exclude_the_time_a_run_was_stopped(tmp_path, monkeypatch):
    offset = [0.0]  # seconds the engine's clocks are ahead of the real ones
    real = types.SimpleNamespace(time=time.time, perf_counter=time.perf_counter, monotonic=time.monotonic)
    shifted = types.SimpleNamespace(**{name: (lambda f=f: f() + offset[0]) for name, f in vars(real).items()})
    monkeypatch.setattr(loop, "time", shifted)
    run = RunStore(tmp_path).create(tiny_config(epochs=1, log_every=1), "paused")
    real_at: dict[int, float] = {}  # step -> real perf_counter when its point was reported

    def note(progress) -> None:
        if progress.phase == TRAINING:
            real_at.setdefault(progress.step, real.perf_counter())

    stop, stop_hook = stop_at(4)
    assert train_run(run, stop_event=stop, on_progress=lambda p: (note(p), stop_hook(p))) == "stopped"
    offset[0] += PAUSE_S  # the run stays stopped for PAUSE_S, as far as any clock of the engine can tell
    assert train_run(run, resume=True, on_progress=note) == "finished"

    time_of = {r["step"]: r["time"] for r in steps_of(run)}
    assert sorted(time_of) == list(range(1, 11))
    recorded_gap = time_of[5] - time_of[4]
    real_gap = real_at[5] - real_at[4]  # what the engine's clocks saw between the two points, minus the pause
    assert 0 < recorded_gap <= real_gap < PAUSE_S
    times = [time_of[s] for s in sorted(time_of)]
    assert times == sorted(times)


def _session(total_steps: int = 100, batch_size: int = 32) -> Plan:
    """What Reporter.send reads of a training session: steps of 10 an epoch."""
    return Plan(epochs=total_steps // 10, batch_size=batch_size, steps_per_epoch=10, device="cpu")


def test_the_heartbeat_eta_is_the_images_left_over_the_rate(tmp_path):
    run = RunStore(tmp_path).create(tiny_config(), "eta")
    report = Reporter(run, None)
    report.send(_session(total_steps=100, batch_size=32), Position(step=40), TRAINING, 1.0, 0.5, rate=640.0)
    beat = run.read_heartbeat()
    assert beat["eta_s"] == pytest.approx(60 * 32 / 640.0)  # 60 steps of 32 images at 640 images/s
    assert (beat["images_per_s"], beat["step"], beat["total_steps"]) == (640.0, 40, 100)
    report.send(_session(), Position(step=41), "evaluating", rate=None)  # a new phase is written at once
    assert run.read_heartbeat()["eta_s"] is None  # no rate measured: no ETA guessed


def test_the_heartbeat_is_written_at_most_once_a_second_unless_the_phase_changes_or_a_notice_comes(tmp_path, monkeypatch):
    clock = Clock()
    run = RunStore(tmp_path).create(tiny_config(), "beat")
    written: list[tuple[float, int]] = []
    monkeypatch.setattr(run, "write_heartbeat", lambda data: written.append((clock.now, data["step"])))
    hooked: list[int] = []
    report = Reporter(run, lambda progress: hooked.append(progress.step), clock=clock.monotonic)
    session = _session()
    for step in range(1, 13):  # 3 s of progress, one report every 0.25 s (exact in binary)
        clock.now = 100.0 + step * 0.25
        report.send(session, Position(step=step), TRAINING)
    assert hooked == list(range(1, 13))  # the hook sees every report
    assert [at for at, _ in written] == [100.25, 101.25, 102.25]
    clock.now += 0.25
    report.send(session, Position(step=13), "evaluating")
    clock.now += 0.25
    report.send(session, Position(step=13), "evaluating", notice="skipped 2 unreadable images")
    assert [step for _, step in written[3:]] == [13, 13]


def test_a_system_reading_is_due_every_5_seconds(monkeypatch):
    clock = Clock(50.0)
    monkeypatch.setattr(monitor, "time", clock)
    system = SystemMonitor(torch.device("cpu"))
    assert system.due()  # the first reading is wanted at once
    system.sample()
    clock.now = 54.9
    assert not system.due()
    clock.now = 55.0
    assert system.due()
    system.sample()
    clock.now = 59.99
    assert not system.due()
