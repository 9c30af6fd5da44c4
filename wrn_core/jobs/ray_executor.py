"""Sweeps on a Ray cluster: each cell a Ray task running `python -m wrn_core resume CELL` on whichever node Ray picks.

Ray places the cells; the run store stays the contract. The sweep process (the Ray driver) creates
each cell's run (queued) before submitting it and never submits a run that a process holds; the
trainer takes the run's lock itself, so a second copy of a cell could not train anyway. Every node
must see the runs directory at the same path, on a filesystem where flock works across machines
(NFSv4, CephFS, Lustre...): `check_shared_runs_dir` proves it before the first cell.

Stopping goes through the run directory (Run.request_stop), which every trainer polls at its logging
points, so it works whatever node a cell is on. A worker that dies takes its trainer with it (the
child dies with its parent), the kernel frees the lock, and the cell reads `interrupted`;
`sweep NAME --resume --executor ray` continues it from its checkpoint. Nothing is retried: a cell that
failed (bad input, an exception) stays failed. Ray is imported lazily: `import wrn_core` and the
dashboard never need it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrn_core.config import ConfigError
from wrn_core.errors import one_line
from wrn_core.store import INHERITED_LOCK_ENV, RunBusyError, RunStore, RunStoreError
from wrn_core.store.atomic import remove_quietly, write_atomic
from wrn_core.store.lock import ROLE_QUEUED, ROLE_RECONCILING, ROLE_TRAINING, RunLock, queue_lock_name
from wrn_core.store.records import (
    ACTIVE_STATUSES,
    EXCEPTION_ERROR,
    EXECUTOR_ENV,
    EXECUTOR_RAY,
    FAILED,
    INTERRUPTED,
    QUEUED,
    STOPPED,
)
from wrn_core.sweeps import Sweep, next_cells

RAY_MISSING = 'ray is not installed: pip install -e ".[ray]"'
PROBE_PREFIX = ".ray-probe-"  # the shared-directory token file: <runs dir>/.ray-probe-<token>
PROBE_TIMEOUT_S = 120.0  # a probe task waits for a worker process to start on its node
CELL_STOP_GRACE_S = 60.0  # a cancelled task's trainer: time to checkpoint after SIGINT before SIGKILL
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies


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
# The shared runs directory


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
# One cell, on a worker


def _die_with_parent() -> None:
    """In the trainer, before exec: die by SIGKILL when the worker that started it dies (Linux), so a lost
    worker never leaves a trainer holding the run; the kernel then frees its lock."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_cell(name: str, root: str) -> dict[str, Any]:
    """The body of a cell's Ray task: `python -m wrn_core resume NAME` to its end, output into job.log.

    Cancelled (ray.cancel raises KeyboardInterrupt here): the trainer gets SIGINT, checkpoints and stops.
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


# ---------------------------------------------------------------------------------------------
# The driver's side


@dataclass
class _Task:
    ref: Any
    submitted_at: float = field(default_factory=time.time)


class RaySweep:
    """One sweep's cells as Ray tasks, driven by the sweep process: `with RaySweep(...) as cells:` start(),
    then poll() until done(); stop().

    Inside the `with`, the driver holds the sweep's queue lock (store.lock.queue_lock_name), which every cell
    it queues names in its status: to any reader on any node a cell waiting in Ray's queue reads `queued`
    while this driver lives, and `interrupted` once it is gone. A second driver of the same sweep is refused.
    """

    def __init__(self, store: RunStore, sweep: Sweep, resources: CellResources = CellResources()) -> None:
        self.store = store
        self.sweep = sweep
        self.resources = resources
        self.root = str(store.root.resolve())
        self._tasks: dict[str, _Task] = {}  # run -> its task, while it is in flight
        self.outcomes: dict[str, str] = {}  # run -> how its task ended, for cells whose task ended oddly
        self._stopping = False
        self.queue_lock = queue_lock_name(sweep.name)
        self._lock = RunLock(store.root / self.queue_lock)

    def __enter__(self) -> "RaySweep":
        try:
            self._lock.acquire(ROLE_QUEUED, f"sweep {self.sweep.name}", wait_s=0.0)
        except RunBusyError as exc:
            raise RunBusyError(f"{exc} (another `sweep {self.sweep.name}` drives its cells)") from None
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._lock.release()

    def start(self) -> list[str]:
        """Submit every cell still to train that no process holds; returns their run names, in order."""
        ray = import_ray()
        remote = ray.remote(num_cpus=self.resources.cpus, num_gpus=self.resources.gpus, max_retries=0)(run_cell)
        submitted = []
        for cell in next_cells(self.store, self.sweep):
            if cell.run in self._tasks or not self._claim(cell):
                continue
            self._tasks[cell.run] = _Task(remote.remote(cell.run, self.root))
            submitted.append(cell.run)
        return submitted

    def _claim(self, cell: Any) -> bool:
        """Create the cell's run (or mark an existing one) queued for Ray, then let go of its lock for the
        trainer to take; False when some process holds the run (it is not submitted twice)."""
        if not self.store.exists(cell.run):
            run = self.store.create(cell.config, cell.run, hold=ROLE_QUEUED, sweep=self.sweep.name,
                                    executor=EXECUTOR_RAY, host=None)
        else:
            run = self.store.get(cell.run)
            try:
                run.acquire(ROLE_QUEUED, wait_s=0.0)
            except RunBusyError:
                return False
        try:
            run.write_status(QUEUED, "queued on Ray: waiting for a worker", executor=EXECUTOR_RAY, slot=None,
                             queue_lock=self.queue_lock)
        finally:
            run.release()
        return True

    def in_flight(self) -> list[str]:
        return sorted(self._tasks)

    def waiting(self) -> list[str]:
        """Submitted cells whose trainer has not taken the run yet (queued in Ray, or starting)."""
        return queued_on_ray(self.store, list(self._tasks))

    def done(self) -> bool:
        return not self._tasks

    def poll(self, timeout: float = 0.5) -> list[str]:
        """Wait up to `timeout` seconds for tasks to end; settle each ended cell's status. Returns them."""
        ray = import_ray()
        if not self._tasks:
            return []
        refs = {task.ref: name for name, task in self._tasks.items()}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        ended = []
        for ref in ready:
            name = refs[ref]
            try:
                result, why = ray.get(ref), None
            except Exception as exc:  # noqa: BLE001 - WorkerCrashedError, NodeDiedError, TaskCancelledError...
                result, why = None, one_line(exc)
            del self._tasks[name]
            self._settle(name, result, why)
            ended.append(name)
        return ended

    def _settle(self, name: str, result: dict[str, Any] | None, why: str | None) -> None:
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
            resume = f"`python -m wrn_core sweep {self.sweep.name} --resume --executor ray` continues it"
            code = None if result is None else result["code"]
            if self._stopping:
                status, message, extra = STOPPED, f"stopped before it started training; {resume}", {}
            elif result is None:
                status, message, extra = INTERRUPTED, f"its Ray task ended ({why}); {resume}", {}
            elif code is not None and code < 0:
                status, message, extra = INTERRUPTED, f"its trainer was killed by signal {-code}; {resume}", {}
            else:
                from wrn_core.jobs.supervisor import last_log_line

                said = last_log_line(run.path / "job.log")
                status, message, extra = FAILED, (f"the training process exited with code {code} before recording an end"
                                                  + (f": {said}" if said else "")), {"cause": EXCEPTION_ERROR}
            run.write_status(status, message, finished_at=time.time(), **extra)
            self.outcomes[name] = message
        except OSError:
            pass
        finally:
            run.release()

    def stop(self) -> list[str]:
        """Stop the sweep: a stop request to every cell in flight (it checkpoints at its next logging point);
        tasks whose trainer has not taken its run yet are cancelled too. Returns the cells asked."""
        ray = import_ray()
        self._stopping = True
        asked = []
        for name, task in list(self._tasks.items()):
            run = self.store.get(name)
            run.request_stop(by="sweep")
            owner = run.owner()
            if owner is None or owner.role != ROLE_TRAINING:
                ray.cancel(task.ref)  # queued: dropped; just starting: its trainer gets SIGINT
            asked.append(name)
        return asked

    def wait(self, timeout: float) -> bool:
        """Poll until every task has ended or `timeout` seconds pass; True when all ended."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            self.poll(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        return not self._tasks


def queued_on_ray(store: RunStore, names: Any) -> list[str]:
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


# ---------------------------------------------------------------------------------------------
# Ray sweeps as background processes (the dashboard's): Ray's driver must not live in a Streamlit thread


def sweep_command(root: str | os.PathLike[str], name: str, address: str | None = None,
                  resources: CellResources = CellResources()) -> list[str]:
    """`python -m wrn_core sweep NAME --resume --executor ray ...` for a saved sweep."""
    command = [sys.executable, "-m", "wrn_core", "sweep", name, "--resume", "--executor", "ray", "--no-probe",
               "--cpus-per-cell", f"{resources.cpus:g}", "--gpus-per-cell", f"{resources.gpus:g}", "--runs-dir", str(root)]
    return command + (["--ray-address", address] if address else [])


class RaySweepProcesses:
    """Saved sweeps driven on Ray by background sweep processes, one per sweep, each watched by a thread.
    Every public method is thread-safe; a process outlives this object (its cells are the run store's)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._errors: dict[str, str] = {}  # name -> why its sweep process ended with an error

    def log_path(self, name: str) -> Path:
        return self.root / f".{name}.ray.log"

    def start(self, name: str, address: str | None = None, resources: CellResources = CellResources()) -> None:
        """Start the saved sweep's process; ConfigError when ray is missing, RunStoreError when it already runs."""
        require_ray()
        with self._lock:
            if name in self._procs and self._procs[name].poll() is None:
                raise RunStoreError(f"sweep {name!r} is already running on Ray")
            self._errors.pop(name, None)
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.log_path(name), "ab") as log:
                proc = subprocess.Popen(sweep_command(self.root, name, address, resources), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._procs[name] = proc
        threading.Thread(target=self._watch, args=(name, proc), daemon=True, name=f"ray-sweep-{name}").start()

    def _watch(self, name: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        if code not in (0, 1):  # 1: some cell did not finish, which the cells' statuses say
            from wrn_core.jobs.supervisor import last_log_line

            with self._lock:
                self._errors[name] = last_log_line(self.log_path(name)) or f"the sweep process exited with code {code}"

    def running(self, name: str) -> bool:
        with self._lock:
            proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def error(self, name: str) -> str | None:
        with self._lock:
            return self._errors.get(name)

    def stop(self, name: str) -> bool:
        """Ctrl-C to the sweep's process: its cells checkpoint and stop, queued ones are cancelled."""
        with self._lock:
            proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGINT)
        return True
