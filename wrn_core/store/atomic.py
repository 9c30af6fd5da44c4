"""Writing a run's files: atomic replacement, and write errors as one line (no torch)."""

from __future__ import annotations

import os
from pathlib import Path

from wrn_core.errors import one_line
from wrn_core.store.errors import RunWriteError


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

