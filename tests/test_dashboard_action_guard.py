"""Tests for dashboard.action_guard: the same button action within its window is done once, across threads and sessions."""

from __future__ import annotations

import threading

import pytest

from dashboard.action_guard import ActionGuard, action_guard


def test_once_does_an_action_once_within_its_window():
    guard = ActionGuard()
    calls = []
    assert guard.once("launch a", lambda: calls.append(1) or "first") == "first"
    assert guard.once("launch a", lambda: calls.append(2) or "second") == "first"  # a double click
    assert calls == [1] and guard.once("launch b", lambda: "other") == "other"

    def fail():
        raise RuntimeError("no space left on device")

    with pytest.raises(RuntimeError):
        guard.once("launch c", fail)
    assert guard.once("launch c", lambda: "retried") == "retried"  # a failure is not remembered
    guard.window_s = 0.0  # the window has passed
    assert guard.once("launch a", lambda: "again") == "again"


class _ArrivalLock:
    """The guard's lock, counting the callers that have reached it (before they wait on it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.arrived = threading.Semaphore(0)

    def __enter__(self) -> None:
        self.arrived.release()
        self._lock.acquire()

    def __exit__(self, *exc_info) -> None:
        self._lock.release()


def test_a_concurrent_repeat_waits_for_the_first_and_gets_its_result():
    guard = ActionGuard()
    guard._lock = _ArrivalLock()
    calls, results = [], []
    inside, release = threading.Event(), threading.Event()

    def launch():
        calls.append(1)
        inside.set()
        assert release.wait(timeout=60), "the test never let the first launch finish"
        return "launched"

    def press():
        results.append(guard.once("launch", launch))

    first, second = threading.Thread(target=press), threading.Thread(target=press)
    first.start()
    assert inside.wait(timeout=30) and guard._lock.arrived.acquire(timeout=30)  # the first is inside its action
    second.start()
    assert guard._lock.arrived.acquire(timeout=30)  # the repeat has reached the guard while the first still runs
    release.set()
    for thread in (first, second):
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert calls == [1] and results == ["launched", "launched"]


def test_the_server_process_has_one_guard():
    assert action_guard() is action_guard()
