"""Datasets as uint8 (N, C, H, W) tensors plus int64 labels, and a device-side batch loader."""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import multiprocessing
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wrn_core.config import TrainConfig


class DataError(RuntimeError):
    """A user-facing data problem; the message is one line saying what is wrong and how to fix it."""


@dataclass
class Dataset:
    """Both splits of one image classification dataset, held as CPU uint8 tensors."""

    name: str  # synthetic | cifar10 | cifar100 | folder
    classes: list[str]
    train_images: torch.Tensor  # uint8 (N, C, H, W), CPU, contiguous
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor  # uint8 (M, C, H, W)
    test_labels: torch.Tensor  # int64 (M,)
    mean: tuple[float, ...]  # per channel, pixel units in [0, 1]
    std: tuple[float, ...]
    synthetic: bool  # True only for the built-in synthetic set
    description: str  # one line for UIs

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.train_images.shape
        return (int(c), int(h), int(w))


DEFAULT_DATA_DIR = "./data"

# ---------------------------------------------------------------------------------------------
# Descriptions and statistics


def _describe(title: str, num_classes: int, n_train: int, n_test: int, extra: str = "", lead: str = "") -> str:
    lead = f"{lead}, " if lead else ""
    extra = f", {extra}" if extra else ""
    return f"{title} ({lead}{num_classes} classes{extra}, {_counts(n_train, n_test)})"


def _counts(n_train: int, n_test: int) -> str:
    return f"{n_train:,} train / {n_test:,} test"


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


# ---------------------------------------------------------------------------------------------
# Subsets


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


def _apply_subsets(ds: Dataset, subset_train: int | None, subset_test: int | None, seed: int) -> Dataset:
    if subset_train is None and subset_test is None:
        return ds
    for split, n, labels in (("train", subset_train, ds.train_labels), ("test", subset_test, ds.test_labels)):
        if n is not None and n > labels.shape[0]:
            raise DataError(
                f"{split} subset of {n:,} images is larger than the {ds.name} {split} split "
                f"({labels.shape[0]:,} images); choose at most {labels.shape[0]:,}"
            )
    train_images, train_labels = ds.train_images, ds.train_labels
    test_images, test_labels = ds.test_images, ds.test_labels
    if subset_train is not None:
        index = balanced_subset(train_labels, subset_train, seed)
        train_images, train_labels = train_images[index].contiguous(), train_labels[index].contiguous()
    if subset_test is not None:
        # A different stream for the test split so its choice is independent of the train split's.
        index = balanced_subset(test_labels, subset_test, seed + 1_000_003)
        test_images, test_labels = test_images[index].contiguous(), test_labels[index].contiguous()
    # Only the counts at the end of the description change.
    counts = f"{_counts(train_labels.shape[0], test_labels.shape[0])}, class-balanced subset)"
    description, found = re.subn(r"[\d,]+ train / [\d,]+ test\)$", counts, ds.description)
    if not found:
        description = f"{ds.description} [subset: {counts[:-1]}]"
    return Dataset(
        name=ds.name,
        classes=list(ds.classes),
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=ds.mean,
        std=ds.std,
        synthetic=ds.synthetic,
        description=description,
    )


def check_available(config: TrainConfig) -> None:
    """Raise DataError (one line) if the config's dataset cannot be found, without loading it."""
    if config.dataset in ("cifar10", "cifar100"):
        data_dir = Path(config.data_dir or DEFAULT_DATA_DIR)
        if not cifar_files_present(config.dataset, data_dir):
            raise DataError(_cifar_missing_message(config.dataset, data_dir))
    elif config.dataset == "folder":
        _folder_splits(Path(config.data_dir or ""))


def load_dataset(config: TrainConfig) -> Dataset:
    """The dataset a run asks for, with its class-balanced subsets applied. Never downloads."""
    if config.dataset == "synthetic":
        ds = make_synthetic(config.synthetic_train, config.synthetic_test, seed=config.seed)
    elif config.dataset in ("cifar10", "cifar100"):
        ds = load_cifar(config.dataset, config.data_dir or DEFAULT_DATA_DIR)
    elif config.dataset == "folder":
        if not config.data_dir:
            raise DataError("dataset 'folder' needs a data directory (--data-dir)")
        ds = load_image_folder(config.data_dir, image_size=config.image_size)
    else:
        raise DataError(f"unknown dataset {config.dataset!r}; choose synthetic, cifar10, cifar100 or folder")
    return _apply_subsets(ds, config.subset_train, config.subset_test, config.seed)


# ---------------------------------------------------------------------------------------------
# Synthetic shapes

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


