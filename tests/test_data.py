"""Tests for wrn_core.data: synthetic set, subsets, device loader, CIFAR files and image folders."""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from wrn_core.data import folder as data  # the folder module's internals are patched below
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.errors import DataError
from wrn_core.data import (
    DeviceLoader,
    balanced_subset,
    cifar_files_present,
    download_cifar,
    load_dataset,
    load_image_folder,
    make_synthetic,
)

from shared_data import cifar_jpeg_root

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------------------------------------
# Synthetic


def test_synthetic_is_deterministic_per_seed():
    a = make_synthetic(200, 50, seed=3)
    b = make_synthetic(200, 50, seed=3)
    c = make_synthetic(200, 50, seed=4)
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_images, b.test_images)
    assert torch.equal(a.train_labels, b.train_labels) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)
    assert a.mean == b.mean and a.std == b.std


def test_synthetic_shapes_dtypes_and_balance():
    ds = make_synthetic(300, 100, seed=0)
    assert ds.name == "synthetic" and ds.synthetic is True
    assert ds.num_classes == 10 and len(set(ds.classes)) == 10
    assert ds.image_shape == (3, 32, 32)
    assert ds.train_images.shape == (300, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (100, 3, 32, 32) and ds.test_images.dtype == torch.uint8
    assert ds.train_images.is_contiguous() and ds.train_labels.dtype == torch.int64
    assert ds.train_labels.min() >= 0 and ds.train_labels.max() <= 9
    assert torch.bincount(ds.train_labels, minlength=10).tolist() == [30] * 10
    assert torch.bincount(ds.test_labels, minlength=10).tolist() == [10] * 10
    # Stats come from the train split, in [0, 1] pixel units.
    x = ds.train_images.double() / 255
    assert np.allclose(ds.mean, x.mean(dim=(0, 2, 3)).tolist(), atol=1e-6)
    assert np.allclose(ds.std, x.std(dim=(0, 2, 3)).tolist(), atol=1e-3)
    assert ds.description == "Synthetic shapes (built-in, 10 classes, 300 train / 100 test)"
    # Colour alone must not give the class: mean colour per class is near the overall mean.
    per_class = torch.stack([x[ds.train_labels == k].mean(dim=(0, 2, 3)) for k in range(10)])
    assert (per_class - per_class.mean(0)).abs().max() < 0.1


def test_synthetic_fewer_classes_and_errors():
    ds = make_synthetic(40, 20, seed=0, num_classes=4, size=16)
    assert ds.num_classes == 4 and ds.image_shape == (3, 16, 16)
    assert set(ds.train_labels.tolist()) == {0, 1, 2, 3}
    with pytest.raises(DataError):
        make_synthetic(40, 20, num_classes=11)


def _accuracy(model: torch.nn.Module, loader: DeviceLoader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += int((model(x).argmax(1) == y).sum())
            total += y.numel()
    return correct / total


def test_synthetic_is_learnable_but_not_trivial():
    """WRN-10-1, 5,000 train images, batch 128, SGD-nesterov 0.1 decaying linearly over 2 epochs.

    Measured on this data: about 30-45% after epoch 1 and 55-67% after epoch 2 (seeds 0-2).
    """
    from wrn_core.model import build_model

    torch.manual_seed(0)
    ds = make_synthetic(5000, 1000, seed=0)
    model = build_model(WRNConfig(depth=10, widen_factor=1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    train = DeviceLoader(ds.train_images, ds.train_labels, 128, ds.mean, ds.std, train=True, augment=True, seed=0)
    test = DeviceLoader(ds.test_images, ds.test_labels, 500, ds.mean, ds.std, train=False, augment=False)
    total_steps, step, accs = 2 * len(train), 0, []
    for epoch in range(2):
        model.train()
        for x, y in train.epoch(epoch):
            for group in opt.param_groups:
                group["lr"] = 0.1 * (1 - step / total_steps)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        accs.append(_accuracy(model, test))
    assert accs[0] < 0.9, f"synthetic data is too easy: {accs}"
    assert accs[1] >= 0.40, f"synthetic data is not learnable enough: {accs}"


# ---------------------------------------------------------------------------------------------
# Subsets


def test_balanced_subset_is_balanced_deterministic_and_checked():
    labels = torch.arange(10).repeat_interleave(20)  # 20 per class
    index = balanced_subset(labels, 25, seed=1)
    assert index.dtype == torch.int64 and index.numel() == 25 and index.unique().numel() == 25
    counts = torch.bincount(labels[index], minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3
    assert torch.equal(index, balanced_subset(labels, 25, seed=1))
    assert not torch.equal(index, balanced_subset(labels, 25, seed=2))
    # Fewer than the classes: one each for n classes.
    small = balanced_subset(labels, 4, seed=0)
    assert sorted(torch.bincount(labels[small], minlength=10).tolist()) == [0] * 6 + [1] * 4
    # A small class gives what it has; the rest is shared by the others.
    skewed = torch.cat([torch.zeros(2, dtype=torch.int64), torch.ones(50, dtype=torch.int64), torch.full((50,), 2)])
    counts = torch.bincount(skewed[balanced_subset(skewed, 30, seed=0)], minlength=3).tolist()
    assert counts == [2, 14, 14]
    assert balanced_subset(labels, 200, seed=0).numel() == 200
    with pytest.raises(DataError):
        balanced_subset(labels, 201, seed=0)


def test_load_dataset_applies_subsets():
    cfg = TrainConfig(synthetic_train=200, synthetic_test=100, subset_train=50, subset_test=20, seed=5)
    ds = load_dataset(cfg)
    assert ds.train_images.shape[0] == 50 and ds.test_images.shape[0] == 20
    assert torch.bincount(ds.train_labels, minlength=10).tolist() == [5] * 10
    assert torch.bincount(ds.test_labels, minlength=10).tolist() == [2] * 10
    assert "50 train / 20 test" in ds.description and ds.synthetic
    again = load_dataset(cfg)
    assert torch.equal(ds.train_images, again.train_images)
    with pytest.raises(DataError, match="larger"):
        load_dataset(TrainConfig(synthetic_train=200, synthetic_test=100, subset_train=201))


# ---------------------------------------------------------------------------------------------
# DeviceLoader


def _random_images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.int64).to(torch.uint8)


def test_loader_batches_len_and_order():
    images, labels = _random_images(100), torch.arange(100)
    train = DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=False)
    test = DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=False, augment=True)
    assert len(train) == 3 and len(test) == 4
    batches = list(train.epoch(0))
    assert [tuple(x.shape) for x, _ in batches] == [(32, 3, 32, 32)] * 3
    assert all(x.dtype == torch.float32 and y.dtype == torch.int64 for x, y in batches)
    seen = torch.cat([y for _, y in batches])
    assert seen.unique().numel() == 96 and not torch.equal(seen, torch.arange(96))  # shuffled, no repeats
    # Without augmentation each image is the normalized source image of its label.
    x, y = batches[0]
    assert torch.allclose(x, (images[y].float() / 255 - 0.5) / 0.25, atol=1e-5)
    # Test: in order, un-augmented, last partial batch kept.
    test_batches = list(test)
    assert [y.numel() for _, y in test_batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([y for _, y in test_batches]), labels)
    assert torch.allclose(torch.cat([x for x, _ in test_batches]), (images.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert len(DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=False, drop_last=False)) == 4
    # Fewer samples than a batch: one batch of all of them, even with drop_last.
    assert len(DeviceLoader(images[:10], labels[:10], 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=True)) == 1


@pytest.mark.parametrize("world_size", [2, 4])
def test_data_parallel_shards_split_every_global_batch_exactly(world_size):
    images, labels = _random_images(130), torch.arange(130)
    whole = DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=True, seed=7)
    shards = [DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=True, seed=7,
                           shard=(rank, world_size)) for rank in range(world_size)]
    assert all(len(s) == len(whole) == 4 for s in shards)
    for one, parts in zip(whole.epoch(3), zip(*(s.epoch(3) for s in shards))):
        # The ranks' parts, in rank order, are the one-process batch: same images, same augmentation.
        assert torch.equal(torch.cat([x for x, _ in parts]), one[0]) and torch.equal(torch.cat([y for _, y in parts]), one[1])
    union = torch.cat([s.epoch_indices(3) for s in shards])
    assert union.numel() == 128 and union.unique().numel() == 128  # disjoint; 2 images left over, as in one process
    # Resuming mid-epoch gives each rank the rest of its shard.
    local = 32 // world_size
    assert torch.equal(torch.cat([y for _, y in shards[1].epoch(3, start_batch=2)]), shards[1].epoch_indices(3)[2 * local:])
    with pytest.raises(DataError, match="batch size 30 does not divide over 4 processes"):
        DeviceLoader(images, labels, 30, (0.5,) * 3, (0.25,) * 3, train=True, augment=False, shard=(0, 4)).local_batch_size
    # Evaluation: contiguous parts that together are the test set.
    tests = [DeviceLoader(images, labels, 50, (0.5,) * 3, (0.25,) * 3, train=False, augment=False, shard=(r, world_size))
             for r in range(world_size)]
    assert torch.equal(torch.cat([y for t in tests for _, y in t]), labels)


def test_loader_normalizes_to_zero_mean_unit_std():
    ds = make_synthetic(500, 100, seed=0)
    loader = DeviceLoader(ds.train_images, ds.train_labels, 128, ds.mean, ds.std, train=False, augment=False)
    x = torch.cat([b for b, _ in loader])
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3


def test_augmentation_is_a_flipped_crop_of_the_reflect_padded_image():
    images = _random_images(64, h=12, w=10, seed=1)  # non-square, to catch swapped axes
    labels = torch.arange(64)  # label = source index, so pairing can be checked
    loader = DeviceLoader(images, labels, 16, (0.0,) * 3, (1 / 255,) * 3, train=True, augment=True, seed=7)
    offsets, flips = set(), 0
    changed = 0
    for x, y in loader.epoch(0):
        for out, index in zip(x.round().to(torch.uint8), y.tolist()):
            padded = F.pad(images[index][None].float(), (4, 4, 4, 4), mode="reflect")[0].to(torch.uint8)
            match = None
            for dy in range(9):
                for dx in range(9):
                    window = padded[:, dy : dy + 12, dx : dx + 10]
                    for flip in (False, True):
                        candidate = window.flip(-1) if flip else window
                        if torch.equal(candidate, out):
                            match = (dy, dx, flip)
                            break
                    if match:
                        break
                if match:
                    break
            assert match is not None, f"output for image {index} is not a (flipped) crop of its padded source"
            offsets.add(match[:2])
            flips += match[2]
            changed += not torch.equal(out, images[index])
    assert len(offsets) > 10 and 10 < flips < 54 and changed > 50


def test_epochs_are_reproducible_and_resumable():
    images, labels = _random_images(200), torch.arange(200)
    make = lambda: DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=True, seed=3)
    a, b = make(), make()
    epoch3 = list(a.epoch(3))
    again = list(b.epoch(3))
    assert len(epoch3) == 6
    for (xa, ya), (xb, yb) in zip(epoch3, again):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    epoch4 = list(a.epoch(4))
    assert not torch.equal(epoch3[0][1], epoch4[0][1])
    resumed = list(b.epoch(3, start_batch=2))
    assert len(resumed) == 4
    for (xa, ya), (xb, yb) in zip(epoch3[2:], resumed):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other_seed = DeviceLoader(images, labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, augment=True, seed=4)
    assert not torch.equal(next(other_seed.epoch(3))[1], epoch3[0][1])


