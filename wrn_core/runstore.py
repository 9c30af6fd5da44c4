"""The run directory: the only contract between the training engine and any UI.

runs/<name>/
    config.json      TrainConfig, all that is needed to rerun (written once)
    metrics.jsonl    append-only, one JSON object per line, flushed per record
    status.json      replaced atomically; status, message, timestamps, summary figures
    checkpoint.pt    model/optimizer/scheduler/RNG state, replaced atomically
    error.txt        traceback of a failed run
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from wrn_core.config import TrainConfig

STATUSES = ("queued", "running", "stopped", "finished", "diverged", "failed", "interrupted")
ACTIVE_STATUSES = ("queued", "running")
RESUMABLE_STATUSES = ("stopped", "interrupted", "finished", "failed", "diverged")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class RunStoreError(ValueError):
    """A run name is invalid, a run is missing, or a run cannot be changed now."""


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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Run:
    """One run directory. Safe for one writer (the training job) and many readers."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = self.path.name

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
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def error_path(self) -> Path:
        return self.path / "error.txt"

    # config -------------------------------------------------------------------------
    def write_config(self, config: TrainConfig) -> None:
        _write_atomic(self.config_path, json.dumps(config.to_dict(), indent=2).encode())

    def read_config(self) -> TrainConfig:
        return TrainConfig.from_dict(json.loads(self.config_path.read_text()))

    def read_config_dict(self) -> dict[str, Any]:
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return {}

    # metrics ------------------------------------------------------------------------
    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records, one JSON line each; flushed before returning."""
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if not lines:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            # A torn last line from a crash would glue onto our first record; start fresh.
            if f.tell() > 0 and not self._ends_with_newline():
                f.write("\n")
            f.write(lines)
            f.flush()

    def _ends_with_newline(self) -> bool:
        with open(self.metrics_path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def read_metrics(self) -> list[dict[str, Any]]:
        """All complete records; a torn or corrupt line (crash mid-write) is skipped."""
        try:
            text = self.metrics_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def truncate_metrics_after(self, step: int) -> None:
        """Drop records past a checkpointed global step, so a resumed run does not repeat points."""
        kept = [r for r in self.read_metrics() if int(r.get("step", 0)) <= step]
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
        _write_atomic(self.metrics_path, data.encode())

    # status -------------------------------------------------------------------------
    def read_status(self) -> dict[str, Any]:
        try:
            status = json.loads(self.status_path.read_text())
            if isinstance(status, dict):
                return status
        except (OSError, ValueError):
            pass
        return {"status": "failed", "message": "status.json is missing or unreadable"}

    def write_status(self, status: str | None = None, message: str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge fields into status.json and replace it atomically; returns the new status."""
        current = self.read_status() if self.status_path.exists() else {}
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            current["status"] = status
        if message is not None:
            current["message"] = message
        current.update(fields)
        current["updated_at"] = _now()
        _write_atomic(self.status_path, json.dumps(current, indent=2).encode())
        return current

    # checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        import torch

        tmp = self.checkpoint_path.with_name(f".checkpoint.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any]:
        import torch

        # weights_only: a checkpoint holds only tensors and plain data, so no pickled code can run.
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs table, read from config.json and status.json only (fast)."""

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

    def create(self, config: TrainConfig, name: str | None = None) -> Run:
        """A new run directory holding config.json and status 'queued'."""
        if name is None or name == "":
            name = self.default_name(config)
        path = self.path_for(name)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise RunStoreError(f"a run named {name!r} already exists in {self.root}") from None
        run = Run(path)
        run.write_config(config)
        run.write_status(
            "queued",
            "waiting to start",
            created_at=_now(),
            epoch=0,
            epochs=config.epochs,
            model_name=config.model.name,
            dataset=config.dataset,
            optimizer=config.optimizer,
        )
        return run

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and _NAME_RE.match(p.name) and (p / "config.json").exists()
        )

    def delete(self, name: str) -> None:
        run = self.get(name)
        status = run.read_status().get("status")
        if status in ACTIVE_STATUSES and _pid_alive(run.read_status().get("pid")):
            raise RunStoreError(f"run {name!r} is {status}; stop it before deleting")
        shutil.rmtree(run.path)

    def reconcile(self, live_names: Iterable[str] = ()) -> list[str]:
        """Mark runs left 'running'/'queued' by a dead process as 'interrupted'.

        A run is live if this process's job manager holds it (live_names) or if the
        process that wrote it (status pid) is another process that is still alive.
        """
        live = set(live_names)
        marked = []
        for name in self.names():
            run = Run(self.root / name)
            status = run.read_status()
            if status.get("status") not in ACTIVE_STATUSES or name in live:
                continue
            pid = status.get("pid")
            if pid != os.getpid() and _pid_alive(pid):
                continue
            run.write_status("interrupted", "the process running this job ended; resume to continue")
            marked.append(name)
        return marked

    def summaries(self) -> list[RunSummary]:
        rows = []
        for name in self.names():
            run = Run(self.root / name)
            config = run.read_config_dict()
            status = run.read_status()
            model = config.get("model", {}) if isinstance(config.get("model"), dict) else {}
            rows.append(
                RunSummary(
                    name=name,
                    status=str(status.get("status", "failed")),
                    message=str(status.get("message", "")),
                    model_name=str(status.get("model_name") or f"WRN-{model.get('depth')}-{model.get('widen_factor')}"),
                    depth=model.get("depth"),
                    widen_factor=model.get("widen_factor"),
                    optimizer=str(config.get("optimizer", "")),
                    dataset=str(config.get("dataset", "")),
                    epoch=int(status.get("epoch", 0) or 0),
                    epochs=int(status.get("epochs", config.get("epochs", 0)) or 0),
                    best_test_acc=status.get("best_test_acc"),
                    final_test_acc=status.get("final_test_acc"),
                    params=status.get("params"),
                    duration_s=float(status.get("train_seconds", 0.0) or 0.0),
                    created_at=status.get("created_at"),
                    device=str(status.get("device", "")),
                )
            )
        return rows
