"""Sweeps on a Ray cluster: each cell a Ray task running `python -m wrn_core resume CELL` on whichever node Ray picks.

Ray places the cells; the run store stays the contract. `RaySweep` is the Ray executor of a sweep
process (Ray's driver): it creates each cell's run (queued) before submitting it and never submits a
run that a process holds; the trainer takes the run's lock itself, so a second copy of a cell could
not train anyway. Every node must see the runs directory at the same path, on a filesystem where
flock works across machines (NFSv4, CephFS, Lustre...): `check_shared_runs_dir` proves it before the
first cell.

Stopping goes through the run directory (Run.request_stop), which every trainer polls at its logging
points, so it works whatever node a cell is on. A worker that dies takes its trainer with it (the
child dies with its parent), the kernel frees the lock, and the cell reads `interrupted`;
`sweep NAME --resume --executor ray` continues it from its checkpoint. Nothing is retried: a cell is
submitted once per drive, and a cell that failed (bad input, an exception) stays failed. Ray is
imported lazily: `import wrn_core` and the dashboard never need it.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from wrn_core.config import ConfigError
from wrn_core.errors import one_line
from wrn_core.jobs.executor import CellResources, Placement, SweepExecutor, cells_to_stop
from wrn_core.jobs.ray_cell import run_cell
from wrn_core.jobs.supervisor import last_log_line
from wrn_core.store import RunBusyError, RunStore, RunStoreError
from wrn_core.store.atomic import remove_quietly, write_atomic
from wrn_core.store.lock import ROLE_QUEUED, ROLE_RECONCILING, ROLE_TRAINING, RunLock, queue_lock_name
from wrn_core.store.records import ACTIVE_STATUSES, EXCEPTION_ERROR, EXECUTOR_RAY, FAILED, INTERRUPTED, QUEUED, STOPPED
from wrn_core.sweeps import Cell, Sweep, load_sweep
from wrn_core.sweeps.cell_order import CellOrder, Openings, cell_order

RAY_MISSING = 'ray is not installed: pip install -e ".[ray]"'
PROBE_PREFIX = ".ray-probe-"  # the shared-directory token file: <runs dir>/.ray-probe-<token>
PROBE_TIMEOUT_S = 120.0  # a probe task waits for a worker process to start on its node
POLL_S = 0.5  # how long the driver's thread waits for tasks to end before it looks at its sweeps again


def import_ray() -> Any:
    """The ray module; ConfigError with the one line to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def require_ray() -> None:
    """ConfigError with the one line to install ray when it is missing; imports nothing (for the dashboard)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)


class RayCluster:
    """A connection for one sweep: the cluster at `address` (or RAY_ADDRESS), else a local Ray started
    for the sweep and shut down after it. A Ray this process had already joined is used and left as it is."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.started_here = False  # a local Ray of our own (shut down on exit)
        self._joined = False

    def __enter__(self) -> "RayCluster":
        ray = import_ray()
        if ray.is_initialized():
            return self
        # Cells write their output to job.log; the driver's terminal shows only the cells table.
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **options)
                self.started_here = True
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError...: one line either way
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise RunStoreError(f"could not start or reach {where}: {one_line(exc)}") from None
        self._joined = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._joined:
            import_ray().shutdown()  # a local Ray of ours stops; a cluster only loses this driver
            self._joined = False


# ---------------------------------------------------------------------------------------------
# The nodes, and the shared runs directory


def _read_token(path: str) -> tuple[str | None, str]:
    """On a worker: the token file's content (None if this node cannot read it) and the node's hostname."""
    try:
        return Path(path).read_text(encoding="utf-8"), socket.gethostname()
    except OSError:
        return None, socket.gethostname()


def _write_token(path: Path, token: str) -> None:
    write_atomic(path, token.encode(), "the shared-directory probe")


def _cell_nodes(ray: Any, resources: CellResources) -> list[dict[str, Any]]:
    """The live nodes that have room for one cell."""
    nodes = []
    for node in ray.nodes():
        have = node.get("Resources") or {}
        if node.get("Alive") and have.get("CPU", 0) >= resources.cpus and have.get("GPU", 0) >= resources.gpus:
            nodes.append(node)
    return nodes


def cells_at_once(ray: Any, resources: CellResources) -> int:
    """How many cells the live nodes hold at once: on each node, its CPUs (and GPUs) over what a cell reserves."""
    total = 0
    for node in _cell_nodes(ray, resources):
        have = node.get("Resources") or {}
        fits = have.get("CPU", 0) / resources.cpus
        if resources.gpus > 0:
            fits = min(fits, have.get("GPU", 0) / resources.gpus)
        total += int(fits + 1e-9)
    return total


