"""Writing a run's files: one-line write errors, atomic replacement, and the store's error types (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from wrn_core.errors import one_line


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


def write_error(exc: OSError, what: str) -> RunWriteError:
    reason = os.strerror(exc.errno).lower() if exc.errno else one_line(exc)
    return RunWriteError(exc.errno or 0, f"{reason} while writing {what}")


def write_atomic(path: Path, data: bytes, what: str | None = None) -> None:
    """Replace path with data via a temporary file in the same directory; no temp file survives a failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise write_error(exc, what or path.name) from exc


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass

