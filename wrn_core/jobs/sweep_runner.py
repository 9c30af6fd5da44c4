"""Runs a sweep's cells through a JobManager: each pending cell starts as soon as a slot for it is idle.

The job manager knows only jobs; this runner knows sweeps. It watches the manager (add_watcher) and,
when a job ends or every SWEEP_POLL_S seconds, starts the next cells of the sweeps it drives, in order.
"""

from __future__ import annotations

import threading
import time

from wrn_core.engine.devices import eligible_slots
from wrn_core.engine.resume import preflight
from wrn_core.jobs.supervisor import JobManager
from wrn_core.sweeps import Sweep, is_done, next_cells

SWEEP_POLL_S = 1.0  # how often it starts the next cells when no job has ended


class SweepRunner:
    """Drives sweeps on one job manager. Every public method is thread-safe."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self._lock = threading.Lock()
        self._sweeps: dict[str, Sweep] = {}  # name -> a sweep whose pending cells this runner starts
        self._errors: dict[str, str] = {}  # name -> why its last cell could not start
        self._last_poll = 0.0
        manager.add_watcher(self._on_tick)

    def run(self, sweep: Sweep) -> None:
        """Train a sweep's remaining cells, in order, each as soon as a slot for it is idle.

        Pending cells are created when they start; stopped or interrupted ones resume; finished,
        failed or diverged ones are left as they are. The caller saves the sweep file.
        """
        remaining = next_cells(self.manager.store, sweep)
        if remaining:
            preflight(remaining[0].config)  # one-line errors (data missing, no such device) before anything starts
        with self._lock:
            self._sweeps[sweep.name] = sweep
            self._errors.pop(sweep.name, None)
        self.advance(force=True)

    def stop(self, name: str) -> list[str]:
        """Stop a sweep: its running and queued cells stop, the others stay pending. Returns the runs stopped."""
        with self._lock:
            sweep = self._sweeps.pop(name, None)
        if sweep is None:
            return []
        return [cell.run for cell in sweep.cells() if self.manager.is_active(cell.run) and self.manager.stop(cell.run)]

    def active(self) -> list[str]:
        """The sweeps this runner is still starting cells of."""
        with self._lock:
            return sorted(self._sweeps)

    def error(self, name: str) -> str | None:
        """Why a sweep stopped starting cells (its cell and the one-line reason), or None."""
        with self._lock:
            return self._errors.get(name)

    def shutdown(self) -> None:
        """Start no more cells (running ones are the job manager's to stop)."""
        with self._lock:
            self._sweeps.clear()

    def _on_tick(self, ended: bool) -> None:
        # A cell that just ended frees its slot: start the next cell now, not at the next poll.
        self.advance(force=ended)

    def advance(self, force: bool = False) -> None:
        """Start every next cell that has an idle slot (at most every SWEEP_POLL_S unless forced)."""
        now = time.monotonic()
        if not force and now - self._last_poll < SWEEP_POLL_S:
            return
        self._last_poll = now
        with self._lock:
            sweeps = list(self._sweeps.values())
        for sweep in sweeps:
            self._start_next_cells(sweep)
            if is_done(self.manager.store, sweep):
                with self._lock:
                    self._sweeps.pop(sweep.name, None)

    def _start_next_cells(self, sweep: Sweep) -> None:
        manager = self.manager
        for cell in next_cells(manager.store, sweep):
            if manager.is_active(cell.run):
                continue
            load = manager.load()
            try:
                slots = eligible_slots(cell.config.device, manager.slots)
            except Exception:  # noqa: BLE001 - reported below as the sweep's error
                slots = []
            if not any(load.get(slot, 1) == 0 for slot in slots):
                return  # every slot for it is busy: the cells keep their order
            try:
                if manager.store.exists(cell.run):
                    manager.resume(cell.run)
                else:
                    manager.submit(cell.config, cell.run, sweep=sweep.name)
            except Exception as exc:  # noqa: BLE001 - one bad cell must not stop the supervisor
                with self._lock:
                    self._errors[sweep.name] = f"{cell.run}: {exc}"
                    self._sweeps.pop(sweep.name, None)
                return
