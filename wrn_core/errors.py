"""User-facing error types that carry a one-line message; importable without torch (the CLI's fast paths)."""

from __future__ import annotations


class DataError(RuntimeError):
    """A user-facing data problem; the message is one line saying what is wrong and how to fix it."""
