"""The run directory: the only contract between the training engine and any UI.

runs/<name>/
    config.json      TrainConfig, all that is needed to rerun (replaced atomically)
    metrics.jsonl    append-only, one JSON object per line; never rewritten
    status.json      replaced atomically; status, message, timestamps, summary figures
    heartbeat.json   replaced atomically about once a second while training: progress, ETA, images/s
    checkpoint.pt    model/optimizer/scheduler/RNG state and position, replaced atomically
    run.lock         the OS lock (flock) of the one process that may write the run; holds its owner
    error.txt        traceback of a failed run

Guarantees:
- One writer: whoever writes a run holds an exclusive flock on run.lock for as long as it does
  (a trainer for the whole training, a job queue while the run waits, delete and reconcile briefly).
  The kernel drops the lock when its process dies, so `kill -9` frees the run at once.
- Statuses are derived from facts: a status.json that says queued or running while nobody holds
  the lock reads `interrupted`; an unreadable status.json is rebuilt from metrics.jsonl, config.json
  and the checkpoint, and says so.
- metrics.jsonl only grows. A resume appends a `resume` marker; readers drop the records that a later
  marker supersedes. Damaged lines stay in the file and are skipped and counted by readers.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from wrn_core.config import ConfigError, TrainConfig

STATUSES = ("queued", "running", "stopped", "finished", "diverged", "failed", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
# Record kinds whose "step" must be an integer for the record to count (others are kept as they are).
STEPPED_KINDS = ("step", "epoch", "event", "system")
# Fields a config.json must have; anything else may default (fields added after a run was made).
REQUIRED_CONFIG_FIELDS = ("model", "dataset", "optimizer", "epochs", "batch_size")
LOCK_WAIT_S = 2.0  # how long a would-be writer waits for a lock held only for a moment (a reader's probe)
INHERITED_LOCK_ENV = "WRN_RUN_LOCK_FD"  # a job launcher hands its locked run.lock fd to the trainer it starts
# Set by a launcher whose own process keeps the lock for its child (torchrun cannot pass a file on to rank 0).
LAUNCHER_LOCK_ENV = "WRN_LOCK_HELD_BY_LAUNCHER"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunStoreError(ValueError):
    """A run name is invalid, a run is missing, or a run cannot be changed now (one line)."""


class RunBusyError(RunStoreError):
    """Another process holds the run's lock."""


class RunCorruptError(RunStoreError):
    """A file of the run (config.json, checkpoint.pt) cannot be read; the message says which and why."""


class RunWriteError(OSError):
    """Writing a file of the run failed (disk full, read-only, ...); the message is one line."""

    def __str__(self) -> str:
        return str(self.strerror)


def validate_run_name(name: str) -> str:
    """Return the name if it is a safe single directory name; raise RunStoreError otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise RunStoreError(
            f"invalid run name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, with no path separators or '..'"
        )
    return name


def _now() -> float:
    return time.time()


def iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_error(exc: OSError, what: str) -> RunWriteError:
    reason = os.strerror(exc.errno).lower() if exc.errno else _one_line(exc)
    return RunWriteError(exc.errno or 0, f"{reason} while writing {what}")


def _write_atomic(path: Path, data: bytes, what: str | None = None) -> None:
    """Replace path with data via a temporary file in the same directory; no temp file survives a failure."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _write_error(exc, what or path.name) from exc


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# The lock


@dataclass(frozen=True)
class Owner:
    """Who holds a run's lock, as its holder wrote it into run.lock."""

    pid: int | None
    host: str
    role: str  # queued | training | deleting | reconciling
    since: float | None

    def describe(self) -> str:
        verb = {"queued": "queued", "training": "being trained"}.get(self.role, f"being changed ({self.role})")
        pid = f"pid {self.pid}" if self.pid else "an unknown process"
        return f"{verb} by {pid} on {self.host or 'an unknown host'}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "role": self.role, "since": self.since}


