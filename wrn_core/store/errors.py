"""The store's errors, each with a one-line message: a run name or state refused, a busy run, a damaged file, a failed write."""

from __future__ import annotations


class RunStoreError(ValueError):
    """A run name is invalid, a run is missing, or a run cannot be changed now (one line)."""


class RunBusyError(RunStoreError):
    """Another process holds the run's lock."""


class RunCorruptError(RunStoreError):
    """A file of the run (config.json, checkpoint.pt) cannot be read; the message says which and why."""


class RunWriteError(OSError):
    """Writing a file of the run failed (disk full, read-only, ...); the message is one line."""

    def __str__(self) -> str:
        return str(self.strerror)
