"""One training step, one evaluation pass, and the precision they run in: the code the loop, the sweep's timing probe
and the inspection of a checkpoint share."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrn_core.data import DeviceLoader
from wrn_core.engine import distributed
from wrn_core.engine.distributed import Dist


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


def loss_and_accuracy(model: torch.nn.Module, loader: DeviceLoader, device: torch.device, dist: Dist = Dist()) -> tuple[float, float]:
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
