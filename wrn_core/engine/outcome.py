"""How a training session that raised ends: the status, the one-line message and the error kind it records."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import torch

from wrn_core.config import ConfigError
from wrn_core.errors import DataError, one_line
from wrn_core.store import RunCorruptError, RunWriteError
from wrn_core.store.records import (
    DIVERGED,
    DIVERGED_ERROR,
    EXCEPTION_ERROR,
    FAILED,
    INPUT_ERROR,
    IO_ERROR,
    OOM_ERROR,
)

if TYPE_CHECKING:
    from wrn_core.engine.checkpoint import Position
    from wrn_core.engine.distributed import Dist
    from wrn_core.engine.loop import Session


class Diverged(Exception):
    """The loss became NaN or infinite; the run ends `diverged`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"loss became NaN or infinite at step {step}")
        self.step = step


def ending_for(exc: Exception, run: Any, session: "Session | None", position: "Position", dist: "Dist") -> tuple[str, str, str]:
    """(status, message, error_kind) for a session that raised `exc`. error_kind tells a caller whether the
    input was at fault (the CLI exits 2 for INPUT_ERROR). An unexpected error leaves its traceback in error.txt."""
    if isinstance(exc, Diverged):
        return DIVERGED, f"{exc}; try a lower learning rate", DIVERGED_ERROR
    if isinstance(exc, torch.OutOfMemoryError):
        hint = f" (batch {session.config.batch_size}, {session.config.model.name})" if session else ""
        return FAILED, f"CUDA out of memory at step {position.step}{hint}: try a smaller batch size or widen factor", OOM_ERROR
    if isinstance(exc, (ConfigError, DataError, RunCorruptError)):
        return FAILED, str(exc), INPUT_ERROR
    if isinstance(exc, RunWriteError):
        # Disk full or read-only: what was written stays; the temporary file of the failed write is gone.
        return FAILED, str(exc), IO_ERROR
    where = ""
    if dist.is_main:
        try:
            run.error_path.write_text(traceback.format_exc())
            where = f" (traceback in {run.error_path})"
        except OSError:
            pass
    detail = one_line(exc) if str(exc).strip() else ""
    return FAILED, f"{type(exc).__name__}: {detail}{where}", EXCEPTION_ERROR
