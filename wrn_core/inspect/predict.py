"""Ask the model: decode uploaded images (PNG/JPEG -> RGB at the run's size) and give the top classes."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch

from wrn_core.inspect.network import Network

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MB
TOP_K = 5


class UploadError(ValueError):
    """An uploaded file is empty, too large or not an image (one line)."""


def decode_image(data: bytes, size: tuple[int, int], name: str = "upload") -> torch.Tensor:
    """uint8 (3, H, W) from PNG/JPEG bytes, converted to RGB and resized to size=(H, W); UploadError otherwise."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError(f"{name} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise UploadError(f"{name} is {image.format or 'an unknown format'}, not a PNG or JPEG image")
            rgb = image.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"{name} is not a readable PNG or JPEG image") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def top_classes(network: Network, images: torch.Tensor, k: int = TOP_K) -> list[list[tuple[str, float]]]:
    """For uint8 (N, 3, H, W) images, each image's k most probable (class, probability), most probable first."""
    module = network.normalized()
    with torch.no_grad():
        probs = module(images.to(torch.float32) / 255.0).softmax(dim=1)
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[(network.classes[int(c)], float(p)) for p, c in zip(row_p, row_c)]
            for row_p, row_c in zip(top.values, top.indices)]


def ask(network: Network, files: Sequence[tuple[str, bytes]], k: int = TOP_K) -> list[tuple[str, list[tuple[str, float]] | str]]:
    """(name, top-k) per readable upload, (name, one-line error) per unreadable one, in the given order."""
    _, h, w = network.image_shape
    decoded: list[tuple[str, torch.Tensor | str]] = []
    for name, data in files:
        try:
            decoded.append((name, decode_image(data, (h, w), name)))
        except UploadError as exc:
            decoded.append((name, str(exc)))
    good = [image for _, image in decoded if isinstance(image, torch.Tensor)]
    answers = iter(top_classes(network, torch.stack(good), k)) if good else iter(())
    return [(name, next(answers) if isinstance(image, torch.Tensor) else image) for name, image in decoded]
