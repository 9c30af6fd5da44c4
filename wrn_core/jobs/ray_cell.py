"""One sweep cell on a Ray worker: the body of its Ray task, `python -m wrn_core resume CELL` to its end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from wrn_core.store import INHERITED_LOCK_ENV
from wrn_core.store.records import EXECUTOR_ENV, EXECUTOR_RAY

CELL_STOP_GRACE_S = 60.0  # a cancelled task's trainer: time to checkpoint after SIGINT before SIGKILL
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies


def _die_with_parent() -> None:
    """In the trainer, before exec: die by SIGKILL when the worker that started it dies (Linux), so a lost
    worker never leaves a trainer holding the run; the kernel then frees its lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_cell(name: str, root: str) -> dict[str, Any]:
    """The body of a cell's Ray task: `python -m wrn_core resume NAME` to its end, output into job.log.

    Cancelled (ray.cancel raises KeyboardInterrupt here): the trainer gets SIGINT, checkpoints and stops.
    Returns {"code": the trainer's exit code, "host", "pid"}.
    """
    env = {**os.environ, EXECUTOR_ENV: EXECUTOR_RAY}
    env.pop(INHERITED_LOCK_ENV, None)  # the trainer takes the run's lock itself
    command = [sys.executable, "-m", "wrn_core", "resume", name, "--runs-dir", root, "--quiet"]
    with open(Path(root) / name / "job.log", "ab") as log:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)
    try:
        code = proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(CELL_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return {"code": code, "host": socket.gethostname(), "pid": proc.pid}
