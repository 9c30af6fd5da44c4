"""How a training session that raised ends: the status, the one-line message and the cause it records."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch

from wrn_core.config import ConfigError, TrainConfig
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


class Diverged(Exception):
    """The loss became NaN or infinite; the run ends `diverged`."""

    def __init__(self, step: int) -> None:
        super().__init__(f"loss became NaN or infinite at step {step}")
        self.step = step


def ending_for(exc: Exception, config: TrainConfig | None, step: int, traceback_path: Path | None) -> tuple[str, str, str]:
    """(status, message, cause) for a session that raised `exc` at `step`; config None when it had not been read yet.

    The cause tells a caller whether the input was at fault (the CLI exits 2 for INPUT_ERROR). An unexpected
    error leaves its traceback in traceback_path (None: another process writes it, e.g. rank 0 under torchrun).
    """
    if isinstance(exc, Diverged):
        return DIVERGED, f"{exc}; try a lower learning rate", DIVERGED_ERROR
    if isinstance(exc, torch.OutOfMemoryError):
        hint = f" (batch {config.batch_size}, {config.model.name})" if config else ""
        return FAILED, f"CUDA out of memory at step {step}{hint}: try a smaller batch size or widen factor", OOM_ERROR
    if isinstance(exc, (ConfigError, DataError, RunCorruptError)):
        return FAILED, str(exc), INPUT_ERROR
    if isinstance(exc, RunWriteError):
        # Disk full or read-only: what was written stays; the temporary file of the failed write is gone.
        return FAILED, str(exc), IO_ERROR
    where = ""
    if traceback_path is not None:
        try:
            traceback_path.write_text(traceback.format_exc())
            where = f" (traceback in {traceback_path})"
        except OSError:
            pass
    detail = one_line(exc) if str(exc).strip() else ""
    return FAILED, f"{type(exc).__name__}: {detail}{where}", EXCEPTION_ERROR
