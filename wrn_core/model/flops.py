"""Training compute of a WRN in closed form: multiply-accumulates per image and training FLOPs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

from wrn_core.config import TrainConfig, WRNConfig

# Training FLOPs per multiply-accumulate of the forward pass: 2 FLOPs per MAC (a multiply and
# an add) x 3 passes' worth of products (the forward once, the backward twice: one product for
# the input gradient and one for the weight gradient). The usual "6 x MACs x images" estimate;
# BatchNorm, ReLU, pooling and the optimizer update are left out (well under 1% for a WRN).
TRAIN_FLOPS_PER_MAC = 6
FLOPS_CONVENTION = (
    "training FLOPs = 6 × MACs per image × images seen "
    "(2 FLOPs per multiply-accumulate; forward 1×, backward 2×; BatchNorm, ReLU and the update left out)"
)
# Input side of the built-in datasets, pixels (synthetic shapes and CIFAR are 32×32).
NATIVE_IMAGE_SIZE = {"synthetic": 32, "cifar10": 32, "cifar100": 32}


def _conv_out(size: int, stride: int) -> int:
    """Output side of a 3x3/padding-1 or 1x1/padding-0 conv: floor((size - 1) / stride) + 1."""
    return (size - 1) // stride + 1


@functools.lru_cache(maxsize=256)
def macs_per_image(config: WRNConfig, height: int = 32, width: int | None = None) -> int:
    """Multiply-accumulates of one image's forward pass, counted in closed form.

    Convs: weight elements x output positions (no biases in a WRN); the linear layer: weight +
    bias elements. This is how torchinfo and bench.common.count_macs count them; torchinfo's
    table also adds BatchNorm's 2 x channels, which is left out here. Cached per (config, size).
    """
    width = height if width is None else width
    stem, *group_widths = config.widths
    h, w = height, width
    macs = 9 * config.in_channels * stem * h * w  # 3x3 stem conv, stride 1
    channels = stem
    for group_width, group_stride in zip(group_widths, (1, 2, 2)):
        for index in range(config.blocks):
            stride = group_stride if index == 0 else 1
            h, w = _conv_out(h, stride), _conv_out(w, stride)
            macs += 9 * channels * group_width * h * w  # conv1 (carries the stride)
            macs += 9 * group_width * group_width * h * w  # conv2
            if channels != group_width or stride != 1:
                macs += channels * group_width * h * w  # 1x1 projection shortcut
            channels = group_width
    macs += (channels + 1) * config.num_classes  # linear: weights + bias after global pooling
    return macs


def _model_from(config: TrainConfig | Mapping[str, Any]) -> tuple[WRNConfig | None, str, int | None, str | None]:
    """(model, dataset, image_size, data_dir) from a TrainConfig or its config.json dict."""
    if isinstance(config, TrainConfig):
        return config.model, config.dataset, config.image_size, config.data_dir
    model = config.get("model") if isinstance(config, Mapping) else None
    if not isinstance(model, Mapping):
        return None, "", None, None
    try:
        # Only the fields that shape the compute, so a config.json with newer fields still works.
        wrn = WRNConfig(
            depth=int(model.get("depth")),
            widen_factor=int(model.get("widen_factor")),
            num_classes=int(model.get("num_classes", 10)),
            in_channels=int(model.get("in_channels", 3)),
        )
    except (TypeError, ValueError):
        return None, "", None, None
    image_size = config.get("image_size")
    return wrn, str(config.get("dataset", "")), image_size if isinstance(image_size, int) else None, config.get("data_dir")


@functools.lru_cache(maxsize=64)
def _folder_image_size(data_dir: str) -> tuple[int, int] | None:
    """(height, width) of the first training image of an image folder, read from its header only.

    load_image_folder needs every image to share one size when no image size is set, so the
    first one stands for all. None when the folder or the image cannot be read.
    """
    from PIL import Image

    from wrn_core.data import IMAGE_EXTENSIONS

    train = Path(data_dir).expanduser() / "train"
    try:
        for class_dir in sorted(p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(class_dir.rglob("*")):
                if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file():
                    with Image.open(path) as image:
                        width, height = image.size
                    return int(height), int(width)
    except OSError:
        return None
    return None


def input_size(config: TrainConfig | Mapping[str, Any]) -> tuple[int, int] | None:
    """(height, width) of a run's input images, or None when it cannot be known without the data."""
    _, dataset, image_size, data_dir = _model_from(config)
    if image_size is not None:
        return image_size, image_size
    if dataset in NATIVE_IMAGE_SIZE:
        return NATIVE_IMAGE_SIZE[dataset], NATIVE_IMAGE_SIZE[dataset]
    if dataset == "folder" and data_dir:
        return _folder_image_size(str(data_dir))
    return None


def training_flops_per_image(config: TrainConfig | Mapping[str, Any]) -> float | None:
    """6 x forward MACs per image for a run's model and input size; None when the size is unknown."""
    model, *_ = _model_from(config)
    size = input_size(config)
    if model is None or size is None:
        return None
    return float(TRAIN_FLOPS_PER_MAC * macs_per_image(model, size[0], size[1]))
