"""The one-writer rule: an exclusive flock on run.lock, its owner note, and a non-blocking probe for readers."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from wrn_core.store.atomic import write_error
from wrn_core.store.errors import RunBusyError

LOCK_WAIT_S = 2.0  # how long a would-be writer waits for a lock held only for a moment (a reader's probe)
INHERITED_LOCK_ENV = "WRN_RUN_LOCK_FD"  # a job launcher hands its locked run.lock fd to the trainer it starts
# Set by a launcher whose own process keeps the lock for its child (torchrun cannot pass a file on to rank 0).
LAUNCHER_LOCK_ENV = "WRN_LOCK_HELD_BY_LAUNCHER"

# Roles a lock holder records in run.lock.
ROLE_QUEUED = "queued"  # a job queue keeps the run until its process starts
ROLE_TRAINING = "training"
ROLE_DELETING = "deleting"
ROLE_RECONCILING = "reconciling"  # a reader persisting `interrupted`, or a job manager recording an exit


@dataclass(frozen=True)
class Owner:
    """Who holds a run's lock, as its holder wrote it into run.lock."""

    pid: int | None
    host: str
    role: str  # ROLE_QUEUED | ROLE_TRAINING | ROLE_DELETING | ROLE_RECONCILING
    since: float | None

    def describe(self) -> str:
        verb = {ROLE_QUEUED: "queued", ROLE_TRAINING: "being trained"}.get(self.role, f"being changed ({self.role})")
        pid = f"pid {self.pid}" if self.pid else "an unknown process"
        return f"{verb} by {pid} on {self.host or 'an unknown host'}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "role": self.role, "since": self.since}


def read_owner(fd: int) -> Owner:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    return Owner(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        host=str(data.get("host") or ""),
        role=str(data.get("role") or ROLE_TRAINING),
        since=data.get("since") if isinstance(data.get("since"), (int, float)) else None,
    )


def _inherited_lock_fd(lock_path: Path) -> int | None:
    """The fd a launcher passed down for this run's run.lock (same file), if any."""
    value = os.environ.get(INHERITED_LOCK_ENV)
    if not value:
        return None
    try:
        fd = int(value)
        held, wanted = os.fstat(fd), os.stat(lock_path)
    except (ValueError, OSError):
        return None
    if (held.st_dev, held.st_ino) != (wanted.st_dev, wanted.st_ino):
        return None
    os.environ.pop(INHERITED_LOCK_ENV, None)  # ours now; children must not think they own it
    return fd


class RunLock:
    """An exclusive flock on run.lock: whoever holds it is the run's only writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.borrowed = False  # held for us by our parent process (a launcher), not through our own file

    @property
    def held(self) -> bool:
        return self.fd is not None or self.borrowed

    def acquire(self, role: str, run_name: str, wait_s: float = LOCK_WAIT_S) -> None:
        """Take the lock (or adopt one a launcher passed down) and record this process as its owner.

        Raises RunBusyError naming the holder when another process keeps it for longer than wait_s.
        Calling it again while held only changes the recorded role.
        """
        if self.borrowed:
            return
        if self.fd is None:
            if self._held_by_launcher():
                self.borrowed = True
                return
            fd = _inherited_lock_fd(self.path)
            if fd is None:
                fd = self._open_and_lock(run_name, wait_s)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same open file: already ours
            self.fd = fd
        self._write_owner(role)

    def _held_by_launcher(self) -> bool:
        """Whether the parent process says it holds this lock for us, and does."""
        if not os.environ.get(LAUNCHER_LOCK_ENV):
            return False
        owner = probe_owner(self.path)
        return owner is not None and owner.pid == os.getppid()

    def _open_and_lock(self, run_name: str, wait_s: float) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(exc, self.path.name) from exc
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = read_owner(fd)
                    os.close(fd)
                    raise RunBusyError(f"run {run_name!r} is {owner.describe()}") from None
                time.sleep(0.05)

    def _write_owner(self, role: str, pid: int | None = None) -> None:
        assert self.fd is not None
        data = json.dumps({"pid": pid or os.getpid(), "host": socket.gethostname(), "role": role, "since": time.time()}).encode()
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError:
            pass  # the lock itself is what counts; the owner note is for messages only

    def note_owner(self, role: str, pid: int) -> None:
        """Record another process (a launched child that shares our lock) as the owner."""
        self._write_owner(role, pid)

    def release(self) -> None:
        """Unlock and close. Unlocking first matters: forked helpers may still share the open file."""
        self.borrowed = False
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def detach(self) -> int:
        """Give up this process's handle without unlocking: a child that inherited the fd keeps the lock."""
        assert self.fd is not None
        fd, self.fd = self.fd, None
        return fd


def probe_owner(lock_path: Path) -> Owner | None:
    """Who holds the run's lock, or None when nobody does. Never blocks and never keeps the lock."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_owner(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)



@contextmanager
def held_shared_if_free(lock_path: Path) -> Iterator[Owner | None]:
    """Yield None while keeping a shared flock on run.lock (no writer can start meanwhile), or the holder's
    Owner when a writer has it. Never blocks; for a reader that must see a file and the lock at one moment."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            yield read_owner(fd)
            return
        yield None
    finally:
        os.close(fd)  # closing releases the shared flock


# A queue that hands runs to trainers elsewhere (a Ray sweep's driver) cannot keep their run.lock until a
# trainer on another machine takes it; it holds one lock of its own instead, in the runs folder, and each
# run it has queued names that lock in status.json (`queue_lock`). While the lock is held the run is queued.
QUEUE_LOCK_SUFFIX = ".queue.lock"


def queue_lock_name(queue: str) -> str:
    """The file name of a queue's lock in the runs folder (hidden, so it is never listed as a run)."""
    return f".{queue}{QUEUE_LOCK_SUFFIX}"


def queue_owner(root: Path, name: Any) -> Owner | None:
    """Who holds the queue lock `name` in the runs folder `root`, or None (also for a name that is not one)."""
    if not isinstance(name, str) or "/" in name or not name.startswith(".") or not name.endswith(QUEUE_LOCK_SUFFIX):
        return None
    return probe_owner(root / name)
