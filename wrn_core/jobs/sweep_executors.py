"""Every sweep executor a process drives, as one (`SweepExecutors`), and the one a `sweep` command opens (`open_executor`).

A page that lets the user choose where cells train starts a sweep on the chosen executor and stops,
watches or waits for it on all of them, without naming any: a sweep launched on Ray by one session
is stopped by another that only knows its name.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

from wrn_core.jobs.executor import LOCAL, RAY, Placement, SweepExecutor
from wrn_core.store import RunStore
from wrn_core.sweeps import Sweep


class SweepExecutors(SweepExecutor):
    """Executors by name (LOCAL, RAY): start() on the placement's, the rest over all of them."""

    def __init__(self, store: RunStore, executors: Mapping[str, SweepExecutor]) -> None:
        self.store = store
        self.executors = dict(executors)

    def start(self, sweep: Sweep, placement: Placement = Placement()) -> None:
        self.executors[placement.executor].start(sweep, placement)

    def drive(self, sweep: Sweep, placement: Placement = Placement()) -> None:
        self.executors[placement.executor].drive(sweep, placement)

    def stop(self, name: str) -> list[str]:
        asked: dict[str, None] = {}
        for executor in self.executors.values():
            asked.update(dict.fromkeys(executor.stop(name)))
        return list(asked)

    def running(self, name: str) -> bool:
        return any(executor.running(name) for executor in self.executors.values())

    def error(self, name: str) -> str | None:
        return next((why for why in (e.error(name) for e in self.executors.values()) if why), None)

    def waiting(self, name: str) -> list[str]:
        return list(dict.fromkeys(run for executor in self.executors.values() for run in executor.waiting(name)))

    def wait(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all([executor.wait(name, max(0.0, deadline - time.monotonic())) for executor in self.executors.values()])

    def shutdown(self) -> None:
        for executor in self.executors.values():
            executor.shutdown()


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


@contextmanager
def _local(store: RunStore, sweep: Sweep, placement: Placement, say: Callable[[str], None]) -> Iterator[SweepExecutor]:  # noqa: ARG001
    from wrn_core.jobs.supervisor import JobManager
    from wrn_core.jobs.sweep_runner import SweepRunner

    runner = SweepRunner(JobManager(store.root))
    try:
        yield runner
    finally:
        runner.shutdown()
        runner.manager.shutdown(timeout=120)


@contextmanager
def _ray(store: RunStore, sweep: Sweep, placement: Placement, say: Callable[[str], None]) -> Iterator[SweepExecutor]:
    from wrn_core.jobs.ray_connection import RayCluster
    from wrn_core.jobs.ray_executor import RaySweep
    from wrn_core.jobs.ray_nodes import check_shared_runs_dir

    with RayCluster(placement.address) as cluster:
        hosts = check_shared_runs_dir(store.root, placement.resources(sweep))
        where = "a local Ray started for this sweep" if cluster.started_here else cluster.address or "connected"
        say(f"ray: {where}; {len(hosts)} node(s) see {store.root.resolve()} ({', '.join(hosts)})")
        executor = RaySweep(store)
        try:
            yield executor
        finally:
            executor.shutdown()
            for name, why in sorted(executor.outcomes.items()):
                say(f"{name}: {why}")


OPENERS = {LOCAL: _local, RAY: _ray}


@contextmanager
def open_executor(store: RunStore, sweep: Sweep, placement: Placement,
                  say: Callable[[str], None] = _stderr) -> Iterator[SweepExecutor]:
    """The executor a `sweep` command trains `sweep` with, ready (Ray: connected, the shared runs directory
    checked), and closed after: a local one's queued jobs dropped and its running ones stopped; Ray's driver
    gone. `say` gets its one-line notices (where it runs; how odd cells ended)."""
    with OPENERS[placement.executor](store, sweep, placement, say) as executor:
        yield executor


def check_placement(placement: Placement) -> None:
    """ConfigError (one line) when the placement's executor cannot run in this process (ray missing), before
    anything is measured or made."""
    if placement.executor == RAY:
        from wrn_core.jobs.ray_nodes import require_ray

        require_ray()
