"""The run format's one home: status names, failure causes, metrics record kinds and their constructors, the heartbeat.

Every metrics.jsonl record is built here and nowhere else (times in seconds, accuracies as fractions
in [0, 1]); readers parse the file with `parse_metrics`. The engine, the store, the jobs, the CLI and
the pages use these names instead of string literals.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

# Statuses a run can have (status.json "status").
QUEUED = "queued"
RUNNING = "running"
STOPPED = "stopped"
FINISHED = "finished"
DIVERGED = "diverged"
FAILED = "failed"
INTERRUPTED = "interrupted"
# Stopped early by a sweep's pruner (a stop request that asks for it, STOP_ENDS): it keeps its curve and
# checkpoint, a sweep never resumes it, and `resume NAME [--epochs E]` by hand continues it.
PRUNED = "pruned"
STATUSES = (QUEUED, RUNNING, STOPPED, FINISHED, DIVERGED, FAILED, INTERRUPTED, PRUNED)
ACTIVE_STATUSES = (QUEUED, RUNNING)  # some process holds the run (or held it and died: then it reads interrupted)
# Ended: a sweep never resumes these. By hand, a finished run resumes with more epochs; a pruned one continues its plan.
ENDED_STATUSES = (FINISHED, DIVERGED, FAILED, PRUNED)
PAUSED_STATUSES = (STOPPED, INTERRUPTED)  # can resume from the checkpoint
# What a stop request (runs/<name>/stop.request) may ask its trainer to end as: its "ends" field.
STOP_ENDS = (STOPPED, PRUNED)
# A sweep cell with no run directory yet (a status of the sweep's table, never of status.json).
PENDING = "pending"

# status.json "executor": what started the trainer (the env var its launcher sets; unset means local).
EXECUTOR_LOCAL = "local"
EXECUTOR_RAY = "ray"
EXECUTORS = (EXECUTOR_LOCAL, EXECUTOR_RAY)
EXECUTOR_ENV = "WRN_EXECUTOR"
NODE_ENV = "WRN_RAY_NODE"  # the Ray node id a Ray cell's trainer runs on (status.json "node")

# The cause of a failed or diverged run: status.json's CAUSE_FIELD. The CLI exits 2 for INPUT_ERROR.
INPUT_ERROR = "input"
IO_ERROR = "io"
OOM_ERROR = "oom"
DIVERGED_ERROR = "diverged"
EXCEPTION_ERROR = "exception"
ERROR_CAUSES = (INPUT_ERROR, IO_ERROR, OOM_ERROR, DIVERGED_ERROR, EXCEPTION_ERROR)
CAUSE_FIELD = "error_kind"  # its name in status.json, as every run so far has written it

# metrics.jsonl record kinds.
STEP = "step"
EPOCH = "epoch"
EVENT = "event"
CREATED = "created"
RESUME = "resume"
SYSTEM = "system"
RETRY = "retry"
WIDTH = "width"
RECORD_KINDS = (STEP, EPOCH, EVENT, CREATED, RESUME, SYSTEM, RETRY, WIDTH)
# Record kinds whose "step" must be an integer for the record to count (others are kept as they are).
STEPPED_KINDS = (STEP, EPOCH, EVENT, SYSTEM, WIDTH)

# Progress phases (heartbeat.json "phase").
LOADING = "loading"
COMPILING = "compiling"
TRAINING = "training"
EVALUATING = "evaluating"
DONE = "done"
PHASES = (LOADING, COMPILING, TRAINING, EVALUATING, DONE)
HEARTBEAT_INTERVAL_S = 1.0  # heartbeat.json is rewritten at most this often (and at every phase change)


# ---------------------------------------------------------------------------------------------
# Record constructors: the only place a metrics record is built


def created_record(wall_time: float) -> dict[str, Any]:
    """The first line of metrics.jsonl: when the run was made (survives a lost status.json)."""
    return {"kind": CREATED, "wall_time": wall_time}


def step_record(step: int, epoch: float, images_seen: int, time: float, train_loss: float, train_acc: float,
                lr: float) -> dict[str, Any]:
    """A per-step train point: `epoch` is fractional (2.5 = half-way through the third), `time` training seconds."""
    return {"kind": STEP, "step": step, "epoch": epoch, "images_seen": images_seen, "time": time,
            "train_loss": train_loss, "train_acc": train_acc, "lr": lr}


def epoch_record(epoch: int, step: int, images_seen: int, time: float, train_loss: float, train_acc: float,
                 test_loss: float, test_acc: float, lr: float, epoch_seconds: float, images_per_s: float | None,
                 peak_mem_mb: float | None, boundary_s: float | None = None, checkpoint_wait_s: float | None = None,
                 **data_parallel: Any) -> dict[str, Any]:
    """A completed epoch (1-based). boundary_s: seconds the epoch boundary kept training waiting, evaluation
    excluded, up to this record; checkpoint_wait_s: the part of it spent waiting for a checkpoint write.
    data_parallel adds world_size, replicas_agree, shards_disjoint, images_per_epoch."""
    return {"kind": EPOCH, "epoch": epoch, "step": step, "images_seen": images_seen, "time": time,
            "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
            "epoch_seconds": epoch_seconds, "images_per_s": images_per_s, "peak_mem_mb": peak_mem_mb,
            "boundary_s": boundary_s, "checkpoint_wait_s": checkpoint_wait_s, **data_parallel}


def event_record(event: str, message: str, step: int, epoch: float, time: float, seconds: float | None = None,
                 **extra: Any) -> dict[str, Any]:
    """Something worth telling the user: compile, data (unreadable images skipped), world-size."""
    return {"kind": EVENT, "event": event, "step": step, "epoch": epoch, "time": time, "seconds": seconds,
            "message": message, **extra}


def resume_record(from_step: int, from_epoch: float, time: float, wall_time: float, epochs: int) -> dict[str, Any]:
    """Training restarted from the checkpoint at from_step: readers drop earlier records with a larger step."""
    return {"kind": RESUME, "from_step": from_step, "from_epoch": from_epoch, "time": time, "wall_time": wall_time,
            "epochs": epochs}


def retry_record(attempt: int, of: int, node: str, epoch: int, reason: str, wall_time: float) -> dict[str, Any]:
    """A Ray sweep's driver started the cell again from its checkpoint after its Ray task was lost (the node died,
    the worker crashed or was OOM-killed): `attempt` of `of` allowed, `node` the Ray node id it was lost on,
    `epoch` the epochs it had completed. No "step": a later resume marker never drops it."""
    return {"kind": RETRY, "attempt": attempt, "of": of, "node": node, "epoch": epoch, "reason": reason,
            "wall_time": wall_time}


def retries_text(records: Iterable[Any]) -> str:
    """'retried 2× (node 3f2a9c1e lost in epoch 3)': how often a run's history says it was started again, and why
    the last time; '' if never."""
    retries = list(of_kind(records, RETRY))
    if not retries:
        return ""
    return f"retried {len(retries)}× ({retries[-1].get('reason') or 'lost'})"


def system_record(step: int, epoch: float, time: float, wall_time: float, **readings: Any) -> dict[str, Any]:
    """A system reading (engine.monitor): CPU, memory, CUDA memory, GPU load; None where there is no source."""
    return {"kind": SYSTEM, "step": step, "epoch": epoch, "time": time, "wall_time": wall_time, **readings}


def width_record(epoch: int, step: int, time: float, images: int, layers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Width use measured on epoch `epoch`'s evaluation pass over `images` test images: one entry per ReLU in
    forward order, {"layer", "channels", "dead", "effective"} (dead: zero at >= 99% of positions; effective: the
    participation ratio of the channels' mean squared activations). `layers` are engine.width rows."""
    return {"kind": WIDTH, "epoch": epoch, "step": step, "time": time, "images": images,
            "layers": [{"layer": row["layer"], "channels": row["channels"], "dead": row["dead_channels"],
                        "effective": row["effective_width"]} for row in layers]}


