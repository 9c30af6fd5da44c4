"""The training loop: set up, then one visible per-epoch loop that writes the run directory and reports progress.

    train_run(run)            # holds the run's lock from start to end
      setup()                 # config, data, model, optimizer, schedule, loaders; the checkpoint on resume
      while epochs remain:
          train_epoch()       # steps, per-step points, stop requests
          finish_epoch()      # evaluate, record the epoch, checkpoint, status
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import DataError, DeviceLoader, check_available, load_dataset
from wrn_core import distributed
from wrn_core.devices import resolve_device
from wrn_core.distributed import Dist, RankView
from wrn_core.model import build_model, count_parameters
from wrn_core.monitor import SystemMonitor
from wrn_core.runstore import ACTIVE_STATUSES, Run, RunCorruptError, RunStoreError, RunWriteError


@dataclass(frozen=True)
class Progress:
    """What a UI needs to draw a progress bar; sent to the progress hook and written to heartbeat.json."""

    run_name: str
    phase: str  # loading | compiling | training | evaluating | done
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


ProgressHook = Callable[[Progress], None]
HEARTBEAT_INTERVAL_S = 1.0  # heartbeat.json is rewritten at most this often (and at every phase change)


def preflight(config: TrainConfig) -> str:
    """Check what can be checked before a run is created; returns the device type to queue on.

    Raises ConfigError or DataError with a one-line message (CUDA missing, data not found, a batch
    that does not divide over the data-parallel processes).
    """
    device = resolve_device(config.device)
    if config.batch_size % config.world_size != 0:
        raise ConfigError(
            f"batch size {config.batch_size} does not divide over {config.world_size} processes; "
            f"use a multiple of {config.world_size} (--batch-size is the global batch)"
        )
    check_available(config)
    return device.type


# ---------------------------------------------------------------------------------------------
# Resuming and extending


@dataclass(frozen=True)
class ResumePlan:
    """What a resume will do, decided before it starts."""

    device: str  # device type to queue on
    config: TrainConfig  # the config it trains (target and schedule plan updated)
    done_epochs: int
    warning: str | None  # e.g. continuing a schedule that ended at lr 0


def resume_target_error(status: dict[str, Any], config_epochs: int, epochs: int | None) -> str | None:
    """Why a run with this status cannot resume to `epochs` (None: its own target), or None if it can.

    The one rule the CLI, the job manager and the pages share.
    """
    state = status.get("status")
    if state in ACTIVE_STATUSES:
        return f"it is {state}"
    done = int(status.get("epoch") or 0)
    if epochs is not None:
        if epochs <= done:
            return f"it has already completed {done} epochs; ask for more than {done}"
        return None
    if done >= config_epochs:
        return f"it already finished its {config_epochs} epochs; give a larger number of epochs to continue"
    return None


def prepare_resume(run: Run, epochs: int | None = None, extend: str = "continue", world_size: int = 1) -> ResumePlan:
    """Check that a run can continue (optionally to `epochs` in total) and record the new target.

    The caller must hold the run's lock (Run.acquire). Raises RunStoreError (nothing left to do),
    RunCorruptError (config or checkpoint unreadable) or ConfigError/DataError from preflight,
    before anything is written. The caller then trains with resume=True.
    """
    if not run.lock.held:
        raise RunStoreError(f"run {run.name!r} must be locked before it is resumed")
    status = run.read_status()
    config = run.read_config()
    if status.get("status") in ACTIVE_STATUSES:
        # We hold the lock, so whoever queued or trained it is this process (or its launcher), or gone.
        status = {**status, "status": "stopped"}
    reason = resume_target_error(status, config.epochs, epochs)
    if reason is not None:
        raise RunStoreError(f"cannot resume run {run.name!r}: {reason}")
    done = int(status.get("epoch") or 0)
    warning = None
    if epochs is not None:
        extended = epochs > config.planned_epochs
        config = config.with_target(epochs, extend)
        if extended and extend == "continue":
            start = config.extensions[-1].from_epoch
            if lr_factor(config, start * 1000, 1000) == 0.0:
                warning = (f"the {config.schedule} schedule ended at learning rate 0, so continuing it trains nothing; "
                           f"use the 'restart' extension to run the schedule again over the added epochs")
    if run.has_checkpoint():
        run.check_checkpoint()
    device = preflight(config.replace(world_size=world_size))
    run.write_config(config)
    run.write_status(epochs=config.epochs, finished_at=None)
    return ResumePlan(device=device, config=config, done_epochs=done, warning=warning)


# ---------------------------------------------------------------------------------------------
# Optimizer and learning-rate schedule


def build_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    lr = config.effective_lr
    weight_decay = config.effective_weight_decay
    # Fused kernels: one launch for all parameters on CUDA, instead of one per tensor.
    fused = {"fused": True} if device.type == "cuda" else {}
    params = model.parameters()
    if config.optimizer == "sgd-nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, nesterov=True, weight_decay=weight_decay, **fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=weight_decay, **fused)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(config.momentum, 0.999), weight_decay=weight_decay, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(config.momentum, 0.999), weight_decay=weight_decay, **fused)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}")


def _planned_factor(config: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    """The schedule's multiplier at `step` of a plan `total` steps long (past the end: its final value)."""
    step = min(step, total)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total)
    if config.schedule == "onecycle":
        # Linear ramp from peak/25 to the peak over the warm-up (default 25% of training), then linear to 0.
        ramp = warmup if warmup > 0 else int(0.25 * total)
        if step < ramp:
            return 0.04 + 0.96 * step / max(1, ramp)
        return max(0.0, (total - step) / max(1, total - ramp))
    factor = 1.0
    if config.schedule == "step":
        # The paper: lr x 0.2 at 30%, 60% and 80% of the epochs.
        epoch = step / max(1, steps_per_epoch)
        plan_epochs = total / max(1, steps_per_epoch)
        for milestone in (0.3, 0.6, 0.8):
            if epoch >= milestone * plan_epochs:
                factor *= 0.2
    elif config.schedule == "cosine":
        after_warmup = (step - warmup) / max(1, total - warmup)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, after_warmup))))
    elif config.schedule != "constant":
        raise ConfigError(f"unknown schedule {config.schedule!r}")
    if step < warmup:
        factor *= 0.1 + 0.9 * step / warmup
    return factor


