"""One training step and the precision it runs in: the code the loop and the sweep's timing probe share."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
