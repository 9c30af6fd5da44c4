"""Background training jobs: one running job per device, further jobs queue FIFO (no streamlit)."""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from wrn_core.config import TrainConfig
from wrn_core.runstore import RunStore, RunStoreError
from wrn_core.train import Progress, preflight, prepare_resume, train_run


@dataclass(frozen=True)
class JobInfo:
    """A job the manager holds: running or waiting its turn on a device."""

    name: str
    device: str  # cpu | cuda | mps
    state: str  # running | queued
    progress: Progress | None


@dataclass(eq=False)
class _Job:
    name: str
    device: str
    resume: bool
    stop_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class JobManager:
    """Owns the training threads of one process. Every public method is thread-safe."""

    def __init__(self, runs_dir: str | os.PathLike[str]) -> None:
        self.store = RunStore(Path(runs_dir))
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Job]] = {}
        self._running: dict[str, _Job] = {}  # device -> job
        self._jobs: dict[str, _Job] = {}  # name -> running or queued job
        self._progress: dict[str, Progress] = {}
        # Runs left 'running' by a process that has since died are 'interrupted', resumable.
        self.store.reconcile(live_names=())

    # submitting ---------------------------------------------------------------------
    def submit(self, config: TrainConfig, name: str | None = None) -> str:
        """Create a run (status queued) and start it, or queue it behind its device's job.

        Raises ConfigError, DataError or RunStoreError for bad input, before creating anything.
        """
        device = preflight(config)
        if name:
            self.store.path_for(name)  # validates the name
        run = self.store.create(config, name)
        self._enqueue(_Job(name=run.name, device=device, resume=False))
        return run.name

    def resume(self, name: str, epochs: int | None = None) -> str:
        """Continue a stopped, interrupted or finished run from its checkpoint, optionally to more epochs."""
        with self._lock:
            if name in self._jobs:
                raise RunStoreError(f"run {name!r} is already {self._state(name)}")
        run = self.store.get(name)
        device = prepare_resume(run, epochs)
        run.write_status("queued", "waiting to resume")
        self._enqueue(_Job(name=name, device=device, resume=True))
        return name

    # control ------------------------------------------------------------------------
    def stop(self, name: str) -> bool:
        """Running: stop cooperatively within one batch (checkpoint saved). Queued: drop it, status stopped."""
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return False
            if self._running.get(job.device) is job:
                job.stop_event.set()
                return True
            self._queues[job.device].remove(job)
            del self._jobs[name]
            job.done.set()
        self.store.get(name).write_status("stopped", "stopped before it started; resume to run it")
        return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job (queued ones first) and wait for the running ones to save and exit."""
        with self._lock:
            queued = [job.name for q in self._queues.values() for job in q]
            running = list(self._running.values())
        for name in queued:
            self.stop(name)
        for job in running:
            job.stop_event.set()
        for job in running:
            if job.thread is not None:
                job.thread.join(timeout)

    # reading ------------------------------------------------------------------------
    def progress(self, name: str) -> Progress | None:
        with self._lock:
            return self._progress.get(name)

    def is_active(self, name: str) -> bool:
        with self._lock:
            return name in self._jobs

    def jobs(self) -> list[JobInfo]:
        """Running jobs first, then queued ones in the order they will start."""
        with self._lock:
            infos = [JobInfo(j.name, j.device, "running", self._progress.get(j.name)) for j in self._running.values()]
            for queue in self._queues.values():
                infos.extend(JobInfo(j.name, j.device, "queued", None) for j in queue)
            return infos

    def wait(self, name: str, timeout: float | None = None) -> bool:
        """Block until the job ends; True if it ended (or was never held) within the timeout."""
        with self._lock:
            job = self._jobs.get(name)
        if job is None:
            return True
        return job.done.wait(timeout)

    # internals ----------------------------------------------------------------------
    def _state(self, name: str) -> str:
        job = self._jobs[name]
        return "running" if self._running.get(job.device) is job else "queued"

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            self._jobs[job.name] = job
            self._queues.setdefault(job.device, deque()).append(job)
            self._start_next_locked(job.device)

    def _start_next_locked(self, device: str) -> None:
        if device in self._running or not self._queues.get(device):
            return
        job = self._queues[device].popleft()
        self._running[device] = job
        job.thread = threading.Thread(target=self._work, args=(job,), name=f"wrn-train-{job.name}", daemon=True)
        job.thread.start()

    def _work(self, job: _Job) -> None:
        def on_progress(progress: Progress) -> None:
            with self._lock:
                self._progress[job.name] = progress

        try:
            run = self.store.get(job.name)
            train_run(run, stop_event=job.stop_event, on_progress=on_progress, resume=job.resume)
        except Exception as exc:  # noqa: BLE001 - the run must not stay 'running' if its directory vanished
            try:
                self.store.get(job.name).write_status("failed", f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001
                pass
        finally:
            with self._lock:
                self._running.pop(job.device, None)
                self._jobs.pop(job.name, None)
                job.done.set()
                self._start_next_locked(job.device)