# ---------------------------------------------------------------------------------------------
# Reading metrics.jsonl


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


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_record(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return False
    kind = record["kind"]
    if kind in STEPPED_KINDS:
        step = record.get("step")
        if not is_int(step) or step < 0:
            return False
    if kind in (EPOCH, WIDTH) and not is_int(record.get("epoch")):
        return False
    if kind == WIDTH:
        return isinstance(record.get("layers"), list) and all(_valid_width_layer(layer) for layer in record["layers"])
    if kind == RESUME:
        return is_int(record.get("from_step")) and record["from_step"] >= 0
    return True


def _valid_width_layer(layer: Any) -> bool:
    """A width record's layer entry: a name, channels >= 1, 0 <= dead <= channels, a number for effective."""
    if not isinstance(layer, dict) or not isinstance(layer.get("layer"), str):
        return False
    channels, dead, effective = layer.get("channels"), layer.get("dead"), layer.get("effective")
    return (is_int(channels) and channels >= 1 and is_int(dead) and 0 <= dead <= channels
            and isinstance(effective, (int, float)) and not isinstance(effective, bool))


def of_kind(records: Iterable[Any], *kinds: str) -> Iterator[dict[str, Any]]:
    """The records of these kinds, in their order (anything that is not a record of one of them is passed over)."""
    for record in records:
        if isinstance(record, Mapping) and record.get("kind") in kinds:
            yield record  # type: ignore[misc]


def has_points(records: Iterable[Any]) -> bool:
    """Whether the records hold a training point (a step or an epoch record): anything to draw, or to supersede."""
    return any(True for _ in of_kind(records, STEP, EPOCH))


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
        if record["kind"] == RESUME:
            # Training restarted from the checkpoint at from_step: later points replace what came after it.
            cut = record["from_step"]
            kept = [r for r in records if not (is_int(r.get("step")) and r["step"] > cut)]
            superseded += len(records) - len(kept)
            records = kept
        records.append(record)
    return MetricsLog(records, unreadable, superseded)


# ---------------------------------------------------------------------------------------------
# status.json, as read


def _int(value: Any) -> int | None:
    return value if is_int(value) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return str(value or "")


@dataclass(frozen=True)
class RunStatus:
    """A run's status.json as read (Run.status()): each field typed, None or "" where it is missing or of another type.

    Times are unix seconds; accuracies fractions in [0, 1]. `owner` and `rebuilt` are what the reader adds
    (the lock's owner; a status rebuilt from the other files).
    """

    status: str  # one of STATUSES
    message: str = ""
    epoch: int = 0  # completed epochs
    epochs: int | None = None  # the target
    step: int = 0
    images_seen: int | None = None
    best_test_acc: float | None = None
    final_test_acc: float | None = None
    params: int | None = None
    train_seconds: float | None = None
    created_at: float | None = None
    started_at: float | None = None
    updated_at: float | None = None
    finished_at: float | None = None
    device: str = ""  # device type
    pid: int | None = None
    host: str = ""
    executor: str = ""  # one of EXECUTORS once a trainer has started
    world_size: int | None = None
    model_name: str = ""
    dataset: str = ""
    optimizer: str = ""
    cause: str | None = None  # one of ERROR_CAUSES for a failed or diverged run (status.json CAUSE_FIELD)
    slot: str = ""  # the job queue it waited in
    sweep: str = ""
    queue_lock: str = ""  # a remote queue's lock file, while such a queue holds it queued
    node: str = ""  # the Ray node id a Ray cell's trainer runs (or last ran) on
    gpus: str = ""  # CUDA_VISIBLE_DEVICES as the trainer saw it (the GPUs Ray assigned a Ray cell); "" when unset
    owner: dict[str, Any] | None = None
    rebuilt: bool = False

    @classmethod
    def from_dict(cls, status: Mapping[str, Any]) -> "RunStatus":
        cause = status.get(CAUSE_FIELD)
        return cls(
            status=str(status.get("status", INTERRUPTED)), message=_text(status.get("message")),
            epoch=_int(status.get("epoch")) or 0, epochs=_int(status.get("epochs")), step=_int(status.get("step")) or 0,
            images_seen=_int(status.get("images_seen")), best_test_acc=_float(status.get("best_test_acc")),
            final_test_acc=_float(status.get("final_test_acc")), params=_int(status.get("params")),
            train_seconds=_float(status.get("train_seconds")), created_at=_float(status.get("created_at")),
            started_at=_float(status.get("started_at")), updated_at=_float(status.get("updated_at")),
            finished_at=_float(status.get("finished_at")), device=_text(status.get("device")), pid=_int(status.get("pid")),
            host=_text(status.get("host")), executor=_text(status.get("executor")), world_size=_int(status.get("world_size")),
            model_name=_text(status.get("model_name")), dataset=_text(status.get("dataset")),
            optimizer=_text(status.get("optimizer")), cause=cause if isinstance(cause, str) else None,
            slot=_text(status.get("slot")), sweep=_text(status.get("sweep")), queue_lock=_text(status.get("queue_lock")),
            node=_text(status.get("node")), gpus=_text(status.get("gpus")),
            owner=status.get("owner") if isinstance(status.get("owner"), dict) else None, rebuilt=bool(status.get("rebuilt")),
        )

    @property
    def active(self) -> bool:
        """Queued or running: some process holds the run."""
        return self.status in ACTIVE_STATUSES


# ---------------------------------------------------------------------------------------------
# The heartbeat


@dataclass(frozen=True)
class Progress:
    """What a UI needs to draw a progress bar; sent to the progress hook and written to heartbeat.json."""

    run_name: str
    phase: str  # LOADING | COMPILING | TRAINING | EVALUATING | DONE
    epoch: int  # completed epochs
    epochs: int
    step: int  # global optimizer steps done
    total_steps: int
    steps_per_epoch: int
    images_seen: int
    elapsed_s: float  # training seconds, summed over resumes
    images_per_s: float | None  # recent training throughput
    eta_s: float | None
    train_loss: float | None  # over the last logging interval
    train_acc: float | None
    test_acc: float | None  # of the last completed epoch
    device: str
    notice: str | None = None  # a one-off line for the user, e.g. unreadable images that were skipped


def progress_from_heartbeat(beat: dict[str, Any] | None) -> Progress | None:
    """The Progress a trainer last wrote to heartbeat.json (its fields plus wall_time), or None."""
    if not beat:
        return None
    known = set(Progress.__dataclass_fields__)
    try:
        return Progress(**{k: v for k, v in beat.items() if k in known})
    except TypeError:
        return None
