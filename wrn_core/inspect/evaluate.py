"""Evaluate a run's latest checkpoint on its own data: accuracy, confusions, calibration, width use; cached per step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from wrn_core.config import TrainConfig
from wrn_core.data import DeviceLoader, Dataset, scan_folder
from wrn_core.data.base import TEST_SUBSET_SEED_OFFSET, balanced_subset
from wrn_core.engine.devices import resolve_device
from wrn_core.engine.step import autocast
from wrn_core.inspect.metrics import summarise
from wrn_core.inspect.network import Network, checkpoint_step, load_network
from wrn_core.engine.width import WidthMeter, group_totals
from wrn_core.store import Run, RunWriteError
from wrn_core.store.atomic import write_atomic

SPLITS = ("test", "train")
TTA_MODES = ("none", "flip")
CACHE_VERSION = 1  # bump when the evaluation's fields change, so old caches are recomputed

Progress = Callable[[int, int], None]  # (images done, images in all)


def cache_path(run: Run, split: str = "test", tta: str = "none") -> Path:
    return run.path / f"evaluation-{split}-{tta}.json"


def read_cached(run: Run, split: str = "test", tta: str = "none", step: int | None = None) -> dict[str, Any] | None:
    """The cached evaluation when it was made from the checkpoint now there (its step), else None."""
    try:
        cached = json.loads(cache_path(run, split, tta).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cached, dict) or cached.get("cache_version") != CACHE_VERSION:
        return None
    current = checkpoint_step(run) if step is None else step
    return cached if cached.get("step") == current else None


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose {' or '.join(choices)}")


def evaluate_run(run: Run, split: str = "test", tta: str = "none", device: str = "cpu", use_cache: bool = True,
                 progress: Progress | None = None) -> dict[str, Any]:
    """The evaluation of the run's latest checkpoint (see README "Inspect a trained network"), predictions included.

    Reads config.json, checkpoint.pt and the data, writes only evaluation-<split>-<tta>.json; never the lock.
    """
    _check_choice("split", split, SPLITS)
    _check_choice("TTA mode", tta, TTA_MODES)
    target = resolve_device(device)
    step = checkpoint_step(run)
    if use_cache:
        cached = read_cached(run, split, tta, step)
        if cached is not None:
            return {**cached, "cached": True}
    network, data = load_network(run)
    result = evaluate_network(network, data, split, tta, target, progress)
    try:
        write_atomic(cache_path(run, split, tta), json.dumps(result).encode(), "the evaluation cache")
    except RunWriteError as exc:  # a read-only run directory still gets its answer
        result["cache_error"] = str(exc)
    return {**result, "cached": False}


def evaluate_network(network: Network, data: Dataset, split: str, tta: str, device: torch.device,
                     progress: Progress | None = None, width_use: bool = True) -> dict[str, Any]:
    """Run the network over one split exactly as training's evaluation does and summarise it.

    width_use=False leaves the ReLU hooks out (empty width_use rows): what bench.inspect_eval compares.
    """
    images = data.test_images if split == "test" else data.train_images
    labels = data.test_labels if split == "test" else data.train_labels
    outputs, width_rows = _forward(network, images, labels, tta, device, network.config.eval_batch_size, progress,
                                   width_use)
    label_np = labels.numpy()
    plain_pred = outputs["pred"]
    # The predictions every figure is drawn from: the averaged ones with TTA.
    if tta == "flip":
        pred, confidence = outputs["tta_pred"], outputs["tta_conf"]
    else:
        pred, confidence = plain_pred, outputs["plain_conf"]
    result: dict[str, Any] = {
        "cache_version": CACHE_VERSION,
        "run": network.run, "epoch": network.epoch, "step": network.step, "batch_in_epoch": network.batch_in_epoch,
        "split": split, "tta": tta, "images": int(label_np.shape[0]), "classes": network.classes,
        "dataset": data.name, "image_shape": list(network.image_shape),
        "mean": list(network.mean), "std": list(network.std),
        "accuracy": float((plain_pred == label_np).mean()) if label_np.size else 0.0,
        "loss": outputs["loss"],
    }
    if tta == "flip":
        result["tta_accuracy"] = float((pred == label_np).mean()) if label_np.size else 0.0
        result["tta_loss"] = outputs["tta_loss"]
    result.update(summarise(label_np, pred, confidence, network.classes))
    result["width_use"] = width_rows
    result["width_groups"] = group_totals(width_rows)
    result["predictions"] = _prediction_rows(label_np, pred, confidence, _relative_paths(network.config, data, split))
    return result


def _forward(network: Network, images: torch.Tensor, labels: torch.Tensor, tta: str, device: torch.device,
             batch_size: int, progress: Progress | None, width_use: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Logit-level outputs over the split (plain, and averaged with the mirror image for TTA) and width use."""
    channels_last = device.type in ("cuda", "cpu")  # as the engine runs it, so the figures match its records
    model = network.model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    loader = DeviceLoader(images.to(device), labels.to(device), batch_size, network.mean, network.std,
                          train=False, augment=False, channels_last=channels_last)
    meter = WidthMeter(model) if width_use else None
    preds, confs, loss_sum = [], [], torch.zeros((), device=device, dtype=torch.float64)
    tta_preds, tta_confs, tta_loss = [], [], torch.zeros((), device=device, dtype=torch.float64)
    done, total = 0, int(labels.shape[0])
    model.eval()
    try:
        with torch.no_grad(), autocast(device):
            for x, y in loader.epoch(0):
                logits = model(x).float()
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
                probs = logits.softmax(dim=1)
                confs.append(probs.max(dim=1).values)
                preds.append(logits.argmax(dim=1))
                if tta == "flip":
                    if meter is not None:
                        meter.paused = True  # width use describes the images themselves, not their mirrors
                    mean_logits = (logits + model(x.flip(3)).float()) / 2
                    if meter is not None:
                        meter.paused = False
                    tta_loss += F.cross_entropy(mean_logits, y, reduction="sum").double()
                    tta_confs.append(mean_logits.softmax(dim=1).max(dim=1).values)
                    tta_preds.append(mean_logits.argmax(dim=1))
                done += int(y.shape[0])
                if progress is not None:
                    progress(done, total)
        rows = meter.rows() if meter is not None else []
    finally:
        if meter is not None:
            meter.remove()
        network.model.to("cpu")
    n = max(1, total)
    out: dict[str, Any] = {
        "pred": _numpy(preds, np.int64), "plain_conf": _numpy(confs, np.float64), "loss": float(loss_sum) / n,
    }
    if tta == "flip":
        out.update(tta_pred=_numpy(tta_preds, np.int64), tta_conf=_numpy(tta_confs, np.float64), tta_loss=float(tta_loss) / n)
    return out, rows


