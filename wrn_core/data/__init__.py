"""Datasets as uint8 (N, C, H, W) tensors plus int64 labels, and the device-side batch loader.

Sources: `synthetic` (built in), `cifar` (torchvision CIFAR-10/100), `folder` (an image folder);
`loader.DeviceLoader` batches and augments on the training device.
"""

from __future__ import annotations

from pathlib import Path

from wrn_core.config import TrainConfig
from wrn_core.errors import DataError
from wrn_core.data.base import (
    DEFAULT_DATA_DIR,
    Dataset,
    apply_subsets,
    balanced_subset,
    channel_stats,
    check_subset_sizes,
)
from wrn_core.data.cifar import CIFAR_SPLIT_SIZES, cifar_files_present, download_cifar, load_cifar
from wrn_core.data.folder import IMAGE_EXTENSIONS, DecodeProgress, folder_cache_path, load_image_folder, scan_folder
from wrn_core.data.loader import DeviceLoader
from wrn_core.data.synthetic import SYNTHETIC_CLASSES, make_synthetic

__all__ = [
    "CIFAR_SPLIT_SIZES",
    "DEFAULT_DATA_DIR",
    "IMAGE_EXTENSIONS",
    "SYNTHETIC_CLASSES",
    "Dataset",
    "DeviceLoader",
    "apply_subsets",
    "balanced_subset",
    "channel_stats",
    "check_available",
    "cifar_files_present",
    "download_cifar",
    "folder_cache_path",
    "load_cifar",
    "load_dataset",
    "loading_message",
    "load_image_folder",
    "make_synthetic",
    "scan_folder",
]


def check_available(config: TrainConfig) -> None:
    """Every data check that needs no decoding: the files are there, the layout is right, subsets fit.

    Raises DataError with one line; run before a run directory is created.
    """
    if config.dataset == "synthetic":
        sizes = (config.synthetic_train, config.synthetic_test)
    elif config.dataset in ("cifar10", "cifar100"):
        from wrn_core.data.cifar import _cifar_missing_message

        data_dir = Path(config.data_dir or DEFAULT_DATA_DIR)
        if not cifar_files_present(config.dataset, data_dir):
            raise DataError(_cifar_missing_message(config.dataset, data_dir))
        sizes = CIFAR_SPLIT_SIZES
    elif config.dataset == "folder":
        if not config.data_dir:
            raise DataError("dataset 'folder' needs a data directory (--data-dir)")
        sizes = scan_folder(config.data_dir).split_sizes
    else:
        raise DataError(f"unknown dataset {config.dataset!r}; choose synthetic, cifar10, cifar100 or folder")
    check_subset_sizes(config.dataset, sizes[0], sizes[1], config.subset_train, config.subset_test)


def loading_message(config: TrainConfig) -> str:
    """What a run is loading, for its status while it loads: 'loading data: image folder /d (12,000 images to
    decode; cached for next time)'. Reads no image (a folder is only listed); never raises."""
    if config.dataset == "synthetic":
        return f"loading data: {config.synthetic_train:,} + {config.synthetic_test:,} synthetic images"
    if config.dataset in ("cifar10", "cifar100"):
        train, test = CIFAR_SPLIT_SIZES
        return f"loading data: {config.dataset.upper().replace('CIFAR', 'CIFAR-')} ({train:,} + {test:,} images)"
    try:
        train, test = scan_folder(config.data_dir or "").split_sizes
        cache = folder_cache_path(config.data_dir or "", image_size=config.image_size)
    except (DataError, OSError):
        return "loading data: image folder"
    cached = cache is not None and cache.exists()
    what = "from its decoded cache" if cached else "to decode; cached for next time"
    return f"loading data: image folder {config.data_dir} ({train + test:,} images {what})"


def load_dataset(config: TrainConfig, progress: DecodeProgress | None = None) -> Dataset:
    """The dataset a run asks for, with its class-balanced subsets applied. Never downloads.

    progress(done, total) hears how far an image folder's first decoding has got.
    """
    if config.dataset == "synthetic":
        ds = make_synthetic(config.synthetic_train, config.synthetic_test, seed=config.seed)
    elif config.dataset in ("cifar10", "cifar100"):
        ds = load_cifar(config.dataset, config.data_dir or DEFAULT_DATA_DIR)
    elif config.dataset == "folder":
        if not config.data_dir:
            raise DataError("dataset 'folder' needs a data directory (--data-dir)")
        ds = load_image_folder(config.data_dir, image_size=config.image_size, progress=progress)
    else:
        raise DataError(f"unknown dataset {config.dataset!r}; choose synthetic, cifar10, cifar100 or folder")
    return apply_subsets(ds, config.subset_train, config.subset_test, config.seed)
