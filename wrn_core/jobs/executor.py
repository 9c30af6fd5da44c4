"""One interface for whatever trains a sweep's cells (this machine's job queues, a Ray cluster): `SweepExecutor`.

`start(sweep, placement)` checks, saves the sweep's file and trains the cells left, in the order the
sweep's `cell_order` hands them out; `resume(name, placement)` does the same for a saved sweep;
`stop(name)` stops every cell of the sweep some process holds (`cells_to_stop`), wherever it trains;
`running`, `error`, `waiting` and `wait` are what a live view and the CLI read. `Placement` says where
cells train (the executor, a Ray address, what each cell reserves: `CellResources.default_for`). The
pages, the CLI and the tests drive every executor through these methods alone.
"""

from __future__ import annotations

import os
import shlex
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Collection

from wrn_core.config import ConfigError
from wrn_core.engine.resume import preflight
from wrn_core.store import RunStore
from wrn_core.store.records import ACTIVE_STATUSES, EXECUTOR_LOCAL, EXECUTOR_RAY, EXECUTORS
from wrn_core.sweeps import Sweep, cell_statuses, load_sweep, next_cells, save_sweep

LOCAL, RAY = EXECUTOR_LOCAL, EXECUTOR_RAY


@dataclass(frozen=True)
class CellResources:
    """What each cell reserves on its node (Ray's num_cpus, num_gpus)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if not self.cpus > 0:
            raise ConfigError(f"--cpus-per-cell must be above 0, got {self.cpus:g}")
        if not self.gpus >= 0:
            raise ConfigError(f"--gpus-per-cell must be 0 or more, got {self.gpus:g}")

    @classmethod
    def default_for(cls, sweep: Sweep, cpus: float = 1.0, gpus: float | None = None) -> "CellResources":
        """What a sweep's cells reserve: `cpus` each, and `gpus` each where given, else one GPU per cell of a
        CUDA sweep and none otherwise (the rule the CLI and the Sweep page share)."""
        if gpus is None:
            gpus = 1.0 if sweep.base.device.startswith("cuda") else 0.0
        return cls(cpus=float(cpus), gpus=float(gpus))


@dataclass(frozen=True)
class Placement:
    """Where a sweep's cells train: this machine's job queues (local), or a Ray cluster at `address` (None:
    RAY_ADDRESS, else a local Ray) with `cpus`/`gpus` reserved per cell (gpus None: CellResources.default_for),
    a cell lost with its node started again from its checkpoint up to `max_retries` times."""

    executor: str = LOCAL
    address: str | None = None
    cpus: float = 1.0
    gpus: float | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}")
        if self.max_retries < 0:
            raise ConfigError(f"--max-retries must be 0 or more, got {self.max_retries}")

    def resources(self, sweep: Sweep) -> CellResources:
        """What each cell reserves; ConfigError for a Ray sweep pinned to one GPU (Ray picks each cell's GPUs)."""
        if self.executor == RAY and sweep.base.device.startswith("cuda:"):
            raise ConfigError(f"on Ray each cell trains on the GPUs Ray assigns it (CUDA_VISIBLE_DEVICES): use --device "
                              f"cuda, not {sweep.base.device}")
        return CellResources.default_for(sweep, self.cpus, self.gpus)

    def describe(self) -> str:
        """How the cells train, for a message: 'one after another' or 'as Ray actors (HEAD:6379)'."""
        if self.executor == RAY:
            return f"as Ray actors ({self.address or 'RAY_ADDRESS, else a local Ray'})"
        return "one after another"

    def flags(self) -> list[str]:
        """The `sweep NAME --resume` flags that continue on the same executor with the same reservations."""
        if self.executor != RAY:
            return []
        flags = ["--executor", RAY]
        if self.address:
            flags += ["--ray-address", self.address]
        if self.cpus != Placement.cpus:
            flags += ["--cpus-per-cell", f"{self.cpus:g}"]
        if self.gpus is not None:
            flags += ["--gpus-per-cell", f"{self.gpus:g}"]
        if self.max_retries != Placement.max_retries:
            flags += ["--max-retries", str(self.max_retries)]
        return flags

    def resume_command(self, sweep: str, runs_dir: str | os.PathLike[str]) -> str:
        """The shell command that continues sweep `sweep` here: `python -m wrn_core sweep NAME --resume … --runs-dir DIR`."""
        words = ["python", "-m", "wrn_core", "sweep", sweep, "--resume", *self.flags(), "--runs-dir", str(runs_dir)]
        return shlex.join(words)


def cells_to_stop(store: RunStore, sweep: Sweep, held: Collection[str] = ()) -> list[str]:
    """The cells a stop of the sweep reaches, in grid order: those an executor still holds (`held`) and every cell
    some process holds, queued or running, whoever started it (another dashboard, an earlier one, the CLI)."""
    statuses = cell_statuses(store, sweep)
    return [run for run, status in statuses.items() if run in held or status in ACTIVE_STATUSES]


class SweepExecutor(ABC):
    """Trains sweeps' cells. Every public method is thread-safe; `name` is a sweep's name."""

    store: RunStore

    def start(self, sweep: Sweep, placement: Placement = Placement()) -> None:
        """Train the sweep's cells that are left (pending, stopped, interrupted), saving its file first.

        One-line errors before anything is saved: ConfigError (the executor cannot run here, e.g. ray is
        missing), DataError or ConfigError from the first cell's pre-flight, RunStoreError (a different sweep
        of that name, another process drives it).
        """
        self.check(placement)
        remaining = next_cells(self.store, sweep)
        if remaining:
            preflight(remaining[0].config)  # data missing, no such device: before anything is saved
        save_sweep(self.store.root, sweep)
        self.drive(sweep, placement)

    def resume(self, name: str, placement: Placement = Placement()) -> None:
        """start() of the saved sweep `name`: its remaining cells; RunStoreError when there is no such sweep."""
        self.start(load_sweep(self.store.root, name), placement)

    def check(self, placement: Placement) -> None:  # noqa: ARG002 - an executor that can always run checks nothing
        """ConfigError (one line) when this executor cannot train here."""

    @abstractmethod
    def drive(self, sweep: Sweep, placement: Placement) -> None:
        """Start training the saved sweep's cells (the part of start() after the checks)."""

    @abstractmethod
    def stop(self, name: str) -> list[str]:
        """Start no more cells of the sweep and stop those cells_to_stop names; returns the cells asked to stop."""

    @abstractmethod
    def running(self, name: str) -> bool:
        """Whether this executor still drives the sweep: starts its cells, or holds some of them."""

    @abstractmethod
    def error(self, name: str) -> str | None:
        """Why this executor stopped driving the sweep before its end (one line), or None."""

    def waiting(self, name: str) -> list[str]:  # noqa: ARG002
        """Cells this executor has queued whose trainer has not started yet."""
        return []

    @abstractmethod
    def wait(self, name: str, timeout: float) -> bool:
        """Block until no cell of the sweep is held by this executor, at most `timeout` seconds; True when none is."""

    def shutdown(self) -> None:
        """Start no more cells; what trains keeps training (a CLI's executor stops its cells first)."""