def check_shared_runs_dir(root: str | os.PathLike[str], resources: CellResources = CellResources()) -> list[str]:
    """Prove that every node a cell could run on sees `root`: a token file written here is read by a
    task pinned to each such node. Returns their hostnames; RunStoreError (one line) otherwise."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(root).resolve()
    nodes = _cell_nodes(ray, resources)
    if not nodes:
        raise ConfigError(f"no node of the Ray cluster has {resources.cpus:g} CPU(s) and {resources.gpus:g} GPU(s) "
                          "free for a cell; lower --cpus-per-cell/--gpus-per-cell or add nodes")
    token = secrets.token_hex(16)
    path = root / f"{PROBE_PREFIX}{token}"
    root.mkdir(parents=True, exist_ok=True)
    _write_token(path, token)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_read_token)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(str(path)) for node in nodes]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - GetTimeoutError, a node lost meanwhile...
        raise RunStoreError(f"could not check that the Ray workers see the runs directory {root}: {one_line(exc)}") from None
    finally:
        remove_quietly(path)
    blind = [host for content, host in seen if content != token]
    if blind:
        raise RunStoreError(
            f"the Ray worker on {blind[0]} does not see the runs directory {root}: put it on a filesystem every node "
            "mounts at the same path (NFSv4 or another where flock works across machines)")
    return sorted({host for _, host in seen})


# ---------------------------------------------------------------------------------------------
# The driver's side


@dataclass
class _Task:
    ref: Any
    submitted_at: float = field(default_factory=time.time)


@dataclass
class _Drive:
    """One sweep driven on Ray: its cell order, its tasks in flight, and the sweep's queue lock while it drives."""

    sweep: Sweep
    resources: CellResources
    order: CellOrder
    lock: RunLock
    remote: Any  # run_cell as a Ray remote function reserving `resources`
    tasks: dict[str, _Task] = field(default_factory=dict)  # run -> its task, while it is in flight
    handed: set[str] = field(default_factory=set)  # every cell submitted (or found held) in this drive: once each
    stopping: bool = False
    finished: bool = False
    error: str | None = None

    @property
    def queue_lock(self) -> str:
        return self.lock.path.name


