"""The conventional PyTorch data path the benchmarks compare against: ImageFolder, PIL transforms, DataLoader.

One definition, used by bench/throughput.py (speed) and bench/accuracy_parity.py (accuracy), of
what tutorials write: torchvision `ImageFolder` over one split of a folder, the PIL transforms
RandomCrop(size, padding=4, padding_mode="reflect") + RandomHorizontalFlip (training only), then
ToTensor + Normalize, and a `DataLoader` with worker processes (pin_memory on CUDA). Reflect
padding because the engine pads that way (wrn_core.data.DeviceLoader). Imports only torch,
torchvision and wrn_core.data, so it runs where streamlit, plotly, torchinfo and tqdm are absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Subset

from wrn_core.data import DeviceLoader, balanced_subset
from wrn_core.data.base import TEST_SUBSET_SEED_OFFSET  # the engine's test subsets draw from seed + this

PAD = DeviceLoader.PAD  # pixels of reflect padding before the random crop, as in the engine


def conventional_workers(device: torch.device) -> int:
    """DataLoader worker processes: min(8, CPUs) on CUDA, min(2, CPUs) on the CPU (the trainer needs the rest)."""
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cpus)
    return min(2, cpus)


def split_dir(root: Path, split: str) -> Path:
    """root/train for "train"; for "test", root/test else root/val (the engine's order of preference)."""
    if split == "train":
        return root / "train"
    if split != "test":
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    for name in ("test", "val"):
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root} has no test/ or val/ folder")


def conventional_transform(mean: Sequence[float], std: Sequence[float], augment: bool, size: int = 32):
    """The PIL pipeline: [reflect-pad-4 random crop, horizontal flip,] ToTensor, Normalize(mean, std)."""
    from torchvision import transforms

    steps = []
    if augment:
        steps += [transforms.RandomCrop(size, padding=PAD, padding_mode="reflect"), transforms.RandomHorizontalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(tuple(mean), tuple(std))]
    return transforms.Compose(steps)


def conventional_loader(
    root: Path,
    split: str,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
    *,
    subset: int | None = None,
    seed: int = 0,
    num_workers: int | None = None,
    size: int = 32,
) -> DataLoader:
    """A DataLoader over root/<split> as tutorials build it; yields CPU (float32 (B, C, H, W) NCHW, int64 (B,)).

    split "train": augmented, shuffled (by a generator seeded from `seed`), drop_last=True;
    split "test": no augmentation, in file order, every image. `subset` takes the class-balanced
    subset the engine takes for the same seed (wrn_core.data.balanced_subset over the sorted file
    list; the test split's seed is offset as the engine offsets it). The loader's dataset is a
    Subset: `.indices` into the ImageFolder, whose `.samples` are (path, class index) in file order.
    """
    from torchvision import datasets

    train = split == "train"
    folder = datasets.ImageFolder(str(split_dir(root, split)), transform=conventional_transform(mean, std, train, size))
    if split == "test":
        # ImageFolder numbers the classes it finds in this split; the engine numbers the train split's.
        train_classes = sorted(entry.name for entry in os.scandir(root / "train") if entry.is_dir())
        if folder.classes != train_classes:
            raise ValueError(f"test classes {folder.classes} differ from train classes {train_classes} in {root}")
    if subset is None:
        indices = list(range(len(folder)))
    else:
        subset_seed = seed if train else seed + TEST_SUBSET_SEED_OFFSET
        indices = balanced_subset(torch.tensor(folder.targets), subset, subset_seed).tolist()
    data = Subset(folder, indices)
    if train:
        # The engine makes one batch of everything when there are fewer images than a batch.
        batch_size = min(batch_size, len(data))
    workers = conventional_workers(device) if num_workers is None else num_workers
    generator = torch.Generator().manual_seed(int(seed)) if train else None
    return DataLoader(data, batch_size=batch_size, shuffle=train, num_workers=workers, pin_memory=device.type == "cuda",
                      drop_last=train, generator=generator)
