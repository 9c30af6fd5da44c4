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
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import DeviceLoader, load_dataset, loading_message
from wrn_core.engine import distributed
from wrn_core.engine.checkpoint import CheckpointWriter, Position, set_rng_state, snapshot
from wrn_core.engine.distributed import Dist, RankView
from wrn_core.engine.monitor import SystemMonitor
from wrn_core.engine.optim import build_optimizer, lr_factor
from wrn_core.engine.outcome import Diverged, ending_for
from wrn_core.engine.reporter import ProgressHook, Reporter
from wrn_core.engine.step import autocast, train_step
from wrn_core.model import build_model, count_parameters
from wrn_core.store import Run
from wrn_core.store.lock import ROLE_TRAINING
from wrn_core.store import records
from wrn_core.store.records import (
    COMPILING,
    DONE,
    EVALUATING,
    FINISHED,
    LOADING,
    RUNNING,
    STOPPED,
    TRAINING,
)


def evaluate(model: torch.nn.Module, loader: DeviceLoader, device: torch.device, dist: Dist = Dist()) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader (each rank's shard, summed over ranks); one host sync."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    with torch.no_grad(), autocast(device):
        for images, labels in loader.epoch(0):
            logits = model(images)
            loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
            correct += (logits.argmax(dim=1) == labels).sum()
            count += labels.shape[0]
    if dist.enabled:
        totals = distributed.all_sum(torch.stack([loss_sum, correct.double(), torch.tensor(float(count), device=device, dtype=torch.float64)]), dist)
        loss_total, correct_total, images = totals.tolist()
    else:
        (loss_total, correct_total), images = torch.stack([loss_sum, correct.double()]).tolist(), float(count)
    return loss_total / max(1.0, images), correct_total / max(1.0, images)


@dataclass
class Session:
    """Everything one training session works with, built by setup()."""

    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module  # what trains: the model, wrapped in DDP under torchrun, compiled with config.compile
    evaluator: torch.nn.Module  # what evaluates: the same without compiling (another batch shape is another graph)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    params: int
    monitor: SystemMonitor
    dist: Dist
    checkpoints: CheckpointWriter | None = None  # set by setup(): writes checkpoints off the loop's thread
    recent_rate: float | None = None  # training images/s, smoothed over logging intervals (Reporter.rate)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])



def setup(run: Run, resume: bool, reporter: Reporter, dist: Dist) -> tuple[Session, Position]:
    """Config, data, model, optimizer, schedule and loaders; on resume, the checkpointed state."""
    config = run.read_config()
    device = distributed.device_for(config.device, dist)
    checkpoint = run.load_checkpoint() if resume and run.has_checkpoint() else None
    torch.manual_seed(config.seed)
    data = load_dataset(config, progress=_decoding_status(run, config))
    config = _record_what_the_run_found(run, config, data, dist)

    model = build_model(config.model)
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
    train_loader, test_loader = _loaders(config, data, device, dist, channels_last)
    steps_per_epoch = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))
    evaluator: torch.nn.Module = model
    if dist.enabled:
        evaluator = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(evaluator) if config.compile else evaluator
    session = Session(config, device, model, forward, evaluator, optimizer, scheduler, train_loader, test_loader, params,
                      SystemMonitor(device), dist, checkpoints=CheckpointWriter(run))

    position = _restore(run, session, checkpoint) if checkpoint is not None else Position()
    if resume and (checkpoint is not None or _has_points(run)):
        # Points recorded after the checkpoint are superseded; readers drop them (the file is never rewritten).
        run.append_metrics([records.resume_record(
            from_step=position.step, from_epoch=position.epoch + position.batch_in_epoch / steps_per_epoch,
            time=position.train_seconds, wall_time=time.time(), epochs=config.epochs,
        )])
    if data.skipped:
        shown = ", ".join(data.skipped[:3]) + (", ..." if len(data.skipped) > 3 else "")
        notice = f"skipped {len(data.skipped)} unreadable image{'s' if len(data.skipped) != 1 else ''} ({shown})"
        run.append_metrics([records.event_record("data", notice, position.step, position.epoch, position.train_seconds,
                                                 skipped=len(data.skipped))])
        reporter.send(session, position, LOADING, notice=notice)
    return session, position


