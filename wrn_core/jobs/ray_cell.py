"""One sweep cell on a Ray worker: a detached actor (`CellTrainer`) running `python -m wrn_core resume CELL` to its end.

A detached actor, not a task: it outlives the driver that made it, so a driver that dies leaves its
cells training, and the next `sweep NAME --resume --executor ray` finds them by name and waits on the
same trainers (CellTrainer.run joins the trainer it already started). The actor holds the cell's CPUs
and GPUs for its life; the driver kills it once its trainer has ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from wrn_core.store import INHERITED_LOCK_ENV
from wrn_core.store.records import EXECUTOR_ENV, EXECUTOR_RAY, NODE_ENV

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent thread dies
ACTOR_NAMESPACE = "wrn-lab"  # Ray namespace of every cell's actor
ACTOR_PREFIX = "wrn-cell"  # an actor's name: wrn-cell:<runs dir hash>:<run>:<attempt token>


def _die_with_parent() -> None:
    """In the trainer, before exec: die by SIGKILL when the thread that started it dies (Linux). That thread is
    the actor's event loop, which lives as long as the actor's process, so a lost worker (node death, OOM kill)
    never leaves a trainer holding the run; the kernel then frees its lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def actor_prefix(root: str, run: str) -> str:
    """The start of the names of `run`'s actors: one runs directory's cells never meet another's on a cluster."""
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return f"{ACTOR_PREFIX}:{digest}:{run}:"


class CellTrainer:
    """One cell's trainer on the node Ray placed this actor on (use it as a Ray actor).

    run() starts `python -m wrn_core resume NAME` once (output into job.log; CUDA_VISIBLE_DEVICES as Ray set it
    for this actor) and returns when it exits: {"code", "host", "pid", "node"}. A second caller of run() (a
    driver that re-attached) waits on the same trainer. interrupt() sends it SIGINT (it checkpoints and stops).
    """

    def __init__(self, name: str, root: str) -> None:
        self.name, self.root = name, root
        self._proc: subprocess.Popen | None = None
        self._exited: asyncio.Future | None = None

    def _start(self) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()
        env = {**os.environ, EXECUTOR_ENV: EXECUTOR_RAY, NODE_ENV: node}
        env.pop(INHERITED_LOCK_ENV, None)  # the trainer takes the run's lock itself
        command = [sys.executable, "-m", "wrn_core", "resume", self.name, "--runs-dir", self.root, "--quiet"]
        with open(Path(self.root) / self.name / "job.log", "ab") as log:
            self._proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        self._exited = asyncio.get_running_loop().run_in_executor(None, self._proc.wait)

    async def run(self) -> dict[str, Any]:
        if self._proc is None:
            self._start()
        code = await asyncio.shield(self._exited)
        import ray

        return {"code": code, "host": socket.gethostname(), "pid": self._proc.pid,
                "node": ray.get_runtime_context().get_node_id()}

    async def interrupt(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
