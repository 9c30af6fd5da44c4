"""Waiting for a condition another process or thread brings about: poll until it holds, or fail the test saying what never came."""

from __future__ import annotations

import subprocess
import time
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 120.0, interval: float = 0.05,
               proc: subprocess.Popen | None = None) -> T:
    """condition()'s first truthy value, polled every `interval` s. The test fails naming `what` when `timeout` s
    pass first, or when `proc` (the process expected to bring it about) exits first, with that process's output."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"{what}: the process exited with code {proc.returncode} first\n{out or ''}{err or ''}"[-4000:],
                        pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(interval)
