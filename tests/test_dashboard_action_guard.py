"""Tests for dashboard.action_guard: the same button action within its window is done once, across threads and sessions."""

from __future__ import annotations

import threading
import time

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


def test_a_concurrent_repeat_waits_for_the_first_and_gets_its_result():
    guard = ActionGuard()
    calls, results = [], []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return "launched"

    threads = [threading.Thread(target=lambda: results.append(guard.once("launch", slow))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert calls == [1] and results == ["launched", "launched"]


def test_the_server_process_has_one_guard():
    assert action_guard() is action_guard()
