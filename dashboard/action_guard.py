"""The double-Launch guard: the same button action within a few seconds is done once, for every session of the server."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypeVar

import streamlit as st

T = TypeVar("T")
ONCE_WINDOW_S = 5.0  # the same action again within this many seconds is the same action


class ActionGuard:
    """Remembers each action key's result for `window_s` seconds.

    Streamlit may call an on_click twice (when a live view's fragment rerun interrupts the script run
    that called it), and a double click is two calls: either way it must be one launch. The guard is
    per server process, not per session, because the repeated call can arrive in another session's run.
    """

    def __init__(self, window_s: float = ONCE_WINDOW_S) -> None:
        self.window_s = window_s
        self._done: dict[str, tuple[float, Any]] = {}  # action key -> (monotonic time, its result)
        self._lock = threading.Lock()

    def once(self, key: str, action: Callable[[], T]) -> T:
        """Do `action` unless the same `key` did it less than window_s ago; then return that result.

        A failed action (one that raises) is not remembered, so it can be retried at once.
        """
        # The action runs under the lock: a second call waits for the first's result instead of racing it.
        with self._lock:
            now = time.monotonic()
            self._done = {k: v for k, v in self._done.items() if now - v[0] < self.window_s}
            if key in self._done:
                return self._done[key][1]
            result = action()
            self._done[key] = (time.monotonic(), result)
            return result


@st.cache_resource(show_spinner=False)
def action_guard() -> ActionGuard:
    """The server process's one ActionGuard (st.cache_resource: shared by every session)."""
    return ActionGuard()
