"""Image-folder datasets (root/train/<class>/*, root/test/<class>/*): scanned, decoded once, cached as uint8."""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from wrn_core.data.base import Dataset, channel_stats
from wrn_core.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# 2: unreadable images are left out, so labels and the skipped files are stored with the tensors.
_CACHE_VERSION = 2
_FOLDER_LAYOUT = "expected ROOT/train/<class>/*.jpg and ROOT/test/<class>/*.jpg (or ROOT/val/<class>/...)"
_SERIAL_DECODE_MAX = 1000  # below this many images a process pool costs more than it saves
_DECODE_CHUNK = 1000  # images per pool task
# Called as images are decoded: (images decoded so far, images in all).
DecodeProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class FolderScan:
    """What a listing of the folder says, before any image is decoded."""

    root: Path
    train_dir: Path
    test_dir: Path
    classes: list[str]  # sorted train class folder names; label = index
    train_files: dict[str, list[Path]]  # class -> sorted image files
    test_files: dict[str, list[Path]]

    @property
    def split_sizes(self) -> tuple[int, int]:
        """(train images, test images) found, readable or not."""
        return (sum(len(f) for f in self.train_files.values()), sum(len(f) for f in self.test_files.values()))


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


def _quoted(path: Path) -> str:
    """A path for a message: absolute (what a relative path the user typed resolved to), in backticks,
    which the dashboard shows as code and a terminal as written."""
    return f"`{path.resolve()}`"


def _folder_splits(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError(f"image folder {_quoted(root)} does not exist; {_FOLDER_LAYOUT}")
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"image folder {_quoted(root)} has no train/ subfolder; {_FOLDER_LAYOUT}")
    for name in ("test", "val"):
        if (root / name).is_dir():
            return train, root / name
    raise DataError(f"image folder {_quoted(root)} has no test/ or val/ subfolder; {_FOLDER_LAYOUT}")


def scan_folder(root: str | Path) -> FolderScan:
    """List the folder and check its layout and classes (no decoding); DataError (one line) if unusable."""
    root = Path(root).expanduser()
    train_dir, test_dir = _folder_splits(root)
    train_files = _scan_split(train_dir)
    test_files = _scan_split(test_dir)
    if not train_files:
        raise DataError(f"no images found in {_quoted(train_dir)}; {_FOLDER_LAYOUT}")
    if not test_files:
        raise DataError(f"no images found in {_quoted(test_dir)}; {_FOLDER_LAYOUT}")
    classes = sorted(train_files)
    unknown = sorted(set(test_files) - set(classes))
    if unknown:
        raise DataError(
            f"{_quoted(test_dir)} has class folders that {_quoted(train_dir)} lacks: {', '.join(unknown[:5])}; "
            f"every test class needs training images"
        )
    return FolderScan(root, train_dir, test_dir, classes, train_files, test_files)