def _read_owner(fd: int) -> Owner:
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
        role=str(data.get("role") or "training"),
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
            raise _write_error(exc, self.path.name) from exc
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    owner = _read_owner(fd)
                    os.close(fd)
                    raise RunBusyError(f"run {run_name!r} is {owner.describe()}") from None
                time.sleep(0.05)

    def _write_owner(self, role: str, pid: int | None = None) -> None:
        assert self.fd is not None
        data = json.dumps({"pid": pid or os.getpid(), "host": socket.gethostname(), "role": role, "since": _now()}).encode()
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
            return _read_owner(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass(frozen=True)
class MetricsLog:
    """What a reader makes of metrics.jsonl."""

    records: list[dict[str, Any]]  # valid records in file order, minus those superseded by a resume marker
    unreadable: int  # lines that are not a valid record (torn by a crash, damaged, a null step)
    superseded: int  # valid records dropped because a later resume went back before them

    @property
    def warning(self) -> str | None:
        if self.unreadable == 0:
            return None
        return f"{self.unreadable} unreadable line{'s' if self.unreadable != 1 else ''} in metrics.jsonl (skipped)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_record(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return False
    kind = record["kind"]
    if kind in STEPPED_KINDS:
        step = record.get("step")
        if not _is_int(step) or step < 0:
            return False
    if kind == "epoch" and not _is_int(record.get("epoch")):
        return False
    if kind == "resume":
        return _is_int(record.get("from_step")) and record["from_step"] >= 0
    return True


def parse_metrics(text: str) -> MetricsLog:
    """Records of a metrics.jsonl text, with resume markers applied and bad lines counted."""
    records: list[dict[str, Any]] = []
    unreadable = 0
    superseded = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            unreadable += 1
            continue
        if not _valid_record(record):
            unreadable += 1
            continue
        if record["kind"] == "resume":
            # Training restarted from the checkpoint at from_step: later points replace what came after it.
            cut = record["from_step"]
            kept = [r for r in records if not (_is_int(r.get("step")) and r["step"] > cut)]
            superseded += len(records) - len(kept)
            records = kept
        records.append(record)
    return MetricsLog(records, unreadable, superseded)


# ---------------------------------------------------------------------------------------------
# One run


class Run:
    """One run directory: one writer (the lock holder) and any number of readers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.lock = RunLock(self.path / "run.lock")

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def heartbeat_path(self) -> Path:
        return self.path / "heartbeat.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def error_path(self) -> Path:
        return self.path / "error.txt"

    # lock ---------------------------------------------------------------------------
    def acquire(self, role: str = "training", wait_s: float = LOCK_WAIT_S) -> None:
        """Become the run's writer (see RunLock.acquire); RunBusyError if another process is."""
        self.lock.acquire(role, self.name, wait_s)

    def release(self) -> None:
        self.lock.release()

    def owner(self) -> Owner | None:
        """The process holding the run's lock (this one included), or None."""
        if self.lock.fd is not None:
            return _read_owner(self.lock.fd)  # type: ignore[arg-type]
        return probe_owner(self.lock.path)

    # config -------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        _write_atomic(self.config_path, json.dumps(config.to_dict(), indent=2).encode(), "config.json")

    def read_config_dict(self) -> dict[str, Any]:
        """config.json as a dict; RunCorruptError (one line) when it is missing, not JSON or incomplete."""
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunCorruptError(f"run {self.name!r} has no config.json") from None
        except (OSError, ValueError) as exc:
            raise RunCorruptError(f"config.json of run {self.name!r} is unreadable ({_one_line(exc)})") from None
        if not isinstance(data, dict):
            raise RunCorruptError(f"config.json of run {self.name!r} is not a JSON object")
        missing = [key for key in REQUIRED_CONFIG_FIELDS if key not in data]
        if missing:
            raise RunCorruptError(f"config.json of run {self.name!r} lacks {', '.join(missing)}")
        return data

    def read_config(self) -> TrainConfig:
        """The run's TrainConfig; RunCorruptError (one line) when config.json is unreadable or invalid."""
        data = self.read_config_dict()
        try:
            return TrainConfig.from_dict(data)
        except (ConfigError, TypeError, ValueError) as exc:
            raise RunCorruptError(f"config.json of run {self.name!r} is invalid ({_one_line(exc)})") from None

    # metrics ------------------------------------------------------------------------
    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records, one JSON line each; flushed before returning."""
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if not lines:
            return
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as f:
                # A torn last line from a crash would glue onto our first record; start a new line.
                if f.tell() > 0 and not self._ends_with_newline():
                    f.write("\n")
                f.write(lines)
                f.flush()
        except OSError as exc:
            raise _write_error(exc, "metrics.jsonl") from exc

    def _ends_with_newline(self) -> bool:
        with open(self.metrics_path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def read_metrics_log(self) -> MetricsLog:
        try:
            text = self.metrics_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return MetricsLog([], 0, 0)
        return parse_metrics(text)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The run's current history: valid records, resumed-over points dropped, bad lines skipped."""
        return self.read_metrics_log().records

    # status -------------------------------------------------------------------------
    def _read_status_file(self) -> tuple[dict[str, Any] | None, str | None]:
        """(status.json as a dict, None) or (None, why it could not be used)."""
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "missing"
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({_one_line(exc)})"
        if not isinstance(status, dict) or status.get("status") not in STATUSES:
            return None, "not a valid status"
        return status, None

    def rebuild_status(self, problem: str) -> dict[str, Any]:
        """A status made only of facts: metrics.jsonl, config.json, the checkpoint and the lock."""
        try:
            config: dict[str, Any] = self.read_config_dict()
        except RunCorruptError:
            config = {}
        records = self.read_metrics_log().records
        epochs = [r for r in records if r.get("kind") == "epoch"]
        last = epochs[-1] if epochs else None
        latest = records[-1] if records else None
        target = config.get("epochs") if _is_int(config.get("epochs")) else None
        done = int(last["epoch"]) if last else 0
        tested = [r["test_acc"] for r in epochs if isinstance(r.get("test_acc"), (int, float))]
        state = "finished" if target is not None and done >= target else "interrupted"
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        message = f"status.json was {problem}; rebuilt from metrics.jsonl: {done}/{target if target is not None else '?'} epochs"
        if state == "interrupted":
            message += "; resume to continue" if self.checkpoint_path.exists() else "; resume to start over"
        created = next((r for r in records if r.get("kind") == "created"), None)
        created_at = created.get("wall_time") if created else None
        return {
            "status": state,
            "message": message,
            "rebuilt": True,
            "created_at": created_at,
            "epoch": done,
            "epochs": target,
            "step": int(latest["step"]) if latest and _is_int(latest.get("step")) else 0,
            "images_seen": latest.get("images_seen") if latest else None,
            "train_seconds": latest.get("time") if latest else None,
            "best_test_acc": max(tested) if tested else None,
            "final_test_acc": tested[-1] if tested else None,
            "model_name": f"WRN-{model.get('depth')}-{model.get('widen_factor')}" if model else None,
            "dataset": config.get("dataset"),
            "optimizer": config.get("optimizer"),
        }

    def read_status(self) -> dict[str, Any]:
        """status.json reconciled with the facts: who holds the lock, and a rebuild when it is unreadable.

        A queued or running status whose process is gone reads `interrupted`; `owner` is set while a
        process holds the run.
        """
        status, problem = self._read_status_file()
        if status is None:
            status = self.rebuild_status(problem or "unreadable")
        owner = self.owner()
        if owner is not None:
            status["owner"] = owner.to_dict()
            if owner.role in ("queued", "training") and status.get("status") not in ACTIVE_STATUSES and status.get("rebuilt"):
                status["status"] = "running" if owner.role == "training" else "queued"
            return status
        if status.get("status") in ACTIVE_STATUSES:
            was = status["status"]
            pid = status.get("pid")
            who = f"pid {pid}" if pid else "its process"
            status["status"] = "interrupted"
            status["message"] = (
                f"{'queued' if was == 'queued' else 'training'} ended without a stop ({who} is gone); resume to continue"
            )
        return status

    def write_status(self, status: str | None = None, message: str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge fields into status.json and replace it atomically; returns what was written.

        The merge starts from the file, or from a status rebuilt from facts when the file is
        unreadable, so no field is ever dropped and no status is invented.
        """
        current, problem = self._read_status_file()
        if current is None:
            current = self.rebuild_status(problem or "unreadable") if self.path.exists() and problem != "missing" else {}
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            current["status"] = status
            current.pop("rebuilt", None)
        if message is not None:
            current["message"] = message
        current.pop("owner", None)
        current.update(fields)
        current["updated_at"] = _now()
        _write_atomic(self.status_path, json.dumps(current, indent=2).encode(), "status.json")
        return current

    # heartbeat ----------------------------------------------------------------------
    def write_heartbeat(self, data: dict[str, Any]) -> None:
        _write_atomic(self.heartbeat_path, json.dumps({**data, "wall_time": _now()}).encode(), "heartbeat.json")

    def read_heartbeat(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.heartbeat_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Replace checkpoint.pt atomically; on failure no temporary file is left and RunWriteError is raised."""
        import io

        import torch

        # Serialised in memory first: torch.save reports a failed file write (disk full) only as an
        # opaque RuntimeError, while our own write says which error it was.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        _write_atomic(self.checkpoint_path, buffer.getbuffer(), "the checkpoint")

    def load_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's contents; RunCorruptError (one line) when it cannot be read."""
        import torch

        try:
            # weights_only: a checkpoint holds only tensors and plain data, so no pickled code can run.
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise RunCorruptError(f"run {self.name!r} has no checkpoint.pt") from None
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is unreadable ({_one_line(exc)})") from None
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is not a WRN Lab checkpoint")
        return state

    def check_checkpoint(self) -> None:
        """Cheap readability check (memory-mapped, no tensor data read); RunCorruptError if damaged."""
        import torch

        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is unreadable ({_one_line(exc)})") from None
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is not a WRN Lab checkpoint")

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def remove_temporary_files(self) -> None:
        """Temporary files this process left (a write cut short); other processes' are theirs."""
        for path in self.path.glob(f".*.{os.getpid()}.tmp"):
            _remove_quietly(path)


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table, read from config.json, status.json and the lock only (fast)."""

    name: str
    status: str
    message: str
    model_name: str
    depth: int | None
    widen_factor: int | None
    optimizer: str
    dataset: str
    epoch: int
    epochs: int
    best_test_acc: float | None
    final_test_acc: float | None
    params: int | None
    duration_s: float
    created_at: float | None
    device: str
    problem: str = ""  # one line when a file of the run is unreadable; the row shows what could be read


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class RunStore:
    """A folder of run directories."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, name: str) -> Path:
        return self.root / validate_run_name(name)

    def exists(self, name: str) -> bool:
        return (self.path_for(name) / "config.json").exists()

    def get(self, name: str) -> Run:
        path = self.path_for(name)
        if not (path / "config.json").exists():
            raise RunStoreError(f"no run named {name!r} in {self.root}")
        return Run(path)

    def default_name(self, config: TrainConfig) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{config.model.name.lower()}-{config.dataset}-{stamp}"
        name, n = base, 1
        while self.path_for(name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    def create(self, config: TrainConfig, name: str | None = None, hold: str | None = None, **status_fields: Any) -> Run:
        """A new run directory holding config.json and status 'queued'.

        With hold ("queued" or "training") the returned Run keeps its lock, so no other process can
        take the run between its creation and its training; otherwise the lock is released.
        """
        if name is None or name == "":
            name = self.default_name(config)
        path = self.path_for(name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise RunStoreError(f"a run named {name!r} already exists in {self.root}") from None
        except OSError as exc:
            raise _write_error(exc, f"the run directory {path}") from exc
        run = Run(path)
        # The lock comes first: once config.json exists the run is visible, and already owned.
        run.acquire(hold or "queued", wait_s=0.0)
        try:
            created_at = _now()
            # The first record: when the run was made, kept even if status.json is ever lost.
            run.append_metrics([{"kind": "created", "wall_time": created_at}])
            run.write_config(config)
            run.write_status(
                "queued",
                "waiting to start",
                created_at=created_at,
                epoch=0,
                epochs=config.epochs,
                model_name=config.model.name,
                dataset=config.dataset,
                optimizer=config.optimizer,
                **status_fields,
            )
        except BaseException:
            run.release()
            shutil.rmtree(path, ignore_errors=True)
            raise
        if hold is None:
            run.release()
        return run

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name) and (p / "config.json").exists()
        )

    def delete(self, name: str) -> None:
        """Remove a run that no process holds; RunBusyError names the holder otherwise."""
        run = self.get(name)
        try:
            run.acquire("deleting", wait_s=0.5)
        except RunBusyError as exc:
            raise RunBusyError(f"{exc}; stop it before deleting") from None
        try:
            shutil.rmtree(run.path)
        finally:
            run.release()

    def reconcile(self) -> list[str]:
        """Persist `interrupted` for runs left queued/running by a process that is gone; returns their names.

        Takes each such run's lock for the write, so it never races a live writer.
        """
        marked = []
        for name in self.names():
            run = Run(self.root / name)
            status, _ = run._read_status_file()
            if status is None or status.get("status") not in ACTIVE_STATUSES or run.owner() is not None:
                continue
            try:
                run.acquire("reconciling", wait_s=0.0)
            except (RunBusyError, OSError):
                continue
            try:
                status, _ = run._read_status_file()
                if status is not None and status.get("status") in ACTIVE_STATUSES:
                    was = status["status"]
                    pid = status.get("pid")
                    run.write_status(
                        "interrupted",
                        f"{'queued' if was == 'queued' else 'training'} ended without a stop "
                        f"({'pid ' + str(pid) if pid else 'its process'} is gone); resume to continue",
                    )
                    marked.append(name)
            except OSError:
                pass
            finally:
                run.release()
        return marked

    def summary(self, name: str) -> RunSummary:
        """One run's row; never raises for a damaged run (its problem is in the row)."""
        run = Run(self.root / name)
        problems = []
        config: dict[str, Any] = {}
        try:
            config = run.read_config_dict()
            run.read_config()  # validates it; what could be read is still shown when it is invalid
        except RunCorruptError as exc:
            problems.append(str(exc))
        try:
            status = run.read_status()
        except OSError as exc:
            status = {"status": "interrupted", "message": f"status unreadable ({_one_line(exc)})"}
        if status.get("rebuilt"):
            problems.append(str(status.get("message", "")))
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        depth = model.get("depth") if _is_int(model.get("depth")) else None
        widen = model.get("widen_factor") if _is_int(model.get("widen_factor")) else None
        epochs = status.get("epochs") if _is_int(status.get("epochs")) else config.get("epochs")
        return RunSummary(
            name=name,
            status=str(status.get("status", "interrupted")),
            message=str(status.get("message", "")),
            model_name=str(status.get("model_name") or (f"WRN-{depth}-{widen}" if depth and widen else "?")),
            depth=depth,
            widen_factor=widen,
            optimizer=str(config.get("optimizer", status.get("optimizer") or "")),
            dataset=str(config.get("dataset", status.get("dataset") or "")),
            epoch=int(status.get("epoch") or 0) if _is_int(status.get("epoch")) else 0,
            epochs=int(epochs) if _is_int(epochs) else 0,
            best_test_acc=_number(status.get("best_test_acc")),
            final_test_acc=_number(status.get("final_test_acc")),
            params=status.get("params") if _is_int(status.get("params")) else None,
            duration_s=_number(status.get("train_seconds")) or 0.0,
            created_at=_number(status.get("created_at")),
            device=str(status.get("device") or ""),
            problem="; ".join(problems),
        )

    def summaries(self) -> list[RunSummary]:
        """Every run's row, with its status reconciled; a damaged run is listed with its problem."""
        rows = []
        for name in self.names():
            try:
                rows.append(self.summary(name))
            except Exception as exc:  # noqa: BLE001 - one bad run never breaks the listing
                rows.append(RunSummary(name, "interrupted", "", "?", None, None, "", "", 0, 0, None, None, None, 0.0,
                                       None, "", problem=f"unreadable run ({_one_line(exc)})"))
        return rows
