"""User-facing error types that carry a one-line message, and the one way to cut a message to one line.

Importable without torch (the CLI's fast paths and the dashboard use it).
"""

from __future__ import annotations

import re

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # a terminal colour code


class DataError(RuntimeError):
    """A user-facing data problem; the message is one line saying what is wrong and how to fix it."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none (user-facing errors are one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def first_and_last_line(exc: BaseException) -> str:
    """An exception's first line, and its last where it has more: a remote error (a Ray task's, Ray Client's) says
    where it happened first and why last ("ray::task() (pid=…) … ModuleNotFoundError: No module named 'wrn_core'")."""
    text = ANSI_ESCAPE.sub("", str(exc))  # Ray colours a task's name for terminals
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return lines[0] if lines else type(exc).__name__
    return f"{lines[0]} {lines[-1]}"
