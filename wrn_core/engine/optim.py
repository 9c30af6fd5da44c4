"""The optimizer and the learning-rate plan: the schedule over the planned epochs, then each extension in turn."""

from __future__ import annotations

import math

import torch

from wrn_core.config import ConfigError, TrainConfig


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

