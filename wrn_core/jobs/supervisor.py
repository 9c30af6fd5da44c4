"""Background training jobs as supervised processes: one FIFO queue per device slot (no streamlit, no sweeps).

Each job is `python -m wrn_core resume NAME` (or torchrun running it on every GPU) in its own
process and session. The manager creates a queued run holding its lock, hands the locked file to
the child when the job starts, and from then on only watches: the run directory (status.json,
heartbeat.json, metrics.jsonl) is the contract. Stop sends SIGINT (the trainer checkpoints and
ends `stopped`), then SIGTERM and SIGKILL if the process does not end in time. A job outlives the
manager's process; a restarted manager sees it as a running run, by its lock.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wrn_core.config import TrainConfig
from wrn_core.engine.devices import child_visible_devices, eligible_slots, list_devices
from wrn_core.engine.resume import preflight, prepare_resume
from wrn_core.store import INHERITED_LOCK_ENV, LAUNCHER_LOCK_ENV, Run, RunStore, RunStoreError
from wrn_core.store.lock import ROLE_QUEUED, ROLE_RECONCILING, ROLE_TRAINING
from wrn_core.store.records import (
    ACTIVE_STATUSES,
    EXCEPTION_ERROR,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    STOPPED,
    Progress,
    progress_from_heartbeat,
)

POLL_S = 0.2  # how often the supervisor thread looks at its processes
STOP_GRACE_S = 60.0  # after SIGINT: time to checkpoint before SIGTERM
KILL_GRACE_S = 15.0  # after SIGTERM: time before SIGKILL
LOG_TAIL_BYTES = 64 * 1024  # how much of job.log last_log_line reads: its end is what explains an exit
# A watcher is called from the supervisor thread after every look at the processes, with whether a job just ended.
Watcher = Callable[[bool], None]


@dataclass(frozen=True)
class JobInfo:
    """A job the manager holds: running or waiting its turn on a device slot."""

    name: str
    device: str  # the slot: cpu, cuda:0, ... (cpu#1 when a device has several slots)
    state: str  # RUNNING | QUEUED
    progress: Progress | None
    pid: int | None = None


@dataclass(eq=False)
class _Job:
    run: Run  # holds the run's lock while queued; the child holds it once started
    slot: str
    nproc: int = 1  # processes (GPUs) of a DDP job launched with torchrun
    force: bool = False  # train even when the predicted memory exceeds the device's free memory (--force)
    order: int = 0  # when it was queued, over all slots (set by the manager)
    proc: subprocess.Popen | None = None
    stop_sent: float | None = None  # monotonic time of SIGINT
    term_sent: float | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.run.name


def default_slots() -> list[str]:
    """One queue per device of this machine: every GPU, else mps, else the CPU."""
    names = [d.name for d in list_devices()]
    gpus = [n for n in names if n != "cpu"]
    return gpus + ["cpu"] if gpus else ["cpu"]


class JobManager:
    """Queues and supervises the training processes of one runs directory. Every public method is thread-safe."""

    def __init__(self, runs_dir: str | os.PathLike[str], slots: list[str] | None = None,
                 python: str = sys.executable) -> None:
        self.store = RunStore(Path(runs_dir))
        self.slots = list(slots) if slots else default_slots()
        self.python = python
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Job]] = {slot: deque() for slot in self.slots}
        self._running: dict[str, _Job] = {}  # slot -> job
        self._jobs: dict[str, _Job] = {}  # name -> running or queued job
        self._order = itertools.count()
        self._closed = False
        self._watchers: list[Watcher] = []
        # Runs left queued or running by a process that has since died are interrupted, resumable.
        self.store.reconcile()
        self._supervisor = threading.Thread(target=self._supervise, name="wrn-jobs", daemon=True)
        self._supervisor.start()

    # submitting ---------------------------------------------------------------------
    def submit(self, config: TrainConfig, name: str | None = None, nproc: int = 1, force: bool = False,
               **status_fields: Any) -> str:
        """Create a run (status queued, locked by this manager) and queue it on the least-loaded slot.

        nproc > 1 trains it data-parallel with torchrun (one process per GPU of the machine). force: the
        child trains even where its memory pre-flight predicts the run will not fit (`resume --force`).
        Raises ConfigError, DataError or RunStoreError for bad input, before creating anything.
        """
        config = config.replace(world_size=nproc)
        preflight(config)
        slot = self._pick_slot(config.device)
        if name:
            self.store.path_for(name)  # validates the name
        run = self.store.create(config, name, hold=ROLE_QUEUED, **status_fields)
        self._enqueue(_Job(run=run, slot=slot, nproc=nproc, force=force))
        return run.name

    def resume(self, name: str, epochs: int | None = None, extend: str | None = None) -> str | None:
        """Queue a stopped, interrupted or finished run to continue, optionally to more epochs.

        extend None: prepare_resume's default (restart a plan that ended at lr 0, else continue).

        Returns a warning to show (e.g. a schedule continued at learning rate 0), or None.
        """
        with self._lock:
            job = self._jobs.get(name)
        if job is not None and job.proc is not None:
            recorded, _ = job.run.read_status_file()
            if recorded is not None and recorded.get("status") not in ACTIVE_STATUSES:
                # Its trainer has recorded its end (e.g. stopped) and the process is exiting.
                try:
                    job.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pass
            if job.proc.poll() is not None:
                self._check(job)  # reap it now rather than at the supervisor's next look
        with self._lock:
            if name in self._jobs:
                raise RunStoreError(f"run {name!r} is already {self._state(self._jobs[name])}")
        run = self.store.get(name)
        run.acquire(ROLE_QUEUED)
        try:
            plan = prepare_resume(run, epochs, extend)
            slot = self._pick_slot(plan.config.device)
            run.write_status(QUEUED, "waiting to resume")
        except BaseException:
            run.release()
            raise
        self._enqueue(_Job(run=run, slot=slot, nproc=int(run.read_status().get("world_size") or 1)))
        return plan.warning

    # watchers ---------------------------------------------------------------------
    def add_watcher(self, watcher: Watcher) -> None:
        """Call watcher(ended) from the supervisor thread after every look at the processes (about every
        POLL_S seconds), with ended True when a job has just ended; e.g. a sweep runner starting its next cell.
        Its exceptions are swallowed: the jobs still need watching."""
        with self._lock:
            self._watchers.append(watcher)

    # control ------------------------------------------------------------------------
    def stop(self, name: str) -> bool:
        """Running: SIGINT (checkpoint, then `stopped`). Queued: dropped, status stopped.

        A run trained by a process this manager did not start (e.g. before a restart of the
        dashboard) is stopped through its lock owner's pid when it runs on this host, and through a
        stop request in its run directory when it runs on another (Run.request_stop).
        """
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and job.proc is None:
                self._queues[job.slot].remove(job)
                del self._jobs[name]
                queued = job
            else:
                queued = None
            if job is not None and job.proc is not None:
                if job.stop_sent is None:
                    job.stop_sent = time.monotonic()
                    _signal(job.proc.pid, signal.SIGINT)
                return True
        if queued is not None:
            queued.run.write_status(STOPPED, "stopped before it started; resume to run it")
            queued.run.release()
            queued.done.set()
            return True
        return self._stop_foreign(name)

    def _stop_foreign(self, name: str) -> bool:
        try:
            run = self.store.get(name)
        except RunStoreError:
            return False
        owner = run.owner()
        if owner is None or owner.role != ROLE_TRAINING:
            return False
        if owner.pid and owner.host == socket.gethostname() and _signal(owner.pid, signal.SIGINT):
            return True
        # Trained on another machine (e.g. a Ray worker): ask through the run directory, which its trainer polls.
        run.request_stop(by="job manager")
        return True

    def shutdown(self, timeout: float = 60.0, stop_running: bool = True) -> None:
        """Drop queued jobs (status stopped); with stop_running, stop running ones and wait for them."""
        with self._lock:
            self._watchers.clear()
            queued = [job.name for q in self._queues.values() for job in q]
            running = [job for job in self._running.values()]
        for name in queued:
            self.stop(name)
        if stop_running:
            for job in running:
                self.stop(job.name)
            deadline = time.monotonic() + timeout
            for job in running:
                job.done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._closed = True

    # reading ------------------------------------------------------------------------
    def progress(self, name: str) -> Progress | None:
        """The latest progress of a run that is training (its heartbeat), by this manager or not."""
        try:
            run = self.store.get(name)
        except RunStoreError:
            return None
        return progress_from_heartbeat(run.read_heartbeat())

    def is_active(self, name: str) -> bool:
        with self._lock:
            return name in self._jobs

    def jobs(self) -> list[JobInfo]:
        """Running jobs first, then queued ones in the order they will start."""
        with self._lock:
            running = [(j.name, j.slot, j.proc.pid if j.proc else None) for j in self._running.values()]
            queued = [(j.name, j.slot) for slot in self.slots for j in self._queues[slot]]
        infos = [JobInfo(name, slot, RUNNING, self.progress(name), pid) for name, slot, pid in running]
        infos.extend(JobInfo(name, slot, QUEUED, None) for name, slot in queued)
        return infos

    def wait(self, name: str, timeout: float | None = None) -> bool:
        """Block until the job ends; True if it ended (or was never held) within the timeout."""
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            return True
        return job.done.wait(timeout)

    def load(self) -> dict[str, int]:
        """Jobs running or queued per slot."""
        with self._lock:
            return {slot: len(self._queues[slot]) + (slot in self._running) for slot in self.slots}

    # internals ----------------------------------------------------------------------
    def _state(self, job: _Job) -> str:
        return RUNNING if job.proc is not None else QUEUED

    def _pick_slot(self, device: str) -> str:
        candidates = eligible_slots(device, self.slots)
        if not candidates:
            raise RunStoreError(f"no job queue for device {device!r} here (queues: {', '.join(self.slots)})")
        load = self.load()
        return min(candidates, key=lambda slot: (load[slot], self.slots.index(slot)))

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            job.order = next(self._order)
            self._jobs[job.name] = job
            self._queues[job.slot].append(job)
            self._start_next_locked(job.slot)

    def _command(self, job: _Job) -> list[str]:
        args = ["-m", "wrn_core", "resume", job.name, "--runs-dir", str(self.store.root), "--quiet"]
        if job.force:
            args.append("--force")
        if job.nproc > 1:
            return [self.python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={job.nproc}", *args]
        return [self.python, *args]

    def _device_type(self, slot: str) -> str:
        """cpu, cuda or mps: the type of the slot's device."""
        return slot.split("#", 1)[0].split(":", 1)[0]

    def _can_start(self, slot: str, job: _Job) -> bool:
        """A slot is free when nothing runs on it; a data-parallel job needs every slot of its device type
        free, and the jobs of that type queued after it wait for it (else a stream of small jobs starves it)."""
        if slot in self._running:
            return False
        device_type = self._device_type(slot)
        if any(j.nproc > 1 and self._device_type(s) == device_type for s, j in self._running.items()):
            return False
        if job.nproc > 1:
            return not any(self._device_type(s) == device_type for s in self._running)
        return not any(j.nproc > 1 and j.order < job.order
                       for s, queue in self._queues.items() if self._device_type(s) == device_type for j in queue)

    def _start_next_locked(self, slot: str) -> None:
        if self._closed or not self._queues[slot] or not self._can_start(slot, self._queues[slot][0]):
            return
        job = self._queues[slot].popleft()
        env = dict(os.environ)
        fd = job.run.lock.fd
        assert fd is not None
        env[INHERITED_LOCK_ENV] = str(fd)
        if job.nproc > 1:
            env[LAUNCHER_LOCK_ENV] = "1"  # torchrun keeps our file; rank 0 finds its parent holding the lock
        device = slot.split("#", 1)[0]
        if device.startswith("cuda:") and job.nproc == 1:
            config_device = job.run.read_config().device
            if config_device in ("auto", "cuda"):
                # The child sees its GPU as cuda:0, named as this process's own list names it.
                env["CUDA_VISIBLE_DEVICES"] = child_visible_devices(int(device.split(":", 1)[1]))
        log = open(job.run.path / "job.log", "ab")
        try:
            job.run.write_status(message=f"starting on {device}", slot=slot)
            job.proc = subprocess.Popen(
                self._command(job), env=env, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=str(Path.cwd()),
            )
        except OSError as exc:
            job.run.write_status(FAILED, f"could not start the training process: {exc}", cause=EXCEPTION_ERROR)
            job.run.release()
            del self._jobs[job.name]
            job.done.set()
            self._start_next_locked(slot)
            return
        finally:
            log.close()
        job.run.lock.note_owner(ROLE_TRAINING, job.proc.pid)
        # The child holds the lock through the inherited file; keeping our copy would outlive it.
        os.close(job.run.lock.detach())
        self._running[slot] = job

    def _supervise(self) -> None:
        while True:
            with self._lock:
                if self._closed and not self._running:
                    return
                running = list(self._running.values())
                closed = self._closed
            ended = any([self._check(job) for job in running])
            if not closed:
                with self._lock:
                    watchers = list(self._watchers)
                for watcher in watchers:
                    try:
                        watcher(ended)
                    except Exception:  # noqa: BLE001 - e.g. a runs directory gone; the jobs still need watching
                        pass
            time.sleep(POLL_S)

    def _check(self, job: _Job) -> bool:
        """Escalate a pending stop, or reap the job's process if it has exited (then True)."""
        assert job.proc is not None
        with self._lock:
            if self._jobs.get(job.name) is not job:
                return False  # already reaped (by resume() or the supervisor)
        code = job.proc.poll()
        now = time.monotonic()
        if code is None:
            if job.stop_sent is not None and job.term_sent is None and now - job.stop_sent > STOP_GRACE_S:
                job.term_sent = now
                _signal(job.proc.pid, signal.SIGTERM)
            elif job.term_sent is not None and now - job.term_sent > KILL_GRACE_S:
                _signal(job.proc.pid, signal.SIGKILL)
            return False
        self._record_exit(job, code)
        with self._lock:
            self._running.pop(job.slot, None)
            self._jobs.pop(job.name, None)
            job.done.set()
            for slot in self.slots:  # a data-parallel job may have held every slot of its device type
                self._start_next_locked(slot)
        return True

    def _record_exit(self, job: _Job, code: int) -> None:
        """A process that ended without a final status (crashed, killed) gets one made of that fact."""
        run = job.run
        status, _ = run.read_status_file()
        if status is None or status.get("status") not in ACTIVE_STATUSES:
            return
        try:
            run.acquire(ROLE_RECONCILING, wait_s=0.5)
        except (RunStoreError, OSError):
            return
        try:
            status, message, extra = exit_status(run, code, job.stop_sent is not None, "resume to continue")
            run.write_status(status, message, finished_at=time.time(), **extra)
        except OSError:
            pass
        finally:
            run.release()