def test_loader_channels_last_and_dtype():
    images, labels = _random_images(40), torch.arange(40)
    plain = next(iter(DeviceLoader(images, labels, 8, (0.5,) * 3, (0.25,) * 3, train=True, augment=True)))[0]
    assert plain.is_contiguous() and not plain.is_contiguous(memory_format=torch.channels_last)
    cl = DeviceLoader(images, labels, 8, (0.5,) * 3, (0.25,) * 3, train=True, augment=True, channels_last=True)
    x = next(iter(cl))[0]
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, plain)
    half = DeviceLoader(images, labels, 8, (0.5,) * 3, (0.25,) * 3, train=False, augment=False, dtype=torch.bfloat16)
    assert next(iter(half))[0].dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------
# CIFAR (fake archives in the real format; no network)


def _fake_cifar10_tarball(tmp_path: Path, per_batch: int = 4, test: int = 6) -> tuple[Path, np.ndarray]:
    """cifar-10-python.tar.gz with 5 train batches and a test batch; returns it and the train pixels (N, 3072)."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    train_rows = []
    for i in range(1, 6):
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        train_rows.append(rows)
        # str keys: what torchvision gets from the real (Python 2) pickles with encoding="latin1".
        entry = {"batch_label": "x", "data": rows, "labels": [(i + j) % 10 for j in range(per_batch)]}
        (src / f"data_batch_{i}").write_bytes(pickle.dumps(entry))
    entry = {"data": rng.integers(0, 256, (test, 3072), dtype=np.uint8), "labels": list(range(test))}
    (src / "test_batch").write_bytes(pickle.dumps(entry))
    meta = {"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}
    (src / "batches.meta").write_bytes(pickle.dumps(meta))
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(src, arcname="cifar-10-batches-py")
    return tarball, np.concatenate(train_rows)


@pytest.fixture
def no_md5(monkeypatch):
    """The fake files cannot match torchvision's md5 sums: check existence only."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def test_cifar_missing_files_is_a_one_line_data_error(tmp_path):
    assert not cifar_files_present("cifar10", tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(TrainConfig(dataset="cifar10", data_dir=str(tmp_path)))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "cifar-10-batches-py" in message and "download cifar10" in message and "cifar.html" in message
    with pytest.raises(DataError, match="CIFAR-100"):
        load_dataset(TrainConfig(dataset="cifar100", data_dir=str(tmp_path)))


def test_cifar_download_from_local_archive_then_load(tmp_path, monkeypatch, no_md5):
    import torchvision.datasets.cifar as tv_cifar
    from torchvision.datasets.utils import extract_archive

    tarball, train_rows = _fake_cifar10_tarball(tmp_path)
    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kwargs):
        calls.append(url)
        target = Path(download_root) / filename
        shutil.copy(tarball, target)
        extract_archive(str(target), str(download_root))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    data_dir = tmp_path / "data"
    assert download_cifar("cifar10", data_dir) == data_dir
    assert calls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]  # once: test split found it
    assert cifar_files_present("cifar10", data_dir)
    download_cifar("cifar10", data_dir)  # already there: no second download
    assert len(calls) == 1

    ds = load_dataset(TrainConfig(dataset="cifar10", data_dir=str(data_dir)))
    assert ds.name == "cifar10" and not ds.synthetic and ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (6, 3, 32, 32) and ds.test_labels.tolist() == list(range(6))
    assert ds.train_images.is_contiguous() and ds.train_labels.dtype == torch.int64
    # CIFAR rows are channel-major (1024 R, 1024 G, 1024 B), i.e. already CHW.
    assert torch.equal(ds.train_images, torch.from_numpy(train_rows).view(20, 3, 32, 32))
    assert ds.train_labels[:4].tolist() == [1, 2, 3, 4]
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2470, 0.2435, 0.2616)
    sub = load_dataset(TrainConfig(dataset="cifar10", data_dir=str(data_dir), subset_train=10, subset_test=3))
    assert sub.train_images.shape[0] == 10 and sub.test_images.shape[0] == 3


