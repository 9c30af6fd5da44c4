"""Sweeps on a Ray cluster: each cell a detached Ray actor running `python -m wrn_core resume CELL` on whichever node Ray picks.

Ray places the cells; the run store stays the contract. `RaySweep` is the Ray executor of a sweep
process (Ray's driver): it creates each cell's run (queued) before submitting it and never submits a
run that a process holds; the trainer takes the run's lock itself, so a second copy of a cell could
not train anyway. Every node must see the runs directory at the same path, on a filesystem where
flock works across machines (NFSv4, CephFS, Lustre...): `ray_nodes.check_shared_runs_dir` proves it
before the first cell.

A cell whose actor is lost (its node died, its worker crashed or was OOM-killed, its trainer was
killed by a signal) before its trainer recorded an end is started again from its checkpoint, on
whatever node has room, up to `max_retries` times per drive; each retry is a `retry` record in its
metrics.jsonl. A cell that ended by itself (finished, failed for bad input, stopped) is never retried.
A cell lost more often ends `interrupted` with the reason, and `sweep NAME --resume --executor ray`
continues it. The actors are detached: if the driver dies, its cells keep training, and the next
driver of the sweep finds them by name (ray_cell.actor_prefix) and waits on the same trainers.

Stopping goes through the run directory (Run.request_stop), which every trainer polls at its logging
points, so it works whatever node a cell is on. Ray is imported lazily: `import wrn_core` and the
dashboard never need it.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from wrn_core.errors import first_and_last_line
from wrn_core.jobs.executor import CellResources, Placement, SweepExecutor, cells_to_stop
from wrn_core.jobs.ray_cell import ACTOR_NAMESPACE, CellTrainer, actor_prefix
from wrn_core.jobs.ray_nodes import NodesPublisher, cells_at_once, import_ray, lost, lost_reason
from wrn_core.jobs.supervisor import exit_status
from wrn_core.store import RunBusyError, RunStore, RunStoreError
from wrn_core.store.lock import ROLE_QUEUED, ROLE_RECONCILING, ROLE_TRAINING, RunLock, queue_lock_name
from wrn_core.store.records import ACTIVE_STATUSES, EXECUTOR_RAY, INTERRUPTED, QUEUED, STOPPED, retry_record
from wrn_core.sweeps import Cell, Sweep, load_sweep
from wrn_core.sweeps.cell_order import CellOrder, Openings, cell_order

POLL_S = 0.5  # how long the driver's thread waits for tasks to end before it looks at its sweeps again
RELAUNCH_WAIT_S = 120.0  # a lost cell's trainer may hold its run a moment longer (it dies with its worker)


# ---------------------------------------------------------------------------------------------
# The driver's side


@dataclass
class _Task:
    actor: Any  # the cell's CellTrainer actor
    ref: Any  # its run() in flight


@dataclass
class _Relaunch:
    reason: str
    node: str
    epoch: int
    deadline: float = field(default_factory=lambda: time.monotonic() + RELAUNCH_WAIT_S)


@dataclass(eq=False)  # hashed by identity: a key of the watcher's maps
class _Drive:
    """One sweep driven on Ray: its cell order, its cells in flight, and the sweep's queue lock while it drives."""

    sweep: Sweep
    resources: CellResources
    order: CellOrder
    lock: RunLock
    actor_class: Any  # CellTrainer as a Ray actor class reserving `resources`
    max_retries: int
    resume: str  # the command that continues the sweep with the same placement (for a cell's message)
    tasks: dict[str, _Task] = field(default_factory=dict)  # run -> its actor, while it is in flight
    handed: set[str] = field(default_factory=set)  # every cell submitted (or found held) in this drive: once each
    relaunch: dict[str, _Relaunch] = field(default_factory=dict)  # lost cells to start again once their lock is free
    retries: dict[str, int] = field(default_factory=dict)  # run -> retries in this drive
    stopping: bool = False
    finished: bool = False
    error: str | None = None

    @property
    def queue_lock(self) -> str:
        return self.lock.path.name