def exit_status(run: Run, code: int, stop_asked: bool, resume: str) -> tuple[str, str, dict[str, Any]]:
    """(status, message, extra status fields) of a trainer process that exited with `code` before recording an end,
    made of that fact: stopped (a stop was asked while it was starting up), interrupted (killed by a signal: like any
    process that died mid-run, it can resume from its checkpoint), else failed, with its log's last line. `resume`
    ends the message: how to continue the run."""
    # A SIGINT that lands before the process has installed its handler ends it by SIGINT (CPython's default).
    if stop_asked and (code >= 0 or code == -signal.SIGINT):
        return STOPPED, f"stopped while its process was starting; {resume}", {}
    if code < 0:
        return INTERRUPTED, f"the training process was killed by signal {-code}; {resume}", {}
    said = last_log_line(run.path / "job.log")
    return FAILED, (f"the training process exited with code {code} before recording an end"
                    + (f": {said}" if said else f" (see {run.path / 'job.log'})")), {"cause": EXCEPTION_ERROR}


def last_log_line(path: str | os.PathLike[str]) -> str | None:
    """The last line of a job's log that says something: not blank, not a traceback's frame or its
    header (a traceback's last line, the exception, is kept); None when there is none or no log."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        line = line.split("\r")[-1].strip()  # a progress bar redraws its line with carriage returns
        if not line or line.startswith(("Traceback (most recent call last)", 'File "', "^", "~")):
            continue
        if line.startswith("During handling") or line.startswith("The above exception"):
            continue
        return line
    return None


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True