def _tiny_cifar100(data_dir: Path, train: int = 12, test: int = 5) -> tuple[list[str], np.ndarray, list[int]]:
    """cifar-100-python/{train,test,meta} as torchvision reads them: pickles with data (N, 3072 uint8, channel-major)
    and fine_labels, and meta's fine_label_names. Returns the class names, the train pixels and labels."""
    rng = np.random.default_rng(1)
    folder = data_dir / "cifar-100-python"
    folder.mkdir(parents=True)
    names = [f"class{i:02d}" for i in range(100)]
    rows, labels = rng.integers(0, 256, (train, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 100, train)]
    (folder / "train").write_bytes(pickle.dumps({"data": rows, "fine_labels": labels, "coarse_labels": [0] * train}))
    (folder / "test").write_bytes(pickle.dumps({"data": rng.integers(0, 256, (test, 3072), dtype=np.uint8),
                                                "fine_labels": list(range(99, 99 - test, -1)), "coarse_labels": [0] * test}))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": names, "coarse_label_names": ["all"]}))
    return names, rows, labels


def test_cifar100_loads_from_its_extracted_files(tmp_path, no_md5):
    names, rows, labels = _tiny_cifar100(tmp_path / "data")
    assert cifar_files_present("cifar100", tmp_path / "data")
    ds = load_dataset(TrainConfig(dataset="cifar100", data_dir=str(tmp_path / "data")))
    assert (ds.name, ds.title, ds.synthetic) == ("cifar100", "CIFAR-100", False)
    assert ds.classes == names  # the 100 fine classes
    assert ds.train_images.shape == (12, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert torch.equal(ds.train_images, torch.from_numpy(rows).view(12, 3, 32, 32))
    assert ds.train_labels.tolist() == labels and ds.test_labels.tolist() == [99, 98, 97, 96, 95]
    assert ds.mean == (0.5071, 0.4865, 0.4409) and ds.std == (0.2673, 0.2564, 0.2762)


def test_cifar_download_offline_is_a_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as info:
        download_cifar("cifar100", tmp_path / "d")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "d") in message and "CIFAR-100" in message


