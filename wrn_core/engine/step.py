"""One training step, one evaluation pass, and the precision they run in: the code the loop, the sweep's timing probe
and the inspection of a checkpoint share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from wrn_core.data import DeviceLoader
from wrn_core.engine import distributed
from wrn_core.engine.distributed import Dist
from wrn_core.engine.width import WidthMeter


def autocast(device: torch.device):
    """bf16 autocast on CUDA only: CPU bf16 is slower than fp32 on most CPUs and changes results."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_step(forward: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               device: torch.device, label_smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward and an optimizer step on one batch; returns (loss, logits), neither synchronised.

    images: (B, C, H, W) normalised floats on `device`; labels: (B,) int64. The scheduler is the caller's.
    """
    with autocast(device):
        logits = forward(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits


@dataclass(frozen=True)
class Evaluation:
    """One evaluation pass over a loader: mean cross-entropy, accuracy, and width use when it was measured."""

    loss: float
    accuracy: float
    images: int  # evaluated, over every rank
    width: list[dict[str, Any]] | None = None  # WidthMeter.rows() over the whole split (every rank), in model order


def evaluation_pass(model: torch.nn.Module, loader: DeviceLoader, device: torch.device, dist: Dist = Dist(),
                    measure_width: bool = False) -> Evaluation:
    """Loss and accuracy over the loader (each rank's shard, summed over ranks), and with measure_width the width use
    of every ReLU, from hooks riding on the same forward passes.

    Everything is summed on the device and read to the host once, after one collective under data-parallel training.
    """
    meter = WidthMeter(getattr(model, "module", model)) if measure_width else None  # the DDP wrapper's module
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count = 0
    try:
        with torch.no_grad(), autocast(device):
            for images, labels in loader.epoch(0):
                logits = model(images)
                loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum").double()
                correct += (logits.argmax(dim=1) == labels).sum()
                count += labels.shape[0]
    finally:
        if meter is not None:
            meter.remove()
    sums = [loss_sum, correct.double()]
    if dist.enabled:
        sums.append(torch.tensor(float(count), device=device, dtype=torch.float64))
    totals = torch.stack(sums)
    if meter is not None:
        totals = torch.cat([totals, meter.totals().to(device)])
    totals = distributed.all_sum(totals, dist).cpu()  # the one host read
    images = float(totals[2]) if dist.enabled else float(count)
    head = 3 if dist.enabled else 2
    width = meter.rows(totals[head:]) if meter is not None else None
    return Evaluation(float(totals[0]) / max(1.0, images), float(totals[1]) / max(1.0, images), int(images), width)


def loss_and_accuracy(model: torch.nn.Module, loader: DeviceLoader, device: torch.device, dist: Dist = Dist()) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader (each rank's shard, summed over ranks); one host sync."""
    evaluation = evaluation_pass(model, loader, device, dist)
    return evaluation.loss, evaluation.accuracy