class RaySweep(SweepExecutor):
    """Sweeps' cells as detached Ray actors, driven from this process (use it inside a ray_connection.RayCluster).

    start() takes the sweep's queue lock (store.lock.queue_lock_name), which every cell it queues names in its
    status: to any reader on any node a cell waiting in Ray's queue reads `queued` while this driver lives, and
    `interrupted` once it is gone; a second driver of the same sweep is refused. It adopts the cells an earlier
    driver left training (their actors), then submits the cells the sweep's order hands out; a thread waits on
    them, starts lost ones again, settles each ended cell's status, prunes and asks the order again, and lets go
    of the queue lock once no cell is left in flight. `outcomes`: run -> how its cell ended, where oddly.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.root = str(store.root.resolve())
        self.outcomes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drives: dict[str, _Drive] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._nodes = NodesPublisher(self.root)  # <sweep>.nodes.json: the cluster as this driver sees it

    def check(self, placement: Placement) -> None:  # noqa: ARG002
        import_ray()

    def drive(self, sweep: Sweep, placement: Placement = Placement()) -> None:
        ray = import_ray()
        resources = placement.resources(sweep)
        with self._lock:
            if sweep.name in self._drives and not self._drives[sweep.name].finished:
                raise RunStoreError(f"sweep {sweep.name!r} is already running on Ray")
            lock = RunLock(self.store.root / queue_lock_name(sweep.name))
            try:
                lock.acquire(ROLE_QUEUED, f"sweep {sweep.name}", wait_s=0.0)
            except RunBusyError as exc:
                raise RunBusyError(f"{exc} (another `sweep {sweep.name}` drives its cells)") from None
            actor_class = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus, max_restarts=0)(CellTrainer)
            drive = _Drive(sweep, resources, cell_order(sweep, self.store.root), lock, actor_class, placement.max_retries,
                           placement.resume_command(sweep.name, self.store.root))
            self._drives[sweep.name] = drive
            self._nodes.publish(ray, [sweep.name], force=True)
            self._adopt(ray, drive)
            self._submit(ray, drive)
            self._finish_if_idle(drive)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="ray-sweep", daemon=True)
                self._thread.start()

    def _adopt(self, ray: Any, drive: _Drive) -> None:
        """Wait on the cells whose actors an earlier driver of the sweep left (training, or waiting for a node)."""
        names = {entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                 if entry.get("namespace") == ACTOR_NAMESPACE}
        for cell in drive.sweep.cells():
            prefix = actor_prefix(self.root, cell.run)
            for actor_name in sorted(n for n in names if n.startswith(prefix)):
                try:
                    actor = ray.get_actor(actor_name, namespace=ACTOR_NAMESPACE)
                except ValueError:
                    continue  # it died meanwhile
                drive.tasks[cell.run] = _Task(actor, actor.run.remote())
                drive.handed.add(cell.run)

    def _submit(self, ray: Any, drive: _Drive) -> None:
        """Claim and submit the cells the order hands out now (under self._lock)."""
        if drive.stopping or drive.error:
            return
        free = max(0, cells_at_once(ray, drive.resources) - len(drive.tasks))
        openings = Openings(free=free, queues=True, busy=frozenset(drive.handed))
        for cell in drive.order.next_cells(self.store, openings):
            if cell.run in drive.handed:
                continue
            drive.handed.add(cell.run)
            if self._claim(drive, cell.run, cell):
                self._launch(drive, cell.run)

    def _launch(self, drive: _Drive, name: str) -> None:
        """A new actor for the cell (named, detached: it outlives this driver), and its run() in flight."""
        actor = drive.actor_class.options(name=actor_prefix(self.root, name) + secrets.token_hex(4),
                                          namespace=ACTOR_NAMESPACE, lifetime="detached").remote(name, self.root)
        drive.tasks[name] = _Task(actor, actor.run.remote())

    def _claim(self, drive: _Drive, name: str, cell: Cell | None = None, retry: dict[str, Any] | None = None) -> bool:
        """Create the cell's run (or mark an existing one) queued for Ray, with a retry record when it is started
        again, then let go of its lock for the trainer to take; False when some process holds the run."""
        if not self.store.exists(name) and cell is not None:
            run = self.store.create(cell.config, name, hold=ROLE_QUEUED, sweep=drive.sweep.name,
                                    executor=EXECUTOR_RAY, host=None)
        else:
            run = self.store.get(name)
            try:
                run.acquire(ROLE_QUEUED, wait_s=0.0)
            except RunBusyError:
                return False
        try:
            message = "queued on Ray: waiting for a worker"
            if retry is not None:
                run.append_metrics([retry])
                message = (f"queued on Ray again (retry {retry['attempt']}/{retry['of']}): {retry['reason']}; "
                           "waiting for a worker")
            run.write_status(QUEUED, message, executor=EXECUTOR_RAY, slot=None, queue_lock=drive.queue_lock, node=None)
        finally:
            run.release()
        return True

    def _finish_if_idle(self, drive: _Drive) -> None:
        """No cell in flight or to start again: let go of the sweep (under self._lock)."""
        if not drive.finished and not drive.tasks and not drive.relaunch:
            drive.finished = True
            drive.lock.release()
            if not drive.error:  # the cluster as it was at the end (a lost cluster would keep ray.nodes() waiting)
                self._nodes.publish(import_ray(), [drive.sweep.name], force=True)

    # -- the thread that waits on the cells --------------------------------------------------------------
    def _watch(self) -> None:
        ray = import_ray()
        while not self._closed.is_set():
            with self._lock:
                refs = {task.ref: (drive, name) for drive in self._drives.values() for name, task in drive.tasks.items()}
            try:
                ended = self._wait_tasks(ray, refs)
                with self._lock:
                    for (drive, name), (result, exc) in ended.items():
                        task = drive.tasks.pop(name)
                        ray.kill(task.actor, no_restart=True)  # its trainer has exited: free what it reserves
                        self._settle(drive, name, result, exc)
                    for drive in [d for d in self._drives.values() if not d.finished]:
                        self._advance(ray, drive)
                    self._nodes.publish(ray, [d.sweep.name for d in self._drives.values() if not d.finished])
            except Exception as exc:  # noqa: BLE001 - the cluster lost, a store that cannot be written: said, not died
                self._give_up(first_and_last_line(exc))

    def _wait_tasks(self, ray: Any, refs: dict[Any, tuple[_Drive, str]]) -> dict[tuple[_Drive, str], tuple[Any, Any]]:
        """Wait up to POLL_S for cells to end: {(drive, run): (its result or None, the exception it ended with or None)}."""
        if not refs:
            self._closed.wait(POLL_S)
            return {}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_S)
        ended = {}
        for ref in ready:
            try:
                ended[refs[ref]] = (ray.get(ref), None)
            except Exception as exc:  # noqa: BLE001 - ActorDiedError (node lost, worker killed), RayTaskError...
                ended[refs[ref]] = (None, exc)
        return ended

    def _advance(self, ray: Any, drive: _Drive) -> None:
        """Start lost cells again, prune, start what the order hands out (a node may have joined), and let go
        once nothing is in flight."""
        self._relaunch(drive)
        if not drive.stopping and not drive.error:
            drive.order.prune(self.store)
            self._submit(ray, drive)
        self._finish_if_idle(drive)

    def _relaunch(self, drive: _Drive) -> None:
        """Start again each lost cell whose lock its dead trainer has let go of, with a retry record."""
        for name, lost_at in list(drive.relaunch.items()):
            attempt = drive.retries.get(name, 0) + 1
            if drive.stopping:
                del drive.relaunch[name]
                self._end_lost(drive, name, f"{lost_at.reason}; stopped before it was started again")
                continue
            record = retry_record(attempt, drive.max_retries, lost_at.node, lost_at.epoch, lost_at.reason, time.time())
            if self._claim(drive, name, retry=record):
                del drive.relaunch[name]
                drive.retries[name] = attempt
                self._launch(drive, name)
            elif time.monotonic() > lost_at.deadline:
                del drive.relaunch[name]
                self.outcomes[name] = f"{lost_at.reason}; not started again: another process holds it"

    def _give_up(self, why: str) -> None:
        with self._lock:
            for drive in self._drives.values():
                if not drive.finished:
                    drive.error = drive.error or why
                    drive.tasks.clear()
                    drive.relaunch.clear()
                    self._finish_if_idle(drive)

    def _settle(self, drive: _Drive, name: str, result: dict[str, Any] | None, exc: BaseException | None) -> None:
        """A cell's actor ended: a lost cell is started again (up to max_retries); another whose trainer never
        recorded an end gets a status made of that fact."""
        run = self.store.get(name)
        recorded, _ = run.read_status_file()
        if recorded is None or recorded.get("status") not in ACTIVE_STATUSES:
            if result is not None and result["code"] not in (0, 1):
                self.outcomes[name] = f"its trainer exited with code {result['code']}"
            return
        if lost(exc, result) and not drive.stopping:
            node = str(recorded.get("node") or (result or {}).get("node") or "")
            reason = lost_reason(node, int(recorded.get("epoch") or 0), result)
            if drive.retries.get(name, 0) < drive.max_retries:
                drive.relaunch[name] = _Relaunch(reason, node, int(recorded.get("epoch") or 0))
                return
            tries = drive.retries.get(name, 0)
            return self._end_lost(drive, name, f"{reason}, after {tries} retr{'y' if tries == 1 else 'ies'}")
        try:
            run.acquire(ROLE_RECONCILING, wait_s=0.5)
        except (RunStoreError, OSError):
            return  # someone holds it (another copy, started elsewhere): theirs to record
        try:
            status, message, extra = self._ending(drive, run, result, exc)
            run.write_status(status, message, finished_at=time.time(), **extra)
            self.outcomes[name] = message
        except OSError:
            pass
        finally:
            run.release()

    def _end_lost(self, drive: _Drive, name: str, reason: str) -> None:
        """A lost cell not started again: `interrupted` with the reason (as soon as its dead trainer's lock is free)."""
        run = self.store.get(name)
        message = f"{reason}; `{drive.resume}` continues it"
        try:
            run.acquire(ROLE_RECONCILING, wait_s=5.0)
        except (RunStoreError, OSError):
            self.outcomes[name] = reason  # its trainer still holds it: it reads interrupted once that dies
            return
        try:
            run.write_status(INTERRUPTED, message, finished_at=time.time())
        finally:
            run.release()
        self.outcomes[name] = message

    def _ending(self, drive: _Drive, run: Any, result: dict[str, Any] | None, exc: BaseException | None) -> tuple[str, str, dict]:
        """(status, message, extra fields) of a cell whose actor ended before its trainer recorded an end."""
        resume = f"`{drive.resume}` continues it"
        if drive.stopping:
            return STOPPED, f"stopped before it started training; {resume}", {}
        if result is None:
            return INTERRUPTED, f"its Ray actor ended ({first_and_last_line(exc)}); {resume}", {}
        return exit_status(run, result["code"], False, resume)

    # -- the interface ---------------------------------------------------------------------------------
    def stop(self, name: str) -> list[str]:
        """A stop request to every cell cells_to_stop names (it checkpoints at its next logging point); this
        driver's cells whose trainer has not taken its run yet lose their actor too. Returns the cells asked."""
        with self._lock:
            drive = self._drives.get(name)
            tasks = {} if drive is None or drive.finished else dict(drive.tasks)
            if drive is not None and not drive.finished:
                drive.stopping = True
        try:
            sweep = drive.sweep if drive is not None else load_sweep(self.store.root, name)
        except RunStoreError:
            return []
        asked = []
        for cell in cells_to_stop(self.store, sweep, tasks):
            run = self.store.get(cell)
            run.request_stop(by="sweep")
            owner = run.owner()
            if cell in tasks and (owner is None or owner.role != ROLE_TRAINING):
                import_ray().kill(tasks[cell].actor, no_restart=True)  # waiting for a node, or its trainer starting
            asked.append(cell)
        return asked

    def running(self, name: str) -> bool:
        with self._lock:
            drive = self._drives.get(name)
            return drive is not None and not drive.finished

    def error(self, name: str) -> str | None:
        with self._lock:
            drive = self._drives.get(name)
            return None if drive is None else drive.error

    def waiting(self, name: str) -> list[str]:
        """Submitted cells whose trainer has not taken the run yet (queued in Ray, or starting)."""
        with self._lock:
            drive = self._drives.get(name)
            names = [] if drive is None else [*drive.tasks, *drive.relaunch]
        return queued_on_ray(self.store, names)

    def wait(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running(name) and time.monotonic() < deadline:
            self._closed.wait(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return not self.running(name)

    def shutdown(self) -> None:
        """Stop watching and let go of every sweep's queue lock. Cells still in flight keep training on their nodes
        (their actors are detached): the next `sweep NAME --resume --executor ray` re-attaches to them."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=4 * POLL_S)
        with self._lock:
            for drive in self._drives.values():
                if not drive.finished:
                    drive.finished = True
                    drive.lock.release()


def queued_on_ray(store: RunStore, names: Iterable[str]) -> list[str]:
    """Of these runs, those queued on Ray whose trainer has not taken them yet: status.json says queued on
    Ray and no process holds their run.lock (readers see `queued` while the sweep's driver holds its queue
    lock, `interrupted` once it is gone)."""
    queued = []
    for name in names:
        if not store.exists(name):
            continue
        run = store.get(name)
        recorded, _ = run.read_status_file()
        if recorded and recorded.get("status") == QUEUED and recorded.get("executor") == EXECUTOR_RAY and run.owner() is None:
            queued.append(name)
    return queued