def _shape_mask(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bool mask of shape family `kind` in local coordinates u, v (object radius = 1, y down).

    Every family is symmetric under a horizontal flip, so flip augmentation never changes the class.
    """
    r2 = u * u + v * v
    box = torch.maximum(u.abs(), v.abs())
    if kind == 0:  # disk
        return r2 < 0.85
    if kind == 1:  # filled square
        return box < 0.75
    if kind == 2:  # triangle pointing up, base at v = 0.6
        return (v < 0.6) & (u.abs() * 1.7 < (v + 0.9))
    if kind == 3:  # ring
        return (r2 < 1.0) & (r2 > 0.36)
    if kind == 4:  # plus
        return ((u.abs() < 0.28) & (v.abs() < 0.95)) | ((v.abs() < 0.28) & (u.abs() < 0.95))
    if kind == 5:  # hollow square frame
        return (box < 0.9) & (box > 0.55)
    if kind == 6:  # horizontal stripes in a square patch
        return (box < 0.9) & (torch.sin(v * (math.pi * 2.6)) > 0)
    if kind == 7:  # vertical stripes in a square patch
        return (box < 0.9) & (torch.sin(u * (math.pi * 2.6)) > 0)
    if kind == 8:  # checkerboard patch
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
    for kind in range(num_classes):
        rows = labels == kind
        mask[rows] = _shape_mask(kind, u[rows], v[rows])
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
    extra = "" if size == 32 else f"{size}×{size}"
    return Dataset(
        name="synthetic",
        classes=SYNTHETIC_CLASSES[:num_classes],
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=mean,
        std=std,
        synthetic=True,
        description=_describe("Synthetic shapes", num_classes, num_train, num_test, extra, lead="built-in"),
    )


# ---------------------------------------------------------------------------------------------
# CIFAR

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
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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
        classes=classes,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=tuple(mean),
        std=tuple(std),
        synthetic=False,
        description=_describe(title, len(classes), train_labels.shape[0], test_labels.shape[0]),
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
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"could not download {title} into {data_dir} ({type(exc).__name__}: {detail}); "
            f"check the internet connection, or copy {archive} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {data_dir} and extract it there"
        ) from exc
    return data_dir


# ---------------------------------------------------------------------------------------------
# Image folders

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_CACHE_VERSION = 1
_FOLDER_LAYOUT = "expected ROOT/train/<class>/*.jpg and ROOT/test/<class>/*.jpg (or ROOT/val/<class>/...)"
_SERIAL_DECODE_MAX = 1000  # below this many images a process pool costs more than it saves
_DECODE_CHUNK = 1000  # images per pool task


def _scan_split(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files (recursive) for each class folder in split_dir."""
    result: dict[str, list[Path]] = {}
    for entry in sorted(split_dir.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = sorted(
            p
            for p in entry.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
        )
        if files:
            result[entry.name] = files
    return result


def _decode_chunk(paths: Sequence[str], image_size: int | None) -> list[np.ndarray]:
    """Decode image files to uint8 (H, W, 3) arrays; runs in pool workers, so only PIL and numpy."""
    from PIL import Image

    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if image_size is not None and img.size != (image_size, image_size):
                    img = img.resize((image_size, image_size), Image.BILINEAR)
                out.append(np.asarray(img, dtype=np.uint8))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from None
    return out


def _pool_context():
    # fork starts workers instantly (they only run PIL/numpy, never torch); spawn elsewhere.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _decode_images(paths: list[Path], image_size: int | None) -> list[np.ndarray]:
    """Decode all paths in order, using a process pool over chunks when there are many."""
    names = [str(p) for p in paths]
    if len(names) <= _SERIAL_DECODE_MAX:
        return _decode_chunk(names, image_size)
    chunks = [names[i : i + _DECODE_CHUNK] for i in range(0, len(names), _DECODE_CHUNK)]
    workers = max(1, min(os.cpu_count() or 1, 8, len(chunks)))
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            results = list(pool.map(_decode_chunk, chunks, [image_size] * len(chunks)))
    except concurrent.futures.process.BrokenProcessPool:
        # A pool can fail to start in restricted environments; decoding serially still works.
        return _decode_chunk(names, image_size)
    return [array for chunk in results for array in chunk]


def _folder_key(files: list[Path], root: Path, image_size: int | None) -> str:
    """Hash of relative paths, sizes and mtimes of every image, plus the target size."""
    digest = hashlib.sha256(f"wrn-folder-v{_CACHE_VERSION}|size={image_size}".encode())
    for path in files:
        st = path.stat()
        digest.update(f"\n{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def _cache_dirs(root: Path, cache_dir: str | Path | None) -> list[Path]:
    if cache_dir is not None:
        return [Path(cache_dir)]
    return [root / ".wrn_cache", Path.home() / ".cache" / "wrn_lab"]


def _save_cache(payload: dict, dirs: list[Path], filename: str) -> Path | None:
    """Write the cache atomically into the first writable directory; None if none is writable."""
    for directory in dirs:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=filename, suffix=".tmp", dir=directory)
            try:
                with os.fdopen(fd, "wb") as handle:
                    torch.save(payload, handle)
                os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is as readable as the images
                os.replace(tmp, directory / filename)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            return directory / filename
        except OSError:
            continue
    return None


def _load_cache(dirs: list[Path], filename: str) -> dict | None:
    for directory in dirs:
        path = directory / filename
        if path.is_file():
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a truncated or foreign file is just a cache miss
                continue
            if isinstance(payload, dict) and payload.get("version") == _CACHE_VERSION:
                return payload
    return None


def folder_cache_path(root: str | Path, image_size: int | None = None, cache_dir: str | Path | None = None) -> Path | None:
    """Where the cache for this folder's current contents is (or would be written first); None if no images."""
    root = Path(root)
    train, test = _folder_splits(root)
    files = [p for fs in _scan_split(train).values() for p in fs] + [p for fs in _scan_split(test).values() for p in fs]
    if not files:
        return None
    return _cache_dirs(root, cache_dir)[0] / f"folder-{_folder_key(files, root, image_size)}.pt"


def _folder_splits(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; {_FOLDER_LAYOUT}")
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"image folder {root} has no train/ subfolder; {_FOLDER_LAYOUT}")
    for name in ("test", "val"):
        if (root / name).is_dir():
            return train, root / name
    raise DataError(f"image folder {root} has no test/ or val/ subfolder; {_FOLDER_LAYOUT}")


def _stack(arrays: list[np.ndarray], split_dir: Path, image_size: int | None) -> torch.Tensor:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        sizes = sorted({f"{s[1]}×{s[0]}" for s in shapes})
        shown = ", ".join(sizes[:4]) + (", ..." if len(sizes) > 4 else "")
        raise DataError(
            f"images in {split_dir} have different sizes ({shown}); set an image size "
            f"(--image-size, e.g. 32) to resize them all to one square size"
        )
    # (N, H, W, 3) -> (N, 3, H, W)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_image_folder(root: str | Path, image_size: int | None = None, cache_dir: str | Path | None = None) -> Dataset:
    """An ImageFolder-style dataset: root/train/<class>/*, root/test/<class>/* (or val/).

    Images are converted to RGB; native size when all share one, else resized (bilinear) to
    image_size square. Decoded tensors are cached (keyed by the folder's contents) so the next
    load of an unchanged folder is a single torch.load.
    """
    root = Path(root).expanduser()
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image size must be a positive integer, got {image_size!r}")
    train_dir, test_dir = _folder_splits(root)
    train_files = _scan_split(train_dir)
    test_files = _scan_split(test_dir)
    if not train_files:
        raise DataError(f"no images found in {train_dir}; {_FOLDER_LAYOUT}")
    if not test_files:
        raise DataError(f"no images found in {test_dir}; {_FOLDER_LAYOUT}")
    classes = sorted(train_files)
    unknown = sorted(set(test_files) - set(classes))
    if unknown:
        raise DataError(
            f"{test_dir} has class folders that {train_dir} lacks: {', '.join(unknown[:5])}; "
            f"every test class needs training images"
        )
    index = {name: i for i, name in enumerate(classes)}

    def flatten(split: dict[str, list[Path]]) -> tuple[list[Path], torch.Tensor]:
        paths, labels = [], []
        for name in sorted(split):
            paths.extend(split[name])
            labels.extend([index[name]] * len(split[name]))
        return paths, torch.tensor(labels, dtype=torch.int64)

    train_paths, train_labels = flatten(train_files)
    test_paths, test_labels = flatten(test_files)
    key = _folder_key(train_paths + test_paths, root, image_size)
    filename = f"folder-{key}.pt"
    dirs = _cache_dirs(root, cache_dir)
    payload = _load_cache(dirs, filename)
    if payload is None:
        decoded = _decode_images(train_paths + test_paths, image_size)
        train_images = _stack(decoded[: len(train_paths)], train_dir, image_size)
        test_images = _stack(decoded[len(train_paths) :], test_dir, image_size)
        if train_images.shape[1:] != test_images.shape[1:]:
            raise DataError(
                f"train images are {tuple(train_images.shape[2:])} but test images are "
                f"{tuple(test_images.shape[2:])} in {root}; set an image size (--image-size) to resize both"
            )
        mean, std = channel_stats(train_images)
        payload = {
            "version": _CACHE_VERSION,
            "train_images": train_images,
            "test_images": test_images,
            "mean": list(mean),
            "std": list(std),
        }
        _save_cache(payload, dirs, filename)
    train_images, test_images = payload["train_images"], payload["test_images"]
    _, _, h, w = train_images.shape
    return Dataset(
        name="folder",
        classes=classes,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        mean=tuple(float(m) for m in payload["mean"]),
        std=tuple(float(s) for s in payload["std"]),
        synthetic=False,
        description=_describe(f"Image folder {root.name}", len(classes), len(train_paths), len(test_paths), f"{w}×{h}"),
    )


# ---------------------------------------------------------------------------------------------
# Device-side batching and augmentation


class DeviceLoader:
    """Batches from uint8 images already on the training device; augments and normalizes there.

    For training, the shuffle and all augmentation randomness of an epoch are drawn up front from a
    CPU generator seeded from (seed, epoch), so an epoch is reproducible and can resume mid-way.
    """

    PAD = 4  # pixels of reflect padding before the random crop (paper)

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        train: bool,
        augment: bool,
        seed: int = 0,
        drop_last: bool | None = None,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if batch_size < 1:
            raise DataError(f"batch size must be >= 1, got {batch_size}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise DataError(f"mean/std need {channels} values (one per channel), got {len(mean)}/{len(std)}")
        self.images = images
        self.labels = labels
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.augment = bool(augment) and self.train
        self.seed = int(seed)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.channels_last = channels_last
        self.dtype = dtype
        self.device = images.device
        _, _, self.height, self.width = images.shape
        self.pad = min(self.PAD, self.height - 1, self.width - 1)
        # x_norm = x_uint8 * scale + shift  ==  (x/255 - mean) / std; (1, C, 1, 1) float32
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1).to(self.device)
        self._channel_index = torch.arange(channels, device=self.device).view(1, -1, 1, 1)

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    @property
    def effective_batch_size(self) -> int:
        # With drop_last and fewer samples than one batch, the single batch holds them all.
        return min(self.batch_size, self.num_samples) if self.num_samples else self.batch_size

    def __len__(self) -> int:
        n = self.num_samples
        if n == 0:
            return 0
        if self.drop_last:
            return max(1, n // self.batch_size)
        return math.ceil(n / self.batch_size)

    def _generator(self, epoch: int) -> torch.Generator:
        # Distinct, reproducible stream per (seed, epoch).
        return torch.Generator().manual_seed((self.seed * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63))

    def _plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Sample order (N,) and, when augmenting, rows (N, H) and cols (N, W) source pixel indices."""
        n = self.num_samples
        if not self.train:
            return torch.empty(0, dtype=torch.int64), None, None  # unused: test batches are slices
        generator = self._generator(epoch)
        order = torch.randperm(n, generator=generator)
        if not self.augment:
            return order.to(self.device), None, None
        pad, h, w = self.pad, self.height, self.width
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)  # crop corner in the padded image
        flips = torch.randint(0, 2, (n,), generator=generator).bool()
        # Output pixel y reads padded row offset_y + y, i.e. source row offset_y + y - pad,
        # reflected at the borders (reflect padding excludes the edge pixel itself).
        rows = offsets[:, :1] + torch.arange(h)[None, :] - pad
        cols_out = torch.arange(w)[None, :].expand(n, w)
        # A horizontal flip of the crop reads the crop's columns back to front.
        cols_out = torch.where(flips[:, None], w - 1 - cols_out, cols_out)
        cols = offsets[:, 1:] + cols_out - pad
        rows = _reflect(rows, h)
        cols = _reflect(cols, w)
        # Permute now so batch i is a contiguous slice of everything.
        return order.to(self.device), rows[order].to(self.device), cols[order].to(self.device)

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images dtype (B, C, H, W) normalized, labels int64 (B,)) on the device, from start_batch on."""
        order, rows, cols = self._plan(epoch)
        count = len(self)
        size = self.effective_batch_size
        for batch in range(max(0, int(start_batch)), count):
            if not self.train:
                # In order: a slice (a view) instead of a gather.
                x = self.images[batch * size : (batch + 1) * size]
                out = self._normalize(x)
                yield out, self.labels[batch * size : (batch + 1) * size]
                continue
            index = order[batch * size : (batch + 1) * size]
            if rows is None:
                x = self.images[index]
            else:
                r = rows[batch * size : (batch + 1) * size]
                c = cols[batch * size : (batch + 1) * size]
                # One gather: (B,1,1,1), (1,C,1,1), (B,1,H,1), (B,1,1,W) -> (B, C, H, W) uint8
                x = self.images[index[:, None, None, None], self._channel_index, r[:, None, :, None], c[:, None, None, :]]
            yield self._normalize(x), self.labels[index]

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> `dtype` (x/255 - mean)/std, computed in float32."""
        out = x.to(torch.float32).mul_(self._scale).add_(self._shift)
        if self.dtype != torch.float32:
            out = out.to(self.dtype)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [-(size-1), 2*size-2] into [0, size) as reflect padding does (edge not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)