def _numpy(parts: list[torch.Tensor], dtype: Any) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return torch.cat(parts).cpu().numpy().astype(dtype)


def _prediction_rows(labels: np.ndarray, preds: np.ndarray, confidence: np.ndarray,
                     paths: list[str] | None) -> list[dict[str, Any]]:
    rows = []
    for i in range(labels.shape[0]):
        row = {"index": i, "label": int(labels[i]), "pred": int(preds[i]), "confidence": round(float(confidence[i]), 6)}
        if paths is not None:
            row["path"] = paths[i]
        rows.append(row)
    return rows


def _relative_paths(config: TrainConfig, data: Dataset, split: str) -> list[str] | None:
    """For a folder dataset, each evaluated image's file relative to the data root, in the dataset's order.

    Re-derives the loader's order: classes sorted, files sorted, unreadable files left out, then the
    class-balanced subset with the seed the data used. None when it does not line up (then no paths).
    """
    if data.name != "folder" or not config.data_dir:
        return None
    scan = scan_folder(config.data_dir)
    files = scan.test_files if split == "test" else scan.train_files
    index = {name: k for k, name in enumerate(scan.classes)}
    skipped = set(data.skipped)
    paths, labels = [], []
    for name in sorted(files):
        for path in files[name]:
            relative = path.relative_to(scan.root).as_posix()
            if relative not in skipped:
                paths.append(relative)
                labels.append(index[name])
    subset = config.subset_test if split == "test" else config.subset_train
    if subset is not None:
        seed = config.seed + (TEST_SUBSET_SEED_OFFSET if split == "test" else 0)
        chosen = balanced_subset(torch.tensor(labels, dtype=torch.int64), subset, seed).tolist()
        paths = [paths[i] for i in chosen]
    expected = data.test_labels if split == "test" else data.train_labels
    return paths if len(paths) == int(expected.shape[0]) else None