def _decoding_status(run: Run, config: TrainConfig, every_s: float = 1.0):
    """A progress callback for an image folder's first decoding: the status says how far it has got
    ('decoding 12,000 of 60,000 images from /data'), at most once a second."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done < total:
            return
        last[0] = now
        try:
            run.write_status(message=f"loading data: decoding {done:,} of {total:,} images from {config.data_dir}")
        except OSError:
            pass  # a status line; the loading itself reports real trouble

    return progress


def _record_what_the_run_found(run: Run, config: TrainConfig, data: Any, dist: Dist) -> TrainConfig:
    """The dataset decides the number of classes and input channels, and the launcher the number of
    processes; record them so the stored config stays enough to rerun."""
    model_config = config.model
    if model_config.num_classes != data.num_classes or model_config.in_channels != data.image_shape[0]:
        model_config = dataclasses.replace(model_config, num_classes=data.num_classes, in_channels=data.image_shape[0])
        config = config.replace(model=model_config)
    if config.world_size != dist.world_size:
        config = config.replace(world_size=dist.world_size)
    if config != run.read_config():
        run.write_config(config)
    return config


def _loaders(config: TrainConfig, data: Any, device: torch.device, dist: Dist,
             channels_last: bool) -> tuple[DeviceLoader, DeviceLoader]:
    """The whole dataset resident on the device as uint8; augmentation runs there too. Under DDP every
    rank draws the same epoch plan and takes its own part of each global batch."""
    shard = (dist.rank, dist.world_size)
    train_loader = DeviceLoader(
        data.train_images.to(device), data.train_labels.to(device), config.batch_size, data.mean, data.std,
        train=True, augment=config.augment, seed=config.seed, channels_last=channels_last, shard=shard,
    )
    test_loader = DeviceLoader(
        data.test_images.to(device), data.test_labels.to(device), config.eval_batch_size, data.mean, data.std,
        train=False, augment=False, channels_last=channels_last, shard=shard,
    )
    if len(train_loader) == 0:
        raise ConfigError(
            f"batch size {config.batch_size} is larger than the {len(data.train_labels)} training images; use a smaller batch"
        )
    train_loader.local_batch_size  # noqa: B018 - raises DataError when the batch does not divide over the ranks
    return train_loader, test_loader


def _restore(run: Run, session: Session, checkpoint: dict[str, Any]) -> Position:
    """Load the checkpointed model, optimizer, scheduler and RNG states into the session; returns its position."""
    config, dist, device = session.config, session.dist, session.device
    session.model.load_state_dict(checkpoint["model"])
    session.optimizer.load_state_dict(checkpoint["optimizer"])
    session.scheduler.load_state_dict(checkpoint["scheduler"])
    position = Position.from_checkpoint(checkpoint)
    rng_ranks = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
    if len(rng_ranks) == dist.world_size:
        set_rng_state(rng_ranks[dist.rank], device)
    else:
        # Another world size: the data order is the same (it does not depend on the ranks), the
        # dropout masks are not.
        torch.manual_seed(config.seed + 7919 * dist.rank + position.step)
        message = (f"resumed on {dist.world_size} process(es), the checkpoint was written by {len(rng_ranks)}: "
                   f"same data order from step {position.step}, new dropout masks")
        run.append_metrics([records.event_record("world-size", message, position.step, position.epoch, position.train_seconds)])
    # The schedule decides the lr from the position, so an extended target never jumps it.
    factor = lr_factor(config, position.step, session.steps_per_epoch)
    for group, base in zip(session.optimizer.param_groups, session.scheduler.base_lrs):
        group["lr"] = base * factor
    session.scheduler._last_lr = [group["lr"] for group in session.optimizer.param_groups]  # what get_last_lr() reports
    return position


def record_system(run: Run, session: Session, position: Position) -> None:
    """Append a `system` record: process CPU and memory, CUDA memory, GPU load (see engine.monitor)."""
    run.append_metrics([records.system_record(
        step=position.step, epoch=position.epoch + position.batch_in_epoch / session.steps_per_epoch,
        time=position.train_seconds, wall_time=time.time(), **session.monitor.sample(),
    )])


def _has_points(run: Run) -> bool:
    """Whether metrics.jsonl holds any training point (a queued run's first start has none to supersede)."""
    return any(r.get("kind") in (records.STEP, records.EPOCH) for r in run.read_metrics())


def train_epoch(run: Run, session: Session, position: Position, stop_event: threading.Event, report: Reporter) -> bool:
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
    batches = session.train_loader.epoch(position.epoch, start_batch=position.batch_in_epoch)
    if position.epoch + 1 < config.epochs:
        session.train_loader.prefetch(position.epoch + 1)  # drawn while this epoch trains
    for images, labels in batches:
        if not dist.enabled and stop_event.is_set():
            position.train_seconds += time.perf_counter() - interval_start
            position.fold(interval_loss.item(), float(interval_correct.item()), interval_images)
            return False
        first_step_start = time.perf_counter() if position.step == 0 else None
        loss, logits = train_step(session.forward, optimizer, images, labels, device, config.label_smoothing)
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
            run.append_metrics([records.event_record(
                "compile", f"torch.compile warm-up and first step took {seconds:.1f} s", position.step, position.epoch,
                position.train_seconds + seconds, seconds)])
        if position.step % config.log_every != 0 and position.batch_in_epoch != steps_per_epoch:
            continue
        if dist.is_main and not stop_event.is_set() and run.stop_requested():
            stop_event.set()  # a stop asked for in the run directory (another process, maybe another machine)
        loss_sum, correct, images_total, first_bad, stop_asked = _interval_totals(
            interval_loss, interval_correct, bad_step, interval_images, stop_event.is_set(), dist)
        if first_bad > 0:
            raise Diverged(int(first_bad))
        now = time.perf_counter()
        seconds = now - interval_start
        position.train_seconds += seconds
        interval_start = now
        loss_value, acc_value = loss_sum / images_total, correct / images_total
        session.recent_rate = report.rate.add(images_total, seconds)  # smoothed; evaluation never enters it
        run.append_metrics([records.step_record(
            step=position.step, epoch=position.epoch + position.batch_in_epoch / steps_per_epoch,
            images_seen=position.images_seen, time=position.train_seconds, train_loss=loss_value,
            train_acc=acc_value, lr=session.current_lr,
        )])
        position.fold(loss_sum, correct, int(images_total))
        interval_loss.zero_()
        interval_correct.zero_()
        interval_images = 0
        if session.monitor.due():
            record_system(run, session, position)
        if session.checkpoints is not None:
            session.checkpoints.raise_if_failed()
        report.send(session, position, TRAINING, loss_value, acc_value, session.recent_rate)
        if dist.enabled and stop_asked > 0 and position.batch_in_epoch < steps_per_epoch:
            return False
    position.train_seconds += time.perf_counter() - interval_start
    return True


def _interval_totals(loss: torch.Tensor, correct: torch.Tensor, bad_step: torch.Tensor, images: int, stop: bool,
                     dist: Dist) -> tuple[float, float, float, float, float]:
    """The logging point's one host sync: (loss sum, correct, images, first bad step, stop asked) over every rank.

    In one process the image count and the stop request are host values already, so no tensor is
    made from them (each would be a copy to the device); ranks sum and max them in one collective each.
    """
    if not dist.enabled:
        loss_sum, correct_sum, first_bad = torch.stack([loss, correct.double(), bad_step.double()]).tolist()
        return loss_sum, correct_sum, float(images), first_bad, float(stop)
    device = loss.device
    sums = distributed.all_sum(torch.stack([
        loss, correct.double(), torch.tensor(float(images), device=device, dtype=torch.float64),
    ]), dist)
    flags = distributed.all_max(torch.stack([
        bad_step.double(), torch.tensor(float(stop), device=device, dtype=torch.float64),
    ]), dist)
    loss_sum, correct_sum, images_total, first_bad, stop_asked = torch.cat([sums, flags]).tolist()
    return loss_sum, correct_sum, images_total, first_bad, stop_asked


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


def finish_epoch(run: Run, session: Session, position: Position, epoch_start: float, report: Reporter) -> None:
    """Evaluate, hand the checkpoint to its writer, record the epoch and update the status.

    The epoch record says how long this boundary kept training waiting (`boundary_s`, evaluation
    excluded) and how much of that was waiting for the previous checkpoint (`checkpoint_wait_s`).
    """
    config, device = session.config, session.device
    boundary_start = time.perf_counter()
    rate = session.recent_rate
    train_phase_seconds = boundary_start - epoch_start
    report.send(session, position, EVALUATING, rate=rate)
    test_loss, test_acc = evaluate(session.evaluator, session.test_loader, device, session.dist)
    eval_seconds = time.perf_counter() - boundary_start
    position.train_seconds += eval_seconds
    if not math.isfinite(test_loss):
        raise Diverged(position.step)
    trained = position.epoch_images
    images = max(1, trained)
    train_loss, train_acc = position.epoch_loss / images, position.epoch_correct / images
    checks = _data_parallel_checks(session, position.epoch)
    position.epoch += 1
    position.batch_in_epoch = 0
    position.best_test_acc = test_acc if position.best_test_acc is None else max(position.best_test_acc, test_acc)
    position.last_test_acc = test_acc
    position.epoch_loss, position.epoch_correct, position.epoch_images = 0.0, 0.0, 0
    waited = _checkpoint(run, session, position, durable=position.epoch >= config.epochs)
    run.append_metrics([records.epoch_record(
        epoch=position.epoch, step=position.step, images_seen=position.images_seen, time=position.train_seconds,
        train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc, lr=session.current_lr,
        epoch_seconds=time.perf_counter() - epoch_start,
        images_per_s=trained / train_phase_seconds if train_phase_seconds > 0 else None,
        peak_mem_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        boundary_s=time.perf_counter() - boundary_start - eval_seconds, checkpoint_wait_s=waited,
        **checks,
    )])
    record_system(run, session, position)  # at least one reading per epoch, however short
    run.write_status(
        RUNNING, f"epoch {position.epoch}/{config.epochs}: test accuracy {test_acc:.1%}", epoch=position.epoch,
        step=position.step, images_seen=position.images_seen, train_seconds=position.train_seconds,
        best_test_acc=position.best_test_acc, final_test_acc=test_acc,
    )
    report.send(session, position, TRAINING, rate=rate)


def _checkpoint(run: Run, session: Session, position: Position, durable: bool = False) -> float:
    """Snapshot the state and hand it to the checkpoint writer; returns the seconds spent waiting for disk.

    With durable, wait until it is written: the last epoch's checkpoint is on disk before the status
    says the run has finished. Every rank takes part (the RNG states are gathered); rank 0 writes.
    """
    state = position.to_checkpoint(session)
    if not session.dist.is_main:
        return 0.0
    assert session.checkpoints is not None
    waited = session.checkpoints.submit(snapshot(state, session.checkpoints.pinned))
    if durable:
        waited += session.checkpoints.wait()
    return waited


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
    run.acquire(ROLE_TRAINING)
    if dist.is_main:
        run.clear_stop_request()  # a request left from before this start was for a trainer that has gone
    report = Reporter(run, on_progress if dist.is_main else None)
    session: Session | None = None
    position = Position()
    try:
        # Says what loads (a folder: how many images, decoded or cached): the status the page shows meanwhile.
        run.write_status(RUNNING, _loading_message(run), started_at=time.time(), pid=os.getpid(), host=socket.gethostname(),
                         executor=_executor(), finished_at=None, error_kind=None)
        report.send(None, position, LOADING)
        session, position = setup(run, resume, report, dist)
        config = session.config
        run.write_status(
            RUNNING, f"training on {session.device.type}" + (f" × {dist.world_size} processes" if dist.enabled else ""),
            params=session.params, device=session.device.type, world_size=dist.world_size,
            epochs=config.epochs, model_name=config.model.name, dataset=config.dataset, optimizer=config.optimizer,
            epoch=position.epoch, step=position.step, images_seen=position.images_seen,
        )
        record_system(run, session, position)
        if dist.is_main and run.stop_requested():
            stop_event.set()  # asked for while the data loaded: stop at the first batch
        report.send(session, position, COMPILING if config.compile and position.step == 0 else TRAINING)
        while position.epoch < config.epochs:
            epoch_start = time.perf_counter()
            if not train_epoch(run, session, position, stop_event, report):
                return _stop(run, session, position, report)
            finish_epoch(run, session, position, epoch_start, report)
        run.write_status(FINISHED, f"finished {config.epochs} epochs: best test accuracy {position.best_test_acc:.1%}",
                         finished_at=time.time(), train_seconds=position.train_seconds)
        report.send(session, position, DONE)
        return FINISHED
    except Exception as exc:  # noqa: BLE001 - any failure must end as a recorded status
        status, message, error_kind = ending_for(exc, run, session, position, dist)
        if session is not None and session.checkpoints is not None:
            # Before _end removes temporary files: a checkpoint still being written would lose its file.
            _finish_writing(session.checkpoints)
        return _end(run, status, message, position, error_kind)
    finally:
        if session is not None and session.checkpoints is not None:
            _finish_writing(session.checkpoints)
        session = None
        _release_memory()
        run.remove_temporary_files()
        run.release()


def _executor() -> str:
    """What started this trainer, as its launcher said in the environment (local unless a known executor)."""
    named = os.environ.get(records.EXECUTOR_ENV, "")
    return named if named in records.EXECUTORS else records.EXECUTOR_LOCAL


def _loading_message(run: Run) -> str:
    """'loading data: <what>' for the status while the data loads; plain 'loading data' if the config is unreadable
    (setup then reports that)."""
    try:
        return loading_message(run.read_config())
    except Exception:  # noqa: BLE001 - a status line must never stop the run from reporting its real error
        return "loading data"


def _stop(run: Run, session: Session, position: Position, report: Reporter) -> str:
    """A stop asked for mid-epoch: checkpoint the exact position (on disk before the status), then record `stopped`."""
    _checkpoint(run, session, position, durable=True)
    epoch_at = position.epoch + position.batch_in_epoch / session.steps_per_epoch
    run.write_status(STOPPED, f"stopped at epoch {epoch_at:.2f} (step {position.step}); resume to continue",
                     step=position.step, images_seen=position.images_seen,
                     train_seconds=position.train_seconds, finished_at=time.time())
    run.clear_stop_request()  # answered: a later resume must not stop at once
    report.send(session, position, DONE)
    return STOPPED


def _end(run: Run, status: str, message: str, position: Position, error_kind: str) -> str:
    run.remove_temporary_files()  # a write cut short may have left one; it also frees the space it took
    try:
        run.write_status(status, message, finished_at=time.time(), step=position.step, error_kind=error_kind)
    except OSError:
        # Still no room for status.json: once the lock is released, readers find the run interrupted.
        pass
    return status


def _finish_writing(checkpoints: CheckpointWriter) -> None:
    """Let a checkpoint still being written finish while this process holds the lock; its error, if any,
    came after the run had already ended another way."""
    try:
        checkpoints.wait()
    except Exception:  # noqa: BLE001 - the run's status already says how it ended
        pass


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