class RaySweep(SweepExecutor):
    """Sweeps' cells as Ray tasks, driven from this process (use it inside a RayCluster).

    start() takes the sweep's queue lock (store.lock.queue_lock_name), which every cell it queues names in its
    status: to any reader on any node a cell waiting in Ray's queue reads `queued` while this driver lives, and
    `interrupted` once it is gone; a second driver of the same sweep is refused. It then submits the cells the
    sweep's order hands out; a thread waits on the tasks, settles each ended cell's status, prunes and asks the
    order again, and lets go of the queue lock once no cell is left in flight. `outcomes`: run -> how its task
    ended, for cells whose task ended oddly.
    """

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.root = str(store.root.resolve())
        self.outcomes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._drives: dict[str, _Drive] = {}
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

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
            remote = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=0)(run_cell)
            drive = _Drive(sweep, resources, cell_order(sweep), lock, remote)
            self._drives[sweep.name] = drive
            self._submit(ray, drive)
            self._finish_if_idle(drive)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="ray-sweep", daemon=True)
                self._thread.start()

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
            if self._claim(drive, cell):
                drive.tasks[cell.run] = _Task(drive.remote.remote(cell.run, self.root))

    def _claim(self, drive: _Drive, cell: Cell) -> bool:
        """Create the cell's run (or mark an existing one) queued for Ray, then let go of its lock for the
        trainer to take; False when some process holds the run (it is not submitted twice)."""
        if not self.store.exists(cell.run):
            run = self.store.create(cell.config, cell.run, hold=ROLE_QUEUED, sweep=drive.sweep.name,
                                    executor=EXECUTOR_RAY, host=None)
        else:
            run = self.store.get(cell.run)
            try:
                run.acquire(ROLE_QUEUED, wait_s=0.0)
            except RunBusyError:
                return False
        try:
            run.write_status(QUEUED, "queued on Ray: waiting for a worker", executor=EXECUTOR_RAY, slot=None,
                             queue_lock=drive.queue_lock)
        finally:
            run.release()
        return True

    def _finish_if_idle(self, drive: _Drive) -> None:
        """No task in flight and nothing more to submit: let go of the sweep (under self._lock)."""
        if not drive.finished and not drive.tasks:
            drive.finished = True
            drive.lock.release()

    # -- the thread that waits on the tasks --------------------------------------------------------------
    def _watch(self) -> None:
        ray = import_ray()
        while not self._closed.is_set():
            with self._lock:
                refs = {task.ref: (drive, name) for drive in self._drives.values() for name, task in drive.tasks.items()}
            try:
                ended = self._wait_tasks(ray, refs)
                with self._lock:
                    for (drive, name), (result, why) in ended.items():
                        del drive.tasks[name]
                        self._settle(drive, name, result, why)
                    for drive in [d for d in self._drives.values() if not d.finished]:
                        self._advance(ray, drive, bool(ended))
            except Exception as exc:  # noqa: BLE001 - the cluster lost, a store that cannot be written: said, not died
                self._give_up(one_line(exc))

    def _wait_tasks(self, ray: Any, refs: dict[Any, tuple[_Drive, str]]) -> dict[tuple[_Drive, str], tuple[Any, Any]]:
        """Wait up to POLL_S for tasks to end: {(drive, run): (its result or None, why it failed or None)}."""
        if not refs:
            self._closed.wait(POLL_S)
            return {}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=POLL_S)
        ended = {}
        for ref in ready:
            try:
                ended[refs[ref]] = (ray.get(ref), None)
            except Exception as exc:  # noqa: BLE001 - WorkerCrashedError, NodeDiedError, TaskCancelledError...
                ended[refs[ref]] = (None, one_line(exc))
        return ended

    def _advance(self, ray: Any, drive: _Drive, ended: bool) -> None:
        """Prune, start what the order hands out now that tasks ended, and let go once nothing is in flight."""
        if not drive.stopping and not drive.error:
            drive.order.prune(self.store)
            if ended:
                self._submit(ray, drive)
        self._finish_if_idle(drive)

    def _give_up(self, why: str) -> None:
        with self._lock:
            for drive in self._drives.values():
                if not drive.finished:
                    drive.error = drive.error or why
                    drive.tasks.clear()
                    self._finish_if_idle(drive)

    def _settle(self, drive: _Drive, name: str, result: dict[str, Any] | None, why: str | None) -> None:
        """A task ended: a cell whose trainer never recorded an end gets a status made of that fact."""
        run = self.store.get(name)
        recorded, _ = run.read_status_file()
        if recorded is None or recorded.get("status") not in ACTIVE_STATUSES:
            if result is not None and result["code"] not in (0, 1) and why is None:
                self.outcomes[name] = f"its trainer exited with code {result['code']}"
            return
        try:
            run.acquire(ROLE_RECONCILING, wait_s=0.5)
        except (RunStoreError, OSError):
            return  # someone holds it (another copy, started elsewhere): theirs to record
        try:
            status, message, extra = self._ending(drive, run, result, why)
            run.write_status(status, message, finished_at=time.time(), **extra)
            self.outcomes[name] = message
        except OSError:
            pass
        finally:
            run.release()

    def _ending(self, drive: _Drive, run: Any, result: dict[str, Any] | None, why: str | None) -> tuple[str, str, dict]:
        """(status, message, extra fields) of a cell whose task ended before its trainer recorded an end."""
        resume = f"`python -m wrn_core sweep {drive.sweep.name} --resume --executor ray` continues it"
        code = None if result is None else result["code"]
        if drive.stopping:
            return STOPPED, f"stopped before it started training; {resume}", {}
        if result is None:
            return INTERRUPTED, f"its Ray task ended ({why}); {resume}", {}
        if code is not None and code < 0:
            return INTERRUPTED, f"its trainer was killed by signal {-code}; {resume}", {}
        said = last_log_line(run.path / "job.log")
        return FAILED, (f"the training process exited with code {code} before recording an end"
                        + (f": {said}" if said else "")), {"cause": EXCEPTION_ERROR}

    # -- the interface ---------------------------------------------------------------------------------
    def stop(self, name: str) -> list[str]:
        """A stop request to every cell cells_to_stop names (it checkpoints at its next logging point); this
        driver's tasks whose trainer has not taken its run yet are cancelled too. Returns the cells asked."""
        with self._lock:
            drive = self._drives.get(name)
            tasks = {} if drive is None or drive.finished else dict(drive.tasks)
            if tasks:
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
                import_ray().cancel(tasks[cell].ref)  # queued: dropped; just starting: its trainer gets SIGINT
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
            names = [] if drive is None else list(drive.tasks)
        return queued_on_ray(self.store, names)

    def wait(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.running(name) and time.monotonic() < deadline:
            self._closed.wait(min(POLL_S, max(0.0, deadline - time.monotonic())))
        return not self.running(name)

    def shutdown(self) -> None:
        """Stop watching and let go of every sweep's queue lock (cells still in flight read interrupted once the
        driver is gone)."""
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
