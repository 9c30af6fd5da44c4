"""Helpers for benchmarks that time `python -m wrn_core ...` as separate processes, the way a user runs them.

Imports only the standard library and wrn_core (config, runstore, cli's command_for), so the GPU
machine (no streamlit, plotly, torchinfo) can run every benchmark that uses it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench.common import REPO_ROOT, rates_from_points, step_points
from wrn_core.cli import command_for
from wrn_core.config import TrainConfig
from wrn_core.store import Run

TAIL_CHARS = 3000  # how much of a failed command's output an error message carries


def subprocess_env(threads: int | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child `python -m wrn_core ...`: this checkout first on PYTHONPATH, and with
    threads, OMP_NUM_THREADS/MKL_NUM_THREADS set (torch reads them at start: its CPU thread count)."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env.update(extra or {})
    return env


def train_args(config: TrainConfig, runs_dir: str | Path, name: str) -> list[str]:
    """`train ...` arguments that re-create `config` field for field (wrn_core.cli.command_for), quiet."""
    words = shlex.split(command_for(config, name=name, runs_dir=str(runs_dir)))
    start = words.index("train")
    return [*words[start:], "--quiet"]


def wrn_command(args: Sequence[str]) -> list[str]:
    """`python -m wrn_core ARGS` with this interpreter."""
    return [sys.executable, "-m", "wrn_core", *args]


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`) starting `-m wrn_core ARGS` in nproc processes on this node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "wrn_core", *args]


@dataclass(frozen=True)
class Timed:
    """A finished child process: its wall-clock seconds (launch to exit) and output."""

    wall_s: float
    returncode: int
    stdout: str
    stderr: str
    started_at: float  # time.time() at launch, to compare with the run store's timestamps
    own_cpu_s: float | None = None  # user + system CPU seconds of the process itself (not its children), if sampled


CPU_SAMPLE_S = 0.25  # how often run_timed(sample_cpu=True) reads the child's CPU times


def run_timed(command: Sequence[str], env: dict[str, str], timeout_s: float, check: bool = True,
              sample_cpu: bool = False) -> Timed:
    """Run a command to its end, timing it with a monotonic clock; RuntimeError (with the output's tail) if it fails.

    sample_cpu: also read the child's own CPU seconds (psutil, children excluded) every CPU_SAMPLE_S;
    the last reading before it exits is reported, so up to CPU_SAMPLE_S of its final CPU is missed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
        own_cpu = None
        watched = None
        if sample_cpu:
            import psutil

            try:
                watched = psutil.Process(proc.pid)
            except psutil.Error:
                watched = None
        try:
            while proc.poll() is None:
                if time.perf_counter() - start > timeout_s:
                    proc.kill()
                    proc.wait()
                    raise subprocess.TimeoutExpired(list(command), timeout_s)
                if watched is not None:
                    try:
                        times = watched.cpu_times()
                        own_cpu = times.user + times.system
                    except Exception:  # noqa: BLE001 - it exited between poll() and the reading
                        pass
                time.sleep(CPU_SAMPLE_S if watched is not None else 0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        output = (stdout + stderr)[-TAIL_CHARS:]
        raise RuntimeError(f"{' '.join(command[:6])} ... exited {proc.returncode}:\n{output}")
    return Timed(wall, proc.returncode, stdout, stderr, started_at, own_cpu)


def steps_per_epoch(records: list[dict[str, Any]]) -> int | None:
    """Optimizer steps in one epoch, from the first `epoch` record (its step count)."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    return int(epochs[0]["step"]) // int(epochs[0]["epoch"]) if epochs else None


def run_rates(run: Run, warmup_steps: int) -> list[float]:
    """Images/s of each logging window of a finished run's `step` records (bench.common.rates_from_points):
    windows ending at or before warmup_steps and windows that cross an epoch boundary are dropped."""
    records = run.read_metrics()
    per_epoch = steps_per_epoch(records)
    if not per_epoch:
        return []
    return rates_from_points(step_points(records), per_epoch, warmup_steps)