def _decode_chunk(paths: Sequence[str], image_size: int | None) -> list[np.ndarray | None]:
    """Decode image files to uint8 (H, W, 3) arrays, None for a file that cannot be read.

    Runs in pool workers, so only PIL and numpy.
    """
    from PIL import Image

    out: list[np.ndarray | None] = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                if image_size is not None and img.size != (image_size, image_size):
                    img = img.resize((image_size, image_size), Image.BILINEAR)
                out.append(np.asarray(img, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            # Truncated, corrupt or not an image at all: left out and counted by the caller.
            out.append(None)
    return out


def _pool_context():
    """fork starts workers at once (they only run PIL/numpy, never torch) — but not from a process that holds
    CUDA, whose state a forked child cannot use: then forkserver (or spawn) starts them clean."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and not _cuda_initialized():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _cuda_initialized() -> bool:
    return torch.cuda.is_initialized()


def _decode_images(paths: list[Path], image_size: int | None,
                   progress: DecodeProgress | None = None) -> list[np.ndarray | None]:
    """Decode all paths in order (None where unreadable), using a process pool over chunks when there are many.

    progress(done, total) is called as chunks finish (images decoded so far, of all of them).
    """
    names = [str(p) for p in paths]
    total = len(names)
    if total <= _SERIAL_DECODE_MAX:
        decoded = _decode_chunk(names, image_size)
        if progress is not None:
            progress(total, total)
        return decoded
    chunks = [names[i : i + _DECODE_CHUNK] for i in range(0, total, _DECODE_CHUNK)]
    workers = max(1, min(os.cpu_count() or 1, 8, len(chunks)))
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context()) as pool:
            results = []
            done = 0
            for chunk in pool.map(_decode_chunk, chunks, [image_size] * len(chunks)):  # in order, as they finish
                results.append(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
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
    scan = scan_folder(root)
    files = _flatten(scan.train_files, scan.classes)[0] + _flatten(scan.test_files, scan.classes)[0]
    return _cache_dirs(scan.root, cache_dir)[0] / f"folder-{_folder_key(files, scan.root, image_size)}.pt"


def _stack(arrays: list[np.ndarray], split_dir: Path) -> torch.Tensor:
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


def _flatten(split: dict[str, list[Path]], classes: list[str]) -> tuple[list[Path], list[int]]:
    index = {name: i for i, name in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for name in sorted(split):
        paths.extend(split[name])
        labels.extend([index[name]] * len(split[name]))
    return paths, labels


def _decode_split(
    paths: list[Path], labels: list[int], decoded: list[np.ndarray | None], split_dir: Path, classes: list[str], root: Path
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The readable images of one split as (uint8 images, int64 labels), and the unreadable files left out."""
    kept, kept_labels, skipped = [], [], []
    for path, label, array in zip(paths, labels, decoded):
        if array is None:
            skipped.append(path.relative_to(root).as_posix())
        else:
            kept.append(array)
            kept_labels.append(label)
    if not kept:
        raise DataError(f"none of the {len(paths):,} images in {split_dir} could be read; check the files")
    if split_dir.name == "train":
        present = set(kept_labels)
        empty = [classes[label] for label in sorted(set(labels)) if label not in present]
        if empty:
            raise DataError(
                f"every image of class {', '.join(empty[:5])} in {split_dir} is unreadable; "
                f"a class needs at least one readable training image"
            )
    return _stack(kept, split_dir), torch.tensor(kept_labels, dtype=torch.int64), skipped


def load_image_folder(root: str | Path, image_size: int | None = None, cache_dir: str | Path | None = None,
                      progress: DecodeProgress | None = None) -> Dataset:
    """An ImageFolder-style dataset: root/train/<class>/*, root/test/<class>/* (or val/).

    Images are converted to RGB; native size when all share one, else resized (bilinear) to
    image_size square. Files that cannot be decoded are left out and listed in `skipped`; only a
    training class or a split with no readable image is an error. Decoded tensors are cached
    (keyed by the folder's contents) so the next load of an unchanged folder is a single torch.load.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image size must be a positive integer, got {image_size!r}")
    scan = scan_folder(root)
    train_paths, train_labels = _flatten(scan.train_files, scan.classes)
    test_paths, test_labels = _flatten(scan.test_files, scan.classes)
    key = _folder_key(train_paths + test_paths, scan.root, image_size)
    filename = f"folder-{key}.pt"
    dirs = _cache_dirs(scan.root, cache_dir)
    payload = _load_cache(dirs, filename)
    if payload is None:
        decoded = _decode_images(train_paths + test_paths, image_size, progress)
        train = _decode_split(train_paths, train_labels, decoded[: len(train_paths)], scan.train_dir, scan.classes, scan.root)
        test = _decode_split(test_paths, test_labels, decoded[len(train_paths) :], scan.test_dir, scan.classes, scan.root)
        if train[0].shape[1:] != test[0].shape[1:]:
            raise DataError(
                f"train images are {tuple(train[0].shape[2:])} but test images are "
                f"{tuple(test[0].shape[2:])} in {scan.root}; set an image size (--image-size) to resize both"
            )
        mean, std = channel_stats(train[0])
        payload = {
            "version": _CACHE_VERSION,
            "train_images": train[0],
            "train_labels": train[1],
            "test_images": test[0],
            "test_labels": test[1],
            "skipped": train[2] + test[2],
            "mean": list(mean),
            "std": list(std),
        }
        _save_cache(payload, dirs, filename)
    return Dataset(
        name="folder",
        title=f"Image folder {scan.root.name}",
        classes=scan.classes,
        train_images=payload["train_images"],
        train_labels=payload["train_labels"],
        test_images=payload["test_images"],
        test_labels=payload["test_labels"],
        mean=tuple(float(m) for m in payload["mean"]),
        std=tuple(float(s) for s in payload["std"]),
        synthetic=False,
        skipped=tuple(payload["skipped"]),
    )
