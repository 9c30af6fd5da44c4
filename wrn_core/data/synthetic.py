"""The built-in offline dataset: procedurally drawn 32×32 shapes, one shape family per class."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from wrn_core.data.base import Dataset, channel_stats
from wrn_core.errors import DataError

SYNTHETIC_CLASSES = [
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "frame",
    "h-stripes",
    "v-stripes",
    "checker",
    "dots",
]


def _shape_mask(family: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bool mask of shape family `family` in local coordinates u, v (object radius = 1, y down).

    Every family is symmetric under a horizontal flip, so flip augmentation never changes the class.
    """
    r2 = u * u + v * v
    box = torch.maximum(u.abs(), v.abs())
    if family == 0:  # disk
        return r2 < 0.85
    if family == 1:  # filled square
        return box < 0.75
    if family == 2:  # triangle pointing up, base at v = 0.6
        return (v < 0.6) & (u.abs() * 1.7 < (v + 0.9))
    if family == 3:  # ring
        return (r2 < 1.0) & (r2 > 0.36)
    if family == 4:  # plus
        return ((u.abs() < 0.28) & (v.abs() < 0.95)) | ((v.abs() < 0.28) & (u.abs() < 0.95))
    if family == 5:  # hollow square frame
        return (box < 0.9) & (box > 0.55)
    if family == 6:  # horizontal stripes in a square patch
        return (box < 0.9) & (torch.sin(v * (math.pi * 2.6)) > 0)
    if family == 7:  # vertical stripes in a square patch
        return (box < 0.9) & (torch.sin(u * (math.pi * 2.6)) > 0)
    if family == 8:  # checkerboard patch
        return (box < 0.9) & (torch.sin(u * (math.pi * 1.8)) * torch.sin(v * (math.pi * 1.8)) > 0)
    # grid of dots in a square patch
    return (box < 0.95) & ((torch.cos(u * (math.pi * 2.5)) + torch.cos(v * (math.pi * 2.5))) > 1.0)


def _synthetic_split(n: int, num_classes: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Exactly balanced labels in a random order.
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]
    # Per-image random draws (all from the one generator, so the split is seed-deterministic).
    centre = (torch.rand(n, 2, generator=generator) * 0.36 + 0.32) * size  # pixels, object stays mostly inside
    radius = (torch.rand(n, generator=generator) * 0.12 + 0.3) * size  # pixels: 9.6 .. 13.4 at 32 px
    angle = (torch.rand(n, generator=generator) - 0.5) * (math.pi / 9)  # +-10 degrees
    aspect = torch.rand(n, generator=generator) * 0.16 + 0.92
    fg = torch.rand(n, 3, generator=generator)
    bg = torch.rand(n, 3, generator=generator)
    # Keep some contrast: where foreground and background luminance are too close, invert foreground.
    lum = torch.tensor([0.299, 0.587, 0.114])
    close = ((fg - bg) @ lum).abs() < 0.3
    fg = torch.where(close[:, None], 1.0 - fg, fg)
    # Smooth, coloured background: 4x4 random field upsampled, plus the base colour.
    field = torch.rand(n, 3, 4, 4, generator=generator) - 0.5
    background = bg[:, :, None, None] + 0.25 * F.interpolate(field, size=(size, size), mode="bilinear", align_corners=False)

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = coords[None, :, None], coords[None, None, :]  # (1, H, 1), (1, 1, W)
    dx = (xs - centre[:, 0, None, None]) / radius[:, None, None]  # (n, 1, W) .. broadcast below
    dy = (ys - centre[:, 1, None, None]) / radius[:, None, None]  # (n, H, 1)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u = (dx * cos + dy * sin) * aspect[:, None, None]  # (n, H, W)
    v = (dy * cos - dx * sin) / aspect[:, None, None]
    mask = torch.zeros(n, size, size, dtype=torch.bool)
    for family in range(num_classes):
        rows = labels == family
        mask[rows] = _shape_mask(family, u[rows], v[rows])
    image = torch.where(mask[:, None], fg[:, :, None, None], background)
    image = image + 0.05 * torch.randn(image.shape, generator=generator)  # pixel noise
    images = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).contiguous()
    return images, labels.to(torch.int64).contiguous()


def make_synthetic(num_train: int, num_test: int, seed: int = 0, num_classes: int = 10, size: int = 32) -> Dataset:
    """The built-in offline dataset: one shape family per class (disk, square, triangle, ring, ...)
    at random position, scale, rotation and colour over a smooth random background, plus pixel noise.

    Bit-identical for the same seed; colour alone does not give the class.
    """
    if not (2 <= num_classes <= len(SYNTHETIC_CLASSES)):
        raise DataError(f"synthetic data has 2 to {len(SYNTHETIC_CLASSES)} classes, got {num_classes}")
    if num_train < 1 or num_test < 1:
        raise DataError(f"synthetic splits need at least 1 image each, got {num_train} train / {num_test} test")
    if size < 8:
        raise DataError(f"synthetic image size must be >= 8 pixels, got {size}")
    generator = torch.Generator().manual_seed(int(seed))
    train_images, train_labels = _synthetic_split(num_train, num_classes, size, generator)
    test_images, test_labels = _synthetic_split(num_test, num_classes, size, generator)
    mean, std = channel_stats(train_images)
    return Dataset(
        name="synthetic",
        title="Synthetic shapes",
        classes=SYNTHETIC_CLASSES[:num_classes],
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=mean,
        std=std,
        synthetic=True,
    )
