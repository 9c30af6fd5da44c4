"""One run directory, the only contract between the training engine and any UI: its files, lock and status.

runs/<name>/
    config.json      TrainConfig, all that is needed to rerun (replaced atomically)
    metrics.jsonl    append-only, one JSON object per line; never rewritten
    status.json      replaced atomically; status, message, timestamps, summary figures
    heartbeat.json   replaced atomically about once a second while training: progress, ETA, images/s
    checkpoint.pt    model/optimizer/scheduler/RNG state and position, replaced atomically
    run.lock         the OS lock (flock) of the one process that may write the run; holds its owner
    error.txt        traceback of a failed run
    meta.json        the user's tags and note (store/meta.py); never read or written by the trainer
    stop.request     a stop asked for by anyone who can write the directory (any machine), with what the run
                     ends as (stopped, or pruned by a sweep's pruner) and why; the trainer looks for it at its
                     logging points and removes it when it starts or stops

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

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.errors import one_line
from wrn_core.store.atomic import remove_quietly, write_atomic, write_error
from wrn_core.store.errors import RunCorruptError
from wrn_core.store.lock import (
    LOCK_WAIT_S, ROLE_QUEUED, ROLE_TRAINING, Owner, RunLock, held_shared_if_free, probe_owner, queue_owner, read_owner,
)
from wrn_core.store.meta import Annotations, read_annotations, update_annotations
from wrn_core.store.records import (
    ACTIVE_STATUSES,
    CAUSE_FIELD,
    CREATED,
    EPOCH,
    FINISHED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    STATUSES,
    STOP_ENDS,
    STOPPED,
    MetricsLog,
    RunStatus,
    is_int,
    of_kind,
    parse_metrics,
)

def interrupted_message(status: dict[str, Any]) -> str:
    """What a queued or running status whose process is gone says instead."""
    pid = status.get("pid")
    who = f"pid {pid}" if pid else "its process"
    doing = "queued" if status.get("status") == QUEUED else "training"
    return f"{doing} ended without a stop ({who} is gone); resume to continue"


STOP_REQUEST_FILE = "stop.request"  # its presence asks the run's trainer to checkpoint and stop

# Fields a config.json must have; anything else may default (fields added after a run was made).
REQUIRED_CONFIG_FIELDS = ("model", "dataset", "optimizer", "epochs", "batch_size")


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

    @property
    def stop_path(self) -> Path:
        return self.path / STOP_REQUEST_FILE

    # annotations (the user's, not the writer's: no lock, see store/meta.py) ----------
    def read_annotations(self) -> Annotations:
        return read_annotations(self.path)

    def annotate(self, add_tags: Iterable[str] = (), remove_tags: Iterable[str] = (), note: str | None = None,
                 tags: Iterable[str] | None = None) -> Annotations:
        """Change the run's tags or note (see update_annotations); safe while it trains."""
        return update_annotations(self.path, add_tags=add_tags, remove_tags=remove_tags, note=note, tags=tags)

    # lock ---------------------------------------------------------------------------
    def acquire(self, role: str = ROLE_TRAINING, wait_s: float = LOCK_WAIT_S) -> None:
        """Become the run's writer (see RunLock.acquire); RunBusyError if another process is."""
        self.lock.acquire(role, self.name, wait_s)

    def release(self) -> None:
        self.lock.release()

    def owner(self) -> Owner | None:
        """The process holding the run's lock (this one included), or None."""
        if self.lock.fd is not None:
            return read_owner(self.lock.fd)  # type: ignore[arg-type]
        return probe_owner(self.lock.path)

    def holder(self, status: dict[str, Any] | None) -> Owner | None:
        """Who keeps the run: its lock's owner, or for a queued status naming a queue lock, that queue's owner."""
        owner = self.owner()
        if owner is None and status is not None and status.get("status") == QUEUED:
            owner = queue_owner(self.path.parent, status.get("queue_lock"))
        return owner

    # config -------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        write_atomic(self.config_path, json.dumps(config.to_dict(), indent=2).encode(), "config.json")

    def read_config_dict(self) -> dict[str, Any]:
        """config.json as a dict; RunCorruptError (one line) when it is missing, not JSON or incomplete."""
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunCorruptError(f"run {self.name!r} has no config.json") from None
        except (OSError, ValueError) as exc:
            raise RunCorruptError(f"config.json of run {self.name!r} is unreadable ({one_line(exc)})") from None
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
            raise RunCorruptError(f"config.json of run {self.name!r} is invalid ({one_line(exc)})") from None

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
            raise write_error(exc, "metrics.jsonl") from exc

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
    def read_status_file(self) -> tuple[dict[str, Any] | None, str | None]:
        """status.json as the writer left it, not reconciled: (the dict, None) or (None, why it could not be used).

        For a run's own writer, and the job manager deciding what its child recorded; readers use read_status.
        """
        try:
            status = json.loads(self.status_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, "missing"
        except (OSError, ValueError) as exc:
            return None, f"unreadable ({one_line(exc)})"
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
        epochs = list(of_kind(records, EPOCH))
        last = epochs[-1] if epochs else None
        latest = records[-1] if records else None
        target = config.get("epochs") if is_int(config.get("epochs")) else None
        done = int(last["epoch"]) if last else 0
        tested = [r["test_acc"] for r in epochs if isinstance(r.get("test_acc"), (int, float))]
        state = FINISHED if target is not None and done >= target else INTERRUPTED
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        message = f"status.json was {problem}; rebuilt from metrics.jsonl: {done}/{target if target is not None else '?'} epochs"
        if state == INTERRUPTED:
            message += "; resume to continue" if self.checkpoint_path.exists() else "; resume to start over"
        created = next(of_kind(records, CREATED), None)
        created_at = created.get("wall_time") if created else None
        return {
            "status": state,
            "message": message,
            "rebuilt": True,
            "created_at": created_at,
            "epoch": done,
            "epochs": target,
            "step": int(latest["step"]) if latest and is_int(latest.get("step")) else 0,
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
        process holds the run (for a run queued by a remote queue such as a Ray sweep, while that queue
        holds the lock its status names).
        """
        status = self._status_or_rebuilt()
        owner = self.owner()
        if owner is None and status.get("status") in ACTIVE_STATUSES and self.lock.fd is None:
            # A trainer writes its final status and then releases the lock: read between the two steps,
            # the file said active while the lock was still held (and a writer may have started again
            # since). Read it again holding a shared lock, so the file and the lock are seen at one moment.
            with held_shared_if_free(self.lock.path) as owner:
                status = self._status_or_rebuilt()
        if owner is None and status.get("status") == QUEUED:
            owner = queue_owner(self.path.parent, status.get("queue_lock"))  # queued by a live remote queue
        if owner is not None:
            status["owner"] = owner.to_dict()
            if owner.role in (ROLE_QUEUED, ROLE_TRAINING) and status.get("status") not in ACTIVE_STATUSES and status.get("rebuilt"):
                status["status"] = RUNNING if owner.role == ROLE_TRAINING else QUEUED
            return status
        if status.get("status") in ACTIVE_STATUSES:
            status["message"] = interrupted_message(status)
            status["status"] = INTERRUPTED
        return status

    def status(self) -> RunStatus:
        """read_status() as a typed RunStatus."""
        return RunStatus.from_dict(self.read_status())

    def _status_or_rebuilt(self) -> dict[str, Any]:
        status, problem = self.read_status_file()
        return status if status is not None else self.rebuild_status(problem or "unreadable")

    def write_status(self, status: str | None = None, message: str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge fields into status.json and replace it atomically; returns what was written.

        The merge starts from the file, or from a status rebuilt from facts when the file is
        unreadable, so no field is ever dropped and no status is invented. `cause` (a failed or
        diverged run's, records.ERROR_CAUSES; None clears it) is written as status.json's CAUSE_FIELD.
        """
        current, problem = self.read_status_file()
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
        if "cause" in fields:
            fields[CAUSE_FIELD] = fields.pop("cause")
        current.update(fields)
        current["updated_at"] = time.time()
        write_atomic(self.status_path, json.dumps(current, indent=2).encode(), "status.json")
        return current

    # heartbeat ----------------------------------------------------------------------
    def write_heartbeat(self, data: dict[str, Any]) -> None:
        write_atomic(self.heartbeat_path, json.dumps({**data, "wall_time": time.time()}).encode(), "heartbeat.json")

    def read_heartbeat(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.heartbeat_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    # stop requests ------------------------------------------------------------------
    def request_stop(self, by: str = "", ends: str = STOPPED, message: str = "") -> None:
        """Ask the run's trainer, wherever it runs, to checkpoint and end `ends` at its next logging point.

        ends: `stopped` (resume continues it) or `pruned` (a sweep's pruner: ended, see records.PRUNED);
        message: why, which a pruned run's status message carries. Anyone may write it (not only the lock
        holder): it is a request, and the trainer is the one who acts.
        """
        if ends not in STOP_ENDS:
            raise ValueError(f"a stop request ends a run as one of {', '.join(STOP_ENDS)}, not {ends!r}")
        note = {"wall_time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), "by": by, "ends": ends,
                "message": message}
        write_atomic(self.stop_path, json.dumps(note).encode(), STOP_REQUEST_FILE)

    def stop_requested(self) -> bool:
        """Whether a stop has been asked for: one stat, cheap enough for every logging point."""
        return self.stop_path.exists()

    def read_stop_request(self) -> tuple[str, str]:
        """(what the request asks the run to end as, its message): (`stopped`, "") for a request without a valid
        `ends` (one written before requests carried it, or unreadable), so a stop is never lost."""
        try:
            note = json.loads(self.stop_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return STOPPED, ""
        if not isinstance(note, dict) or note.get("ends") not in STOP_ENDS:
            return STOPPED, ""
        return str(note["ends"]), str(note.get("message") or "")

    def clear_stop_request(self) -> None:
        """Forget a stop request (the trainer, when it starts and when it has stopped)."""
        remove_quietly(self.stop_path)

    # checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Replace checkpoint.pt atomically; on failure no temporary file is left and RunWriteError is raised."""
        import io

        import torch

        # Serialised in memory first: torch.save reports a failed file write (disk full) only as an
        # opaque RuntimeError, while our own write says which error it was.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        write_atomic(self.checkpoint_path, buffer.getbuffer(), "the checkpoint")

    def load_checkpoint(self) -> dict[str, Any]:
        """The checkpoint's contents; RunCorruptError (one line) when it cannot be read."""
        import torch

        try:
            # weights_only: a checkpoint holds only tensors and plain data, so no pickled code can run.
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise RunCorruptError(f"run {self.name!r} has no checkpoint.pt") from None
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is unreadable ({one_line(exc)})") from None
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is not a WRN Lab checkpoint")
        return state

    def check_checkpoint(self) -> None:
        """Cheap readability check (memory-mapped, no tensor data read); RunCorruptError if damaged."""
        import torch

        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:  # noqa: BLE001
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is unreadable ({one_line(exc)})") from None
        if not isinstance(state, dict) or "model" not in state or "step" not in state:
            raise RunCorruptError(f"checkpoint.pt of run {self.name!r} is not a WRN Lab checkpoint")

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def remove_temporary_files(self) -> None:
        """Temporary files this process left (a write cut short); other processes' are theirs."""
        for path in self.path.glob(f".*.{os.getpid()}.tmp"):
            remove_quietly(path)