def test_cifar_corrupted_files_are_a_data_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    assert cifar_files_present("cifar10", tmp_path)
    with pytest.raises(DataError, match="corrupted"):
        load_dataset(TrainConfig(dataset="cifar10", data_dir=str(tmp_path)))


# ---------------------------------------------------------------------------------------------
# Image folders


@pytest.fixture(scope="module")
def small_jpeg_tree(tmp_path_factory) -> Path:
    """20 train / 5 test real CIFAR-10 JPEGs per class, copied out of the shared tree."""
    source = cifar_jpeg_root(tmp_path_factory)
    dest = tmp_path_factory.mktemp("small-jpeg")
    for split, count in (("train", 20), ("test", 5)):
        for class_dir in sorted((source / split).iterdir()):
            target = dest / split / class_dir.name
            target.mkdir(parents=True)
            for path in sorted(class_dir.iterdir())[:count]:
                shutil.copy2(path, target / path.name)
    return dest


@pytest.fixture
def jpeg_tree(small_jpeg_tree, tmp_path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(small_jpeg_tree, root, copy_function=shutil.copy2)
    return root


def test_folder_loads_real_jpegs(jpeg_tree):
    ds = load_image_folder(jpeg_tree)
    assert ds.name == "folder" and not ds.synthetic and ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (200, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (50, 3, 32, 32) and ds.image_shape == (3, 32, 32)
    assert torch.bincount(ds.train_labels, minlength=10).tolist() == [20] * 10
    assert ds.train_labels.dtype == torch.int64 and ds.train_images.is_contiguous()
    # The 45th train image is the 5th file of 'bird' (class 2), decoded as PIL does.
    path = sorted((jpeg_tree / "train" / "bird").iterdir())[4]
    expected = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    assert ds.train_labels[44] == 2 and torch.equal(ds.train_images[44], expected)
    x = ds.train_images.double() / 255
    assert np.allclose(ds.mean, x.mean(dim=(0, 2, 3)).tolist(), atol=1e-6)
    assert "10 classes" in ds.description and "200 train / 50 test" in ds.description


def test_folder_via_load_dataset_with_val_split_and_subset(jpeg_tree):
    (jpeg_tree / "test").rename(jpeg_tree / "val")
    cfg = TrainConfig(dataset="folder", data_dir=str(jpeg_tree), subset_train=30, subset_test=10, seed=1)
    ds = load_dataset(cfg)
    assert ds.train_images.shape[0] == 30 and ds.test_images.shape[0] == 10
    assert torch.bincount(ds.test_labels, minlength=10).tolist() == [1] * 10


def test_folder_test_classes_map_to_train_indices(jpeg_tree):
    # Test has only two classes; their labels must still be the train indices.
    for class_dir in (jpeg_tree / "test").iterdir():
        if class_dir.name not in ("cat", "truck"):
            shutil.rmtree(class_dir)
    ds = load_image_folder(jpeg_tree)
    assert ds.num_classes == 10 and sorted(set(ds.test_labels.tolist())) == [3, 9]
    shutil.copytree(jpeg_tree / "test" / "cat", jpeg_tree / "test" / "unicorn")
    with pytest.raises(DataError, match="unicorn"):
        load_image_folder(jpeg_tree)


def _png_tree(root: Path, sizes: list[tuple[int, int]]) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i, (w, h) in enumerate(sizes):
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L").save(folder / f"{i}.png")
    return root


def test_folder_mixed_sizes_need_image_size(tmp_path):
    root = _png_tree(tmp_path / "mixed", [(32, 32), (40, 30), (20, 20)])
    with pytest.raises(DataError, match="--image-size") as info:
        load_image_folder(root, cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)
    ds = load_image_folder(root, image_size=24, cache_dir=tmp_path / "cache")
    assert ds.train_images.shape == (6, 3, 24, 24) and ds.test_images.shape == (6, 3, 24, 24)
    # Grey PNGs become RGB with equal channels.
    assert torch.equal(ds.train_images[:, 0], ds.train_images[:, 1])
    native = load_image_folder(_png_tree(tmp_path / "same", [(40, 30)]), cache_dir=tmp_path / "cache")
    assert native.image_shape == (3, 30, 40)


def test_folder_layout_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "r" / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="test/ or val/") as info:
        load_image_folder(tmp_path / "r")
    assert str(tmp_path / "r") in str(info.value) and "train/<class>" in str(info.value)
    (tmp_path / "r" / "test" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_image_folder(tmp_path / "r")
    (tmp_path / "q" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/"):
        load_image_folder(tmp_path / "q")


def test_folder_cache_hit_and_invalidation(jpeg_tree, monkeypatch):
    first = load_image_folder(jpeg_tree)
    cache_files = list((jpeg_tree / ".wrn_cache").glob("*.pt"))
    assert len(cache_files) == 1 and not list((jpeg_tree / ".wrn_cache").glob("*.tmp"))
    assert data.folder_cache_path(jpeg_tree) == cache_files[0]

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded although the folder is unchanged")

    monkeypatch.setattr(data, "_decode_images", no_decode)
    second = load_image_folder(jpeg_tree)
    assert torch.equal(first.train_images, second.train_images) and torch.equal(first.test_images, second.test_images)
    assert first.mean == second.mean and first.classes == second.classes

    # A different image size is a different cache entry.
    with pytest.raises(AssertionError, match="decoded"):
        load_image_folder(jpeg_tree, image_size=16)
    # Adding a file invalidates the cache.
    bird = sorted((jpeg_tree / "train" / "bird").iterdir())
    shutil.copy(bird[0], jpeg_tree / "train" / "bird" / "extra.jpg")
    with pytest.raises(AssertionError, match="decoded"):
        load_image_folder(jpeg_tree)
    monkeypatch.undo()
    grown = load_image_folder(jpeg_tree)
    assert grown.train_images.shape[0] == 201
    # Modifying a file (new mtime) invalidates it too, and so does removing one.
    monkeypatch.setattr(data, "_decode_images", no_decode)
    os.utime(bird[1], ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(AssertionError, match="decoded"):
        load_image_folder(jpeg_tree)
    monkeypatch.undo()
    load_image_folder(jpeg_tree)
    monkeypatch.setattr(data, "_decode_images", no_decode)
    bird[3].unlink()
    with pytest.raises(AssertionError, match="decoded"):
        load_image_folder(jpeg_tree)


def test_folder_cache_dir_and_home_fallback(jpeg_tree, tmp_path, monkeypatch):
    load_image_folder(jpeg_tree, cache_dir=tmp_path / "explicit")
    assert len(list((tmp_path / "explicit").glob("*.pt"))) == 1 and not (jpeg_tree / ".wrn_cache").exists()
    # <root>/.wrn_cache unusable (a file is in the way): falls back to ~/.cache/wrn_lab.
    (jpeg_tree / ".wrn_cache").write_text("in the way")
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    load_image_folder(jpeg_tree)
    assert len(list((tmp_path / "home" / ".cache" / "wrn_lab").glob("*.pt"))) == 1


def test_folder_process_pool_matches_serial_decode(jpeg_tree, tmp_path, monkeypatch):
    serial = load_image_folder(jpeg_tree, cache_dir=tmp_path / "c1")
    monkeypatch.setattr(data, "_SERIAL_DECODE_MAX", 10)
    monkeypatch.setattr(data, "_DECODE_CHUNK", 40)
    pooled = load_image_folder(jpeg_tree, cache_dir=tmp_path / "c2")
    assert torch.equal(serial.train_images, pooled.train_images) and torch.equal(serial.test_images, pooled.test_images)


def test_decoding_a_folder_reports_how_far_it_has_got(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_SERIAL_DECODE_MAX", 2)  # the process pool's path, on a small folder
    monkeypatch.setattr(data, "_DECODE_CHUNK", 3)
    root = _png_tree(tmp_path / "tree", [(8, 8)] * 4)  # 2 splits x 2 classes x 4 = 16 images
    heard = []
    load_image_folder(root, cache_dir=tmp_path / "cache", progress=lambda done, total: heard.append((done, total)))
    assert heard[-1] == (16, 16) and len(heard) == 6  # one report per chunk of 3, in order
    assert [done for done, _ in heard] == sorted(done for done, _ in heard)
    heard.clear()
    load_image_folder(root, cache_dir=tmp_path / "cache", progress=lambda done, total: heard.append((done, total)))
    assert heard == []  # from the cache: nothing to decode


def test_a_runs_status_says_how_many_images_it_has_decoded(tmp_path, monkeypatch):
    from wrn_core.engine import build
    from wrn_core.store import RunStore

    root = _png_tree(tmp_path / "tree", [(8, 8)] * 4)
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="folder", data_dir=str(root), epochs=1)
    run = RunStore(tmp_path / "runs").create(config, "decoding", hold="training")
    progress = build._decoding_status(run, config, every_s=0.0)
    progress(6, 16)
    assert run.read_status()["message"] == f"loading data: decoding 6 of 16 images from {root}"
    run.release()
