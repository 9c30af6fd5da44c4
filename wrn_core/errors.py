"""User-facing error types that carry a one-line message, and the one way to cut a message to its first line.

Importable without torch (the CLI's fast paths and the dashboard use it).
"""

from __future__ import annotations


class DataError(RuntimeError):
    """A user-facing data problem; the message is one line saying what is wrong and how to fix it."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none (user-facing errors are one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
