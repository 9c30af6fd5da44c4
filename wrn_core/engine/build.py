"""Building a training session from a run directory: config, data, model, optimizer, schedule, loaders, and on
resume the checkpointed state."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import torch

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import DeviceLoader, load_dataset
from wrn_core.engine import distributed
from wrn_core.engine.checkpoint import CheckpointWriter
from wrn_core.engine.distributed import Dist
from wrn_core.engine.monitor import SystemMonitor
from wrn_core.engine.optim import build_optimizer, lr_factor
from wrn_core.engine.reporter import Reporter
from wrn_core.engine.session import RANK_SEED_STRIDE, Position, Session, restore
from wrn_core.model import build_model, count_parameters
from wrn_core.store import Run, records
from wrn_core.store.records import LOADING, has_points


def build_session(run: Run, resume: bool, reporter: Reporter, dist: Dist) -> tuple[Session, Position]:
    """Config, data, model, optimizer, schedule and loaders; on resume, the checkpointed state."""
    config = run.read_config()
    device = distributed.device_for(config.device, dist)
    checkpoint = run.load_checkpoint() if resume and run.has_checkpoint() else None
    torch.manual_seed(config.seed)
    data = load_dataset(config, progress=_decoding_status(run, config))
    config = _record_what_the_run_found(run, config, data, dist)
    model = _model(config, device, dist)
    optimizer = build_optimizer(model, config, device)
    train_loader, test_loader = _loaders(config, data, device, dist, channels_last=_channels_last(device))
    steps_per_epoch = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))
    forward, evaluator = _wrapped(model, config, device, dist)
    session = Session(config, device, model, forward, evaluator, optimizer, scheduler, train_loader, test_loader,
                      count_parameters(model), SystemMonitor(device), dist, checkpoints=CheckpointWriter(run))

    position = Position()
    if checkpoint is not None:
        position, world_size_change = restore(session, checkpoint)
        if world_size_change:
            run.append_metrics([records.event_record("world-size", world_size_change, position.step, position.epoch,
                                                     position.train_seconds)])
    if resume and (checkpoint is not None or has_points(run.read_metrics())):  # a queued run's first start has none
        # Points recorded after the checkpoint are superseded; readers drop them (the file is never rewritten).
        run.append_metrics([records.resume_record(
            from_step=position.step, from_epoch=position.epoch_progress(steps_per_epoch),
            time=position.train_seconds, wall_time=time.time(), epochs=config.epochs,
        )])
    if data.skipped:
        shown = ", ".join(data.skipped[:3]) + (", ..." if len(data.skipped) > 3 else "")
        notice = f"skipped {len(data.skipped)} unreadable image{'s' if len(data.skipped) != 1 else ''} ({shown})"
        run.append_metrics([records.event_record("data", notice, position.step, position.epoch, position.train_seconds,
                                                 skipped=len(data.skipped))])
        reporter.send(session.plan, position, LOADING, notice=notice)
    return session, position


def _channels_last(device: torch.device) -> bool:
    """channels_last (NHWC) suits cuDNN's tensor-core kernels and oneDNN's CPU convolutions
    (measured here: WRN-10-2 training steps ~1.3x faster on the CPU than NCHW)."""
    return device.type in ("cuda", "cpu")


def _model(config: TrainConfig, device: torch.device, dist: Dist) -> torch.nn.Module:
    """The model on the device, in the memory format the device runs fastest, with SyncBatchNorm if asked for."""
    model = build_model(config.model)
    if dist.rank > 0:
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * dist.rank)  # each rank its own dropout masks (weights come from rank 0)
    if config.sync_bn and dist.enabled:
        if device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA GPUs: torch's SyncBatchNorm runs only there")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return model.to(device, memory_format=torch.channels_last if _channels_last(device) else torch.contiguous_format)


def _wrapped(model: torch.nn.Module, config: TrainConfig, device: torch.device,
             dist: Dist) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(what trains, what evaluates): the model wrapped in DDP under torchrun, and what trains compiled with
    config.compile (evaluation runs uncompiled: another batch shape is another graph)."""
    evaluator: torch.nn.Module = model
    if dist.enabled:
        evaluator = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    forward = torch.compile(evaluator) if config.compile else evaluator
    return forward, evaluator


def _decoding_status(run: Run, config: TrainConfig, every_s: float = 1.0) -> Callable[[int, int], None]:
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
