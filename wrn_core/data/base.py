"""The Dataset record shared by every source, its statistics, and class-balanced subsets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from wrn_core.errors import DataError

DEFAULT_DATA_DIR = "./data"


@dataclass(frozen=True)
class Dataset:
    """Both splits of one image classification dataset, held as CPU uint8 tensors."""

    name: str  # synthetic | cifar10 | cifar100 | folder
    title: str  # for UIs: "CIFAR-10", "Synthetic shapes", "Image folder <root name>"
    classes: list[str]
    train_images: torch.Tensor  # uint8 (N, C, H, W), CPU, contiguous
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor  # uint8 (M, C, H, W)
    test_labels: torch.Tensor  # int64 (M,)
    mean: tuple[float, ...]  # per channel, pixel units in [0, 1]
    std: tuple[float, ...]
    synthetic: bool  # True only for the built-in synthetic set
    subset: bool = False  # the splits are class-balanced subsets of the source
    skipped: tuple[str, ...] = ()  # image files that could not be decoded and were left out (folder paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.train_images.shape
        return (int(c), int(h), int(w))

    @property
    def description(self) -> str:
        """One line for UIs, from the counts: 'CIFAR-10 (10 classes, 50,000 train / 10,000 test)'."""
        _, h, w = self.image_shape
        parts = ["built-in"] if self.synthetic else []
        parts.append(f"{self.num_classes} classes")
        if self.name == "folder" or (h, w) != (32, 32):
            parts.append(f"{w}×{h}")
        parts.append(f"{self.train_labels.shape[0]:,} train / {self.test_labels.shape[0]:,} test")
        if self.subset:
            parts.append("class-balanced subset")
        return f"{self.title} ({', '.join(parts)})"


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 (N, C, H, W) images, in [0, 1] pixel units.

    Accumulated in float64 over chunks so 50,000 images never need a full float copy (600 MB).
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    if count == 0:
        return tuple([0.5] * channels), tuple([0.25] * channels)
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(1e-12)
    return tuple(float(m) for m in mean), tuple(float(s) for s in var.sqrt())


def balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted int64 indices of n samples, as equal per class as the class sizes allow.

    Deterministic from seed. When n is not a multiple of the number of classes, the classes that
    get one extra sample are drawn at random (so n < classes gives one sample to n random classes).
    """
    total = int(labels.shape[0])
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"subset size must be a positive integer, got {n!r}")
    if n > total:
        raise DataError(f"subset of {n:,} images is larger than the split ({total:,} images)")
    generator = torch.Generator().manual_seed(int(seed))
    labels = labels.detach().cpu().to(torch.int64)
    classes = torch.unique(labels).tolist()
    # Each class's indices in a seeded random order; the first quota[k] of them are taken.
    pools = []
    for k in classes:
        members = torch.nonzero(labels == k).flatten()
        pools.append(members[torch.randperm(members.numel(), generator=generator)])
    capacity = [p.numel() for p in pools]
    quota = [0] * len(pools)
    remaining = n
    # Water-filling: share equally among classes that still have samples left.
    while remaining > 0:
        active = [i for i in range(len(pools)) if quota[i] < capacity[i]]
        share = remaining // len(active)
        if share == 0:
            order = torch.randperm(len(active), generator=generator).tolist()
            for j in order[:remaining]:
                quota[active[j]] += 1
            remaining = 0
            break
        for i in active:
            add = min(share, capacity[i] - quota[i])
            quota[i] += add
            remaining -= add
    chosen = torch.cat([pool[:q] for pool, q in zip(pools, quota)])
    return torch.sort(chosen).values


# The test split's subset draws from a different stream so its choice is independent of the train split's.
TEST_SUBSET_SEED_OFFSET = 1_000_003


def check_subset_sizes(title: str, n_train: int, n_test: int, subset_train: int | None, subset_test: int | None) -> None:
    """Raise DataError (one line) when a requested subset is larger than its split."""
    for split, n, size in (("train", subset_train, n_train), ("test", subset_test, n_test)):
        if n is not None and n > size:
            raise DataError(
                f"{split} subset of {n:,} images is larger than the {title} {split} split "
                f"({size:,} images); choose at most {size:,}"
            )


def apply_subsets(ds: Dataset, subset_train: int | None, subset_test: int | None, seed: int) -> Dataset:
    """The dataset with class-balanced subsets of its splits (unchanged when both sizes are None)."""
    if subset_train is None and subset_test is None:
        return ds
    check_subset_sizes(ds.name, ds.train_labels.shape[0], ds.test_labels.shape[0], subset_train, subset_test)
    train_images, train_labels = ds.train_images, ds.train_labels
    test_images, test_labels = ds.test_images, ds.test_labels
    if subset_train is not None:
        index = balanced_subset(train_labels, subset_train, seed)
        train_images, train_labels = train_images[index].contiguous(), train_labels[index].contiguous()
    if subset_test is not None:
        index = balanced_subset(test_labels, subset_test, seed + TEST_SUBSET_SEED_OFFSET)
        test_images, test_labels = test_images[index].contiguous(), test_labels[index].contiguous()
    return dataclasses.replace(
        ds,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        subset=True,
    )
