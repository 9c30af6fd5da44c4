"""A folder of run directories: names, creation (locked from its first file), listing, deletion and reconciling."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wrn_core.config import DEFAULT_LR, TrainConfig
from wrn_core.errors import one_line
from wrn_core.store.atomic import write_error
from wrn_core.store.errors import RunBusyError, RunCorruptError, RunStoreError
from wrn_core.store.lock import ROLE_DELETING, ROLE_QUEUED, ROLE_RECONCILING, queue_owner
from wrn_core.store.records import ACTIVE_STATUSES, INTERRUPTED, QUEUED, RunStatus, created_record, is_int
from wrn_core.store.run import Run, interrupted_message

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Where runs are kept unless a caller says otherwise: $WRN_RUNS_DIR, else ./runs (the CLI and the dashboard alike).
RUNS_DIR_ENV = "WRN_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"


def default_runs_dir() -> Path:
    """$WRN_RUNS_DIR (with ~ expanded), else `runs` in the current directory; read at each call."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR).expanduser()


def validate_run_name(name: str) -> str:
    """Return the name if it is a safe single directory name; raise RunStoreError otherwise."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise RunStoreError(
            f"invalid run name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, with no path separators or '..'"
        )
    return name


def iso(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _config_fields(config: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """RunSummary's dropout, lr, batch_size and seed from a config.json as read (wrong types become None)."""
    lr = _number(config.get("lr"))
    if lr is None and config.get("lr") is None and config.get("optimizer") in DEFAULT_LR:
        lr = DEFAULT_LR[config["optimizer"]]
    return {
        "dropout": _number(model.get("dropout")),
        "lr": lr,
        "batch_size": config.get("batch_size") if is_int(config.get("batch_size")) else None,
        "seed": config.get("seed") if is_int(config.get("seed")) else None,
    }


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
    tags: tuple[str, ...] = ()  # the user's (meta.json)
    note: str = ""
    # Config fields the runs table filters and groups by (None where config.json lacks them).
    dropout: float | None = None
    lr: float | None = None  # the peak learning rate it trained with (the optimizer's default when config.json has none)
    batch_size: int | None = None
    seed: int | None = None
    executor: str = ""  # what started its trainer (records.EXECUTORS); "" before one has started
    host: str = ""  # the machine its trainer runs (or last ran) on
    node: str = ""  # the Ray node id it runs (or last ran) on; "" unless Ray started it
    gpus: str = ""  # CUDA_VISIBLE_DEVICES its trainer saw (the GPUs Ray assigned it); "" when unset
    # config.json as read ({} when unreadable): every setting, for analyses that consider all of them.
    config: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def blocks(self) -> int | None:
        """N, blocks per group (depth = 6N + 4); None when the depth is unknown or not of that form."""
        if self.depth is None or (self.depth - 4) % 6 or self.depth < 10:
            return None
        return (self.depth - 4) // 6


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

        With hold (ROLE_QUEUED or ROLE_TRAINING) the returned Run keeps its lock, so no other process can
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
            raise write_error(exc, f"the run directory {path}") from exc
        run = Run(path)
        # The lock comes first: once config.json exists the run is visible, and already owned.
        run.acquire(hold or ROLE_QUEUED, wait_s=0.0)
        try:
            created_at = time.time()
            # The first record: when the run was made, kept even if status.json is ever lost.
            run.append_metrics([created_record(created_at)])
            run.write_config(config)
            run.write_status(
                QUEUED,
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
            run.acquire(ROLE_DELETING, wait_s=0.5)
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
            status, _ = run.read_status_file()
            if status is None or status.get("status") not in ACTIVE_STATUSES or run.holder(status) is not None:
                continue
            try:
                run.acquire(ROLE_RECONCILING, wait_s=0.0)
            except (RunBusyError, OSError):
                continue
            try:
                status, _ = run.read_status_file()
                queued_elsewhere = status is not None and status.get("status") == QUEUED and queue_owner(
                    self.root, status.get("queue_lock")) is not None
                if status is not None and status.get("status") in ACTIVE_STATUSES and not queued_elsewhere:
                    run.write_status(INTERRUPTED, interrupted_message(status))
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
            status = run.status()
        except OSError as exc:
            status = RunStatus(INTERRUPTED, f"status unreadable ({one_line(exc)})")
        if status.rebuilt:
            problems.append(status.message)
        annotations = run.read_annotations()
        if annotations.problem:
            problems.append(annotations.problem)
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        depth = model.get("depth") if is_int(model.get("depth")) else None
        widen = model.get("widen_factor") if is_int(model.get("widen_factor")) else None
        epochs = status.epochs if status.epochs is not None else config.get("epochs")
        return RunSummary(
            name=name,
            status=status.status,
            message=status.message,
            model_name=status.model_name or (f"WRN-{depth}-{widen}" if depth and widen else "?"),
            depth=depth,
            widen_factor=widen,
            optimizer=str(config.get("optimizer", status.optimizer)),
            dataset=str(config.get("dataset", status.dataset)),
            epoch=status.epoch,
            epochs=int(epochs) if is_int(epochs) else 0,
            best_test_acc=status.best_test_acc,
            final_test_acc=status.final_test_acc,
            params=status.params,
            duration_s=status.train_seconds or 0.0,
            created_at=status.created_at,
            device=status.device,
            problem="; ".join(problems),
            tags=annotations.tags,
            note=annotations.note,
            **_config_fields(config, model),
            executor=status.executor,
            host=status.host,
            node=status.node,
            gpus=status.gpus,
            config=config,
        )

    def summaries(self) -> list[RunSummary]:
        """Every run's row, with its status reconciled; a damaged run is listed with its problem."""
        rows = []
        for name in self.names():
            try:
                rows.append(self.summary(name))
            except Exception as exc:  # noqa: BLE001 - one bad run never breaks the listing
                rows.append(RunSummary(name, INTERRUPTED, "", "?", None, None, "", "", 0, 0, None, None, None, 0.0,
                                       None, "", problem=f"unreadable run ({one_line(exc)})"))
        return rows