def lr_factor(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate before optimizer step `step` (0-based).

    The plan: the schedule over `planned_epochs_before_extensions` epochs, then each extension in
    turn: `restart` runs the schedule again over its epochs, `continue` keeps the value the plan
    before it ended at (no jump).
    """
    start_step = 0
    factor_at = lambda s: _planned_factor(config, s, config.planned_epochs_before_extensions * steps_per_epoch, steps_per_epoch)  # noqa: E731
    for extension in config.extensions:
        begin = extension.from_epoch * steps_per_epoch
        if step < begin:
            break
        length = extension.epochs * steps_per_epoch
        if extension.mode == "restart":
            start_step, factor_at = begin, (lambda s, n=length: _planned_factor(config, s, n, steps_per_epoch))
        else:
            held = factor_at(begin - start_step)
            start_step, factor_at = begin, (lambda s, v=held: v)
    return factor_at(step - start_step)


# ---------------------------------------------------------------------------------------------
# Pieces of the loop


def evaluate(model: torch.nn.Module, loader: DeviceLoader, device: torch.device, dist: Dist = Dist()) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader (each rank's shard, summed over ranks); one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    with torch.no_grad(), _autocast(device):
        for images, labels in loader.epoch(0):
            logits = model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.shape[0]
    totals = distributed.all_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(count), device=device, dtype=torch.float64)]), dist)
    loss_total, correct_total, images = totals.tolist()
    return loss_total / max(1.0, images), correct_total / max(1.0, images)


def _autocast(device: torch.device):
    # bf16 autocast on CUDA only: CPU bf16 is slower than fp32 on most CPUs and changes results.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class _Diverged(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"loss became NaN or infinite at step {step}")
        self.step = step


@dataclass
class Position:
    """Where training stands and the running totals a resume needs: the checkpoint's plain part.

    The checkpoint is these fields plus the model, optimizer, scheduler and RNG states; its keys are
    written and read here only.
    """

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done, over all epochs
    images_seen: int = 0
    train_seconds: float = 0.0  # training and evaluation seconds, summed over resumes
    best_test_acc: float | None = None
    last_test_acc: float | None = None
    epoch_loss: float = 0.0  # this epoch so far: sum over images of the train loss
    epoch_correct: float = 0.0  # ... correct predictions
    epoch_images: int = 0  # ... images

    def to_checkpoint(self, session: "Session") -> dict[str, Any]:
        """Called on every rank (the RNG states are gathered); rank 0 writes the result."""
        state = dataclasses.asdict(self)
        rng = distributed.gather(_rng_state(session.device), session.dist)
        state.update({
            "model": session.model.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "scheduler": session.scheduler.state_dict(),
            "rng": rng[0],
            "rng_ranks": rng,  # every rank's generators, so a resume with the same world size is exact
            "world_size": session.dist.world_size,
            "config": session.config.to_dict(),
        })
        return state

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> "Position":
        fields = {f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state}
        sums = state.get("epoch_sums")  # checkpoints written before Position existed
        if isinstance(sums, dict):
            fields.update(epoch_loss=sums["loss"], epoch_correct=sums["correct"], epoch_images=sums["count"])
        return cls(**fields)

    def fold(self, loss_sum: float, correct: float, images: int) -> None:
        """Add a logging interval's sums to the epoch's."""
        self.epoch_loss += loss_sum
        self.epoch_correct += correct
        self.epoch_images += images


@dataclass
class Session:
    """Everything one training session works with, built by setup()."""

    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module  # the compiled model with config.compile, else the model
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    params: int
    monitor: SystemMonitor
    dist: Dist
    compiled_eval: bool = False  # whether the compiled model has been evaluated in this process
    recent_rate: float | None = None  # training images/s over the last logging interval

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])


class _Reporter:
    """Sends Progress to the hook and keeps heartbeat.json current (throttled)."""

    def __init__(self, run: Run, hook: ProgressHook | None) -> None:
        self.run = run
        self.hook = hook
        self.last_write = 0.0
        self.last_phase = ""

    def __call__(self, progress: Progress) -> None:
        if self.hook is not None:
            self.hook(progress)
        now = time.monotonic()
        if progress.phase != self.last_phase or now - self.last_write >= HEARTBEAT_INTERVAL_S or progress.notice:
            self.last_write, self.last_phase = now, progress.phase
            try:
                self.run.write_heartbeat(dataclasses.asdict(progress))
            except OSError:
                pass  # the heartbeat is a convenience; the status and metrics writes report disk trouble

    def send(self, session: Session | None, position: Position, phase: str, loss: float | None = None,
             acc: float | None = None, rate: float | None = None, notice: str | None = None) -> None:
        config = session.config if session else None
        total = session.total_steps if session else 0
        eta = (total - position.step) * config.batch_size / rate if (session and rate) else None
        self(Progress(
            run_name=self.run.name, phase=phase, epoch=position.epoch, epochs=config.epochs if config else 0,
            step=position.step, total_steps=total, steps_per_epoch=session.steps_per_epoch if session else 0,
            images_seen=position.images_seen, elapsed_s=position.train_seconds, images_per_s=rate, eta_s=eta,
            train_loss=loss, train_acc=acc, test_acc=position.last_test_acc,
            device=session.device.type if session else "", notice=notice,
        ))


def setup(run: Run, resume: bool, reporter: _Reporter, dist: Dist) -> tuple[Session, Position]:
    """Config, data, model, optimizer, schedule and loaders; on resume, the checkpointed state."""
    config = run.read_config()
    device = distributed.device_for(config.device, dist)
    checkpoint = run.load_checkpoint() if resume and run.has_checkpoint() else None
    torch.manual_seed(config.seed)
    data = load_dataset(config)

    # The dataset decides the number of classes and input channels, and the launcher the number of
    # processes; record them so the stored config stays enough to rerun.
    model_config = config.model
    if model_config.num_classes != data.num_classes or model_config.in_channels != data.image_shape[0]:
        model_config = dataclasses.replace(model_config, num_classes=data.num_classes, in_channels=data.image_shape[0])
        config = config.replace(model=model_config)
    if config.world_size != dist.world_size:
        config = config.replace(world_size=dist.world_size)
    if config != run.read_config():
        run.write_config(config)

    model = build_model(model_config)
    params = count_parameters(model)
    if dist.rank > 0:
        torch.manual_seed(config.seed + 7919 * dist.rank)  # each rank its own dropout masks (weights come from rank 0)
    if config.sync_bn and dist.enabled:
        if device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA GPUs: torch's SyncBatchNorm runs only there")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # channels_last (NHWC) suits cuDNN's tensor-core kernels and oneDNN's CPU convolutions
    # (measured here: WRN-10-2 training steps ~1.3x faster on the CPU than NCHW).
    channels_last = device.type in ("cuda", "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = build_optimizer(model, config, device)

    # Whole dataset resident on the device as uint8; augmentation runs there too. Under DDP every
    # rank draws the same epoch plan and takes its own part of each global batch.
    shard = (dist.rank, dist.world_size)
    train_loader = DeviceLoader(
        data.train_images.to(device), data.train_labels.to(device), config.batch_size, data.mean, data.std,
        train=True, augment=config.augment, seed=config.seed, channels_last=channels_last, shard=shard,
    )
    test_loader = DeviceLoader(
        data.test_images.to(device), data.test_labels.to(device), config.eval_batch_size, data.mean, data.std,
        train=False, augment=False, channels_last=channels_last, shard=shard,
    )
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(data.train_labels)} training images; use a smaller batch"
        )
    train_loader.local_batch_size  # noqa: B018 - raises DataError when the batch does not divide over the ranks
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))
    forward: torch.nn.Module = model
    if dist.enabled:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        forward = torch.compile(forward)
    session = Session(config, device, model, forward, optimizer, scheduler, train_loader, test_loader, params,
                      SystemMonitor(device), dist)

    position = Position()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        position = Position.from_checkpoint(checkpoint)
        rng_ranks = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
        if len(rng_ranks) == dist.world_size:
            _set_rng_state(rng_ranks[dist.rank], device)
        else:
            # Another world size: the data order is the same (it does not depend on the ranks), the
            # dropout masks are not.
            torch.manual_seed(config.seed + 7919 * dist.rank + position.step)
            run.append_metrics([{"kind": "event", "event": "world-size", "step": position.step, "epoch": position.epoch,
                                 "time": position.train_seconds, "seconds": None,
                                 "message": f"resumed on {dist.world_size} process(es), the checkpoint was written by "
                                            f"{len(rng_ranks)}: same data order from step {position.step}, new dropout masks"}])
        # The schedule decides the lr from the position, so an extended target never jumps it.
        factor = lr_factor(config, position.step, steps_per_epoch)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * factor
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
    if resume and (checkpoint is not None or _has_points(run)):
        # Points recorded after the checkpoint are superseded; readers drop them (the file is never rewritten).
        run.append_metrics([{
            "kind": "resume", "from_step": position.step,
            "from_epoch": position.epoch + position.batch_in_epoch / steps_per_epoch,
            "time": position.train_seconds, "wall_time": time.time(), "epochs": config.epochs,
        }])
    if data.skipped:
        shown = ", ".join(data.skipped[:3]) + (", ..." if len(data.skipped) > 3 else "")
        notice = f"skipped {len(data.skipped)} unreadable image{'s' if len(data.skipped) != 1 else ''} ({shown})"
        run.append_metrics([{"kind": "event", "event": "data", "step": position.step, "epoch": position.epoch,
                             "time": position.train_seconds, "seconds": None, "message": notice,
                             "skipped": len(data.skipped)}])
        reporter.send(session, position, "loading", notice=notice)
    return session, position


def record_system(run: Run, session: Session, position: Position) -> None:
    """Append a `system` record: process CPU and memory, CUDA memory, GPU load (see monitor.py)."""
    run.append_metrics([{
        "kind": "system", "step": position.step,
        "epoch": position.epoch + position.batch_in_epoch / session.steps_per_epoch,
        "time": position.train_seconds, "wall_time": time.time(), **session.monitor.sample(),
    }])


def _has_points(run: Run) -> bool:
    """Whether metrics.jsonl holds any training point (a queued run's first start has none to supersede)."""
    return any(r.get("kind") in ("step", "epoch") for r in run.read_metrics())


def train_epoch(run: Run, session: Session, position: Position, stop_event: threading.Event, report: _Reporter) -> bool:
    """Train from the position to the end of the epoch; False if a stop was asked for (position is then exact).

    One process stops within one batch; data-parallel ranks agree on a stop at the next logging
    point, so that all of them stop at the same step.
    """
    config, device, dist = session.config, session.device, session.dist
    model, optimizer, scheduler = session.model, session.optimizer, session.scheduler
    steps_per_epoch = session.steps_per_epoch
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Running sums stay on the device; the host reads them once per logging interval.
    interval_loss = torch.zeros((), device=device, dtype=torch.float64)
    interval_correct = torch.zeros((), device=device, dtype=torch.int64)
    bad_step = torch.zeros((), device=device, dtype=torch.int64)  # first step with a non-finite loss
    interval_images = 0
    interval_start = time.perf_counter()
    for images, labels in session.train_loader.epoch(position.epoch, start_batch=position.batch_in_epoch):
        if not dist.enabled and stop_event.is_set():
            position.train_seconds += time.perf_counter() - interval_start
            position.fold(interval_loss.item(), float(interval_correct.item()), interval_images)
            return False
        first_step_start = time.perf_counter() if position.step == 0 else None
        with _autocast(device):
            logits = session.forward(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        position.step += 1
        position.batch_in_epoch += 1
        position.images_seen += labels.shape[0] * dist.world_size
        detached = loss.detach()
        interval_loss += detached.double() * labels.shape[0]
        interval_correct += (logits.argmax(dim=1) == labels).sum()
        interval_images += labels.shape[0]
        bad_step = torch.where((bad_step == 0) & ~torch.isfinite(detached), position.step, bad_step)
        if first_step_start is not None and config.compile:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - first_step_start
            run.append_metrics([{"kind": "event", "event": "compile", "step": position.step, "epoch": position.epoch,
                                 "time": position.train_seconds + seconds, "seconds": seconds,
                                 "message": f"torch.compile warm-up and first step took {seconds:.1f} s"}])
        if position.step % config.log_every != 0 and position.batch_in_epoch != steps_per_epoch:
            continue
        # The logging point: sums over the ranks, the first bad step and any stop request, in one host sync.
        sums = distributed.all_sum(torch.stack([
            interval_loss, interval_correct.double(), torch.tensor(float(interval_images), device=device, dtype=torch.float64),
        ]), dist)
        flags = distributed.all_max(torch.stack([
            bad_step.double(), torch.tensor(float(stop_event.is_set()), device=device, dtype=torch.float64),
        ]), dist)
        loss_sum, correct, images_total, first_bad, stop_asked = torch.cat([sums, flags]).tolist()
        if first_bad > 0:
            raise _Diverged(int(first_bad))
        now = time.perf_counter()
        seconds = now - interval_start
        position.train_seconds += seconds
        interval_start = now
        loss_value, acc_value = loss_sum / images_total, correct / images_total
        session.recent_rate = images_total / seconds if seconds > 0 else None
        run.append_metrics([{
            "kind": "step", "step": position.step, "epoch": position.epoch + position.batch_in_epoch / steps_per_epoch,
            "images_seen": position.images_seen, "time": position.train_seconds, "train_loss": loss_value,
            "train_acc": acc_value, "lr": session.current_lr,
        }])
        position.fold(loss_sum, correct, int(images_total))
        interval_loss.zero_()
        interval_correct.zero_()
        interval_images = 0
        if session.monitor.due():
            record_system(run, session, position)
        report.send(session, position, "training", loss_value, acc_value, session.recent_rate)
        if dist.enabled and stop_asked > 0 and position.batch_in_epoch < steps_per_epoch:
            return False
    position.train_seconds += time.perf_counter() - interval_start
    return True


def _data_parallel_checks(session: Session, epoch: int) -> dict[str, Any]:
    """For a data-parallel epoch: whether every rank holds the same weights and the shards were disjoint."""
    dist = session.dist
    if not dist.enabled:
        return {}
    with torch.no_grad():
        weights = torch.stack([p.detach().double().sum() for p in session.model.parameters()]).tolist()
    replicas = distributed.gather(weights, dist)
    shards = distributed.gather(session.train_loader.epoch_indices(epoch).cpu().tolist(), dist)
    seen = [index for shard in shards for index in shard]
    return {
        "world_size": dist.world_size,
        "replicas_agree": all(r == replicas[0] for r in replicas),
        "shards_disjoint": len(set(seen)) == len(seen),
        "images_per_epoch": len(seen),
    }


def finish_epoch(run: Run, session: Session, position: Position, epoch_start: float, report: _Reporter) -> None:
    """Evaluate, record the epoch, checkpoint and update the status."""
    config, device = session.config, session.device
    rate = session.recent_rate
    train_phase_seconds = time.perf_counter() - epoch_start
    report.send(session, position, "evaluating", rate=rate)
    eval_start = time.perf_counter()
    test_loss, test_acc = evaluate(session.forward, session.test_loader, device, session.dist)
    eval_seconds = time.perf_counter() - eval_start
    position.train_seconds += eval_seconds
    if config.compile and not session.compiled_eval:
        # Eval mode and the eval batch shape compile a second graph; show that cost too.
        session.compiled_eval = True
        run.append_metrics([{"kind": "event", "event": "compile-eval", "step": position.step, "epoch": position.epoch + 1,
                             "time": position.train_seconds, "seconds": eval_seconds,
                             "message": f"first evaluation with torch.compile (includes compiling it) took {eval_seconds:.1f} s"}])
    if not math.isfinite(test_loss):
        raise _Diverged(position.step)
    images = max(1, position.epoch_images)
    checks = _data_parallel_checks(session, position.epoch)
    position.epoch += 1
    position.batch_in_epoch = 0
    position.best_test_acc = test_acc if position.best_test_acc is None else max(position.best_test_acc, test_acc)
    position.last_test_acc = test_acc
    run.append_metrics([{
        "kind": "epoch", "epoch": position.epoch, "step": position.step, "images_seen": position.images_seen,
        "time": position.train_seconds, "train_loss": position.epoch_loss / images,
        "train_acc": position.epoch_correct / images, "test_loss": test_loss, "test_acc": test_acc,
        "lr": session.current_lr, "epoch_seconds": time.perf_counter() - epoch_start,
        "images_per_s": position.epoch_images / train_phase_seconds if train_phase_seconds > 0 else None,
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        **checks,
    }])
    position.epoch_loss, position.epoch_correct, position.epoch_images = 0.0, 0.0, 0
    record_system(run, session, position)  # at least one reading per epoch, however short
    run.save_checkpoint(position.to_checkpoint(session))
    run.write_status(
        "running", f"epoch {position.epoch}/{config.epochs}: test accuracy {test_acc:.1%}", epoch=position.epoch,
        step=position.step, images_seen=position.images_seen, train_seconds=position.train_seconds,
        best_test_acc=position.best_test_acc, final_test_acc=test_acc,
    )
    report.send(session, position, "training", rate=rate)


# ---------------------------------------------------------------------------------------------
# The run


def train_run(
    run: Run,
    stop_event: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
    resume: bool = False,
    dist: Dist | None = None,
) -> str:
    """Train the run described by run/config.json; returns the final status.

    Holds the run's lock from start to end (RunBusyError, before anything is written, if another
    process holds it). Never raises for training problems: they end in status stopped, finished,
    diverged or failed with a one-line message in status.json (and a traceback in error.txt for
    unexpected errors). Points recorded before a failure stay in metrics.jsonl.

    Data-parallel (dist from torchrun, process group joined): every rank calls this; rank 0 alone
    holds the lock and writes, the others see the run through a RankView.
    """
    stop_event = stop_event or threading.Event()
    dist = dist or Dist()
    if not dist.is_main:
        run = RankView(run)  # type: ignore[assignment]
    run.acquire("training")
    report = _Reporter(run, on_progress if dist.is_main else None)
    session: Session | None = None
    position = Position()
    try:
        run.write_status("running", "loading data", started_at=time.time(), pid=os.getpid(), host=socket.gethostname(),
                         finished_at=None, error_kind=None)
        report.send(None, position, "loading")
        session, position = setup(run, resume, report, dist)
        config = session.config
        run.write_status(
            "running", f"training on {session.device.type}" + (f" × {dist.world_size} processes" if dist.enabled else ""),
            params=session.params, device=session.device.type, world_size=dist.world_size,
            epochs=config.epochs, model_name=config.model.name, dataset=config.dataset, optimizer=config.optimizer,
            epoch=position.epoch, step=position.step, images_seen=position.images_seen,
        )
        record_system(run, session, position)
        report.send(session, position, "compiling" if config.compile and position.step == 0 else "training")
        while position.epoch < config.epochs:
            epoch_start = time.perf_counter()
            if not train_epoch(run, session, position, stop_event, report):
                run.save_checkpoint(position.to_checkpoint(session))
                epoch_at = position.epoch + position.batch_in_epoch / session.steps_per_epoch
                run.write_status("stopped", f"stopped at epoch {epoch_at:.2f} (step {position.step}); resume to continue",
                                 step=position.step, images_seen=position.images_seen,
                                 train_seconds=position.train_seconds, finished_at=time.time())
                report.send(session, position, "done")
                return "stopped"
            finish_epoch(run, session, position, epoch_start, report)
        run.write_status("finished", f"finished {config.epochs} epochs: best test accuracy {position.best_test_acc:.1%}",
                         finished_at=time.time(), train_seconds=position.train_seconds)
        report.send(session, position, "done")
        return "finished"
    except _Diverged as exc:
        return _end(run, "diverged", f"{exc}; try a lower learning rate", position, "diverged")
    except torch.OutOfMemoryError:
        hint = f" (batch {session.config.batch_size}, {session.config.model.name})" if session else ""
        return _end(run, "failed", f"CUDA out of memory at step {position.step}{hint}: try a smaller batch size or widen factor",
                    position, "oom")
    except (ConfigError, DataError, RunCorruptError) as exc:
        return _end(run, "failed", str(exc), position, "input")
    except RunWriteError as exc:
        # Disk full or read-only: what was written stays; the temporary file of the failed write is gone.
        return _end(run, "failed", str(exc), position, "io")
    except Exception as exc:  # noqa: BLE001 - any failure must end as a recorded status
        where = ""
        if dist.is_main:
            try:
                run.error_path.write_text(traceback.format_exc())
                where = f" (traceback in {run.error_path})"
            except OSError:
                pass
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return _end(run, "failed", f"{type(exc).__name__}: {first_line}{where}", position, "exception")
    finally:
        session = None
        _release_memory()
        run.remove_temporary_files()
        run.release()


def _end(run: Run, status: str, message: str, position: Position, error_kind: str) -> str:
    # error_kind tells a caller whether the input was at fault (the CLI exits 2 for "input").
    run.remove_temporary_files()  # a write cut short may have left one; it also frees the space it took
    try:
        run.write_status(status, message, finished_at=time.time(), step=position.step, error_kind=error_kind)
    except OSError:
        # Still no room for status.json: once the lock is released, readers find the run interrupted.
        pass
    return status


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
