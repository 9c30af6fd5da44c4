"""The local sweep executor: a sweep's cells as jobs of a JobManager, each started as soon as a slot for it is idle.

The job manager knows only jobs; this runner knows sweeps. It watches the manager (add_watcher) and,
when a job ends or every SWEEP_POLL_S seconds, asks each sweep's cell order for as many cells as
there are idle slots for them, and starts them.
"""

from __future__ import annotations

import threading
import time

from wrn_core.engine.devices import eligible_slots
from wrn_core.jobs.executor import Placement, SweepExecutor, cells_to_stop
from wrn_core.jobs.supervisor import JobManager
from wrn_core.store import RunStoreError
from wrn_core.sweeps import Sweep, load_sweep
from wrn_core.sweeps.cell_order import CellOrder, Openings, cell_order

SWEEP_POLL_S = 1.0  # how often it starts the next cells when no job has ended


class SweepRunner(SweepExecutor):
    """Drives sweeps on one job manager (this machine's devices, one cell per slot). Every public method is thread-safe."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.store = manager.store
        self._lock = threading.Lock()
        self._orders: dict[str, tuple[Sweep, CellOrder]] = {}  # name -> a sweep whose cells this runner starts
        self._cells: dict[str, list[str]] = {}  # name -> the cell runs of every sweep it has driven
        self._errors: dict[str, str] = {}  # name -> why its last cell could not start
        self._last_poll = 0.0
        # One advance at a time: the watcher thread and a caller's drive() would otherwise both be handed the same
        # cell by an order that has not seen it started yet (a search asks for seconds), and submit it twice.
        self._advancing = threading.RLock()
        manager.add_watcher(self._on_tick)

    def drive(self, sweep: Sweep, placement: Placement = Placement()) -> None:  # noqa: ARG002 - the slots are this machine's
        with self._lock:
            self._orders[sweep.name] = (sweep, cell_order(sweep, self.store.root))
            self._cells[sweep.name] = [cell.run for cell in sweep.cells()]
            self._errors.pop(sweep.name, None)
        self.advance(force=True)

    def stop(self, name: str) -> list[str]:
        """Start no more cells of the sweep; its queued cells are dropped (stopped) and its running ones stop with a
        checkpoint, also those another process started (through their lock's owner or a stop request)."""
        with self._lock:
            driven = self._orders.pop(name, None)
        try:
            sweep = driven[0] if driven else load_sweep(self.store.root, name)
        except RunStoreError:
            return []
        held = [cell.run for cell in sweep.cells() if self.manager.is_active(cell.run)]
        return [run for run in cells_to_stop(self.store, sweep, held) if self.manager.stop(run)]

    def running(self, name: str) -> bool:
        with self._lock:
            if name in self._orders:
                return True
            cells = self._cells.get(name, [])
        return any(self.manager.is_active(run) for run in cells)

    def active(self) -> list[str]:
        """The sweeps this runner is still starting cells of."""
        with self._lock:
            return sorted(self._orders)

    def error(self, name: str) -> str | None:
        with self._lock:
            return self._errors.get(name)

    def wait(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            cells = list(self._cells.get(name, []))
        for run in cells:
            self.manager.wait(run, max(0.0, deadline - time.monotonic()))
        return not any(self.manager.is_active(run) for run in cells)

    def shutdown(self) -> None:
        with self._lock:
            self._orders.clear()

    def _on_tick(self, ended: bool) -> None:
        # A cell that just ended frees its slot: start the next cell now, not at the next poll.
        self.advance(force=ended)

    def advance(self, force: bool = False) -> None:
        """Start the next cells of every sweep that has an idle slot (at most every SWEEP_POLL_S unless forced)."""
        now = time.monotonic()
        if not force and now - self._last_poll < SWEEP_POLL_S:
            return
        self._last_poll = now
        with self._advancing:
            with self._lock:
                driven = list(self._orders.values())
            for sweep, order in driven:
                order.prune(self.store)
                self._start_next_cells(sweep, order)
                if order.is_done(self.store):
                    with self._lock:
                        self._orders.pop(sweep.name, None)

    def _idle_slots(self, sweep: Sweep) -> int:
        """How many cells of the sweep could start now: the idle slots of its device (its cells share one)."""
        try:
            slots = eligible_slots(sweep.base.device, self.manager.slots)
        except Exception:  # noqa: BLE001 - no such device: the first cell's start says why, as the sweep's error
            return 1
        load = self.manager.load()
        return sum(1 for slot in slots if load.get(slot, 1) == 0)

    def _start_next_cells(self, sweep: Sweep, order: CellOrder) -> None:
        held = frozenset(cell.run for cell in sweep.cells() if self.manager.is_active(cell.run))
        for cell in order.next_cells(self.store, Openings(free=self._idle_slots(sweep), busy=held)):
            try:
                if self.store.exists(cell.run):
                    self.manager.resume(cell.run)
                else:
                    self.manager.submit(cell.config, cell.run, sweep=sweep.name)
            except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the supervisor
                with self._lock:
                    self._errors[sweep.name] = f"{cell.run}: {exc}"
                    self._orders.pop(sweep.name, None)
                return
