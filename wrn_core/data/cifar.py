"""CIFAR-10/100 through torchvision: presence checks, loading extracted files, downloading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wrn_core.data.base import DEFAULT_DATA_DIR, Dataset
from wrn_core.errors import DataError, one_line

# Images per split, for checks that run before anything is loaded.
CIFAR_SPLIT_SIZES = (50_000, 10_000)

_CIFAR = {
    # name: (title, torchvision class name, folder, archive, published mean, published std)
    "cifar10": (
        "CIFAR-10",
        "CIFAR10",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "cifar100": (
        "CIFAR-100",
        "CIFAR100",
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


def _cifar_spec(name: str) -> tuple:
    if name not in _CIFAR:
        raise DataError(f"unknown CIFAR dataset {name!r}; choose cifar10 or cifar100")
    return _CIFAR[name]


def _cifar_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, _cifar_spec(name)[1])


def _cifar_expected_files(name: str) -> list[str]:
    cls = _cifar_class(name)
    return [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]


def cifar_files_present(name: str, data_dir: str | Path | None) -> bool:
    """Whether every extracted CIFAR file is in data_dir (existence only; torchvision checks md5 on load)."""
    folder = Path(data_dir or DEFAULT_DATA_DIR) / _cifar_spec(name)[2]
    return all((folder / f).is_file() for f in _cifar_expected_files(name))


def _cifar_missing_message(name: str, data_dir: Path) -> str:
    title, _, folder, archive, _, _ = _cifar_spec(name)
    expected = ", ".join(_cifar_expected_files(name)[:-1])
    if name == "cifar10":
        expected = "data_batch_1..5, test_batch"
    return (
        f"{title} not found in {data_dir}: expected {data_dir / folder}/ ({expected}); "
        f"download it with the dashboard's Download button or "
        f"`python -m wrn_core download {name} --data-dir {data_dir}`, "
        f"or copy {archive} from https://www.cs.toronto.edu/~kriz/cifar.html there"
    )


def load_cifar(name: str, data_dir: str | Path | None = None) -> Dataset:
    """CIFAR-10/100 from already extracted files in data_dir, with the published mean/std."""
    title, _, _, _, mean, std = _cifar_spec(name)
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    if not cifar_files_present(name, data_dir):
        raise DataError(_cifar_missing_message(name, data_dir))
    cls = _cifar_class(name)
    splits = []
    for train in (True, False):
        try:
            dataset = cls(root=str(data_dir), train=train, download=False)
        except (RuntimeError, OSError, ValueError) as exc:
            detail = one_line(exc)
            raise DataError(
                f"{title} files in {data_dir} are corrupted or incomplete ({detail}); "
                f"delete them and download again with `python -m wrn_core download {name} --data-dir {data_dir}`"
            ) from exc
        # .data is uint8 (N, 32, 32, 3) HWC numpy.
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2).contiguous()
        labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
        splits.append((images, labels, list(dataset.classes)))
    (train_images, train_labels, classes), (test_images, test_labels, _) = splits
    return Dataset(
        name=name,
        title=title,
        classes=classes,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=tuple(mean),
        std=tuple(std),
        synthetic=False,
    )


def download_cifar(name: str, data_dir: str | Path | None) -> Path:
    """Download and extract CIFAR-10/100 into data_dir with torchvision; returns data_dir.

    Does nothing when the files are already there. Network or disk failures become a DataError.
    """
    title, _, _, archive, _, _ = _cifar_spec(name)
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    cls = _cifar_class(name)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(root=str(data_dir), train=train, download=True)
    except (OSError, RuntimeError, ValueError) as exc:
        detail = one_line(exc)
        raise DataError(
            f"could not download {title} into {data_dir} ({type(exc).__name__}: {detail}); "
            f"check the internet connection, or copy {archive} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {data_dir} and extract it there"
        ) from exc
    return data_dir
