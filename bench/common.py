"""Shared benchmark helpers: MAC counting, the CIFAR-10 JPEG folder, windowed rates, environment facts.

Imports only torch, numpy and the standard library (plus wrn_core.model / wrn_core.config), so the
benchmarks run on a GPU machine without streamlit, plotly, torchinfo or tqdm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from wrn_core.config import WRNConfig
from wrn_core.model import build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
TARBALL_NAME = "cifar10-jpeg.tar.gz"
# Where the tarball is looked for, in order: inside the repo (how it travels to a lent GPU machine,
# `.data/` is git-excluded), then the project's shared data folder next to the checkout.
TARBALL_CANDIDATES = (REPO_ROOT / ".data" / TARBALL_NAME, REPO_ROOT.parent / "shared" / "data" / TARBALL_NAME)

# Peak used for MFU on CUDA: the bf16 dense rate measured on this project's lent H100/H200 machines
# (an 8192^3 bf16 matmul ran at 769-798 TFLOP/s, .library/device/KINDS.md). NVIDIA's datasheet says
# about 989 TFLOP/s dense bf16 for an H100 SXM; MFU against that is 790/989 = 0.80 of the figure below.
CUDA_PEAK_FLOPS = 790e12
CUDA_PEAK_NAME = "H100/H200 bf16 dense, about 790 TFLOP/s as measured by an 8192^3 matmul (project device notes; datasheet 989)"


# ---------------------------------------------------------------------------------------------
# Multiply-accumulates


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """--threads: torch's CPU thread count, shared by the benchmarks."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's own). On a shared CPU use 1: with 2 threads on 2 busy "
                             "cores every parallel op waits for a descheduled thread and steps slow down up to 60x")


def count_macs(model: nn.Module, input_shape: Sequence[int] = (3, 32, 32)) -> int:
    """Multiply-accumulates of one image's forward pass, counted by forward hooks on a 1-image batch.

    Conv2d: weight elements x output height x output width (bias, if any, x output positions);
    Linear: weight + bias elements. This is how torchinfo counts convolutions and linear layers
    ("mult_adds"); torchinfo also adds BatchNorm's 2C per image, which is below 0.01% for a WRN
    and left out here. A training step costs about 3x the forward (the backward computes two
    products per forward product), so training FLOPs per image = 2 x 3 x MACs = 6 x MACs.
    """
    total = 0

    def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            positions = int(output.shape[-1] * output.shape[-2])  # output H x W for one image
            total += module.weight.numel() * positions
            if module.bias is not None:
                total += module.bias.numel() * positions
        elif isinstance(module, nn.Linear):
            total += module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return int(total)


def wrn_macs(depth: int, widen_factor: int, num_classes: int = 10, image_size: int = 32) -> int:
    """MACs per image of a fresh WRN-depth-k on image_size x image_size RGB input."""
    config = WRNConfig(depth=depth, widen_factor=widen_factor, num_classes=num_classes)
    return count_macs(build_model(config), (3, image_size, image_size))


# ---------------------------------------------------------------------------------------------
# The CIFAR-10 JPEG folder


def find_tarball(explicit: str | Path | None = None) -> Path | None:
    """The CIFAR-10 JPEG tarball: an explicit path, else .data/ in the repo, else ../shared/data/."""
    candidates = [Path(explicit)] if explicit else list(TARBALL_CANDIDATES)
    for path in candidates:
        if path.is_file():
            return path
    return None


def _is_image_root(path: Path) -> bool:
    return (path / "train").is_dir() and ((path / "test").is_dir() or (path / "val").is_dir())


def prepare_image_folder(data_dir: str | Path | None = None, cache_root: str | Path | None = None) -> Path:
    """An unpacked ImageFolder root (train/<class>/*.jpg, test/<class>/*.jpg).

    data_dir may be an unpacked root (used as is) or a .tar.gz; without it the tarball is found in
    .data/ or ../shared/data/. A tarball is unpacked once into cache_root (default: the system temp
    dir, or $WRN_BENCH_CACHE), keyed by its size and mtime, and reused; the engine then caches the
    decoded tensors inside that folder (.wrn_cache/), so only the first run pays the JPEG decode.
    """
    if data_dir is not None and Path(data_dir).is_dir():
        root = Path(data_dir)
        if not _is_image_root(root):
            raise SystemExit(f"{root} is not an image folder: expected {root}/train/<class>/ and {root}/test/<class>/")
        return root
    tarball = find_tarball(data_dir)
    if tarball is None:
        where = data_dir or " or ".join(str(p) for p in TARBALL_CANDIDATES)
        raise SystemExit(f"CIFAR-10 JPEG tarball not found at {where}; pass --data-dir DIR (an unpacked folder or the .tar.gz)")
    stat = tarball.stat()
    base = Path(cache_root or os.environ.get("WRN_BENCH_CACHE") or tempfile.gettempdir())
    target = base / f"wrn-bench-cifar10-jpeg-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / ".complete").is_file() and _is_image_root(target):
        return target
    base.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=base))
    try:
        if shutil.which("tar"):
            subprocess.run(["tar", "xzf", str(tarball), "-C", str(partial)], check=True)
        else:
            with tarfile.open(tarball) as archive:
                archive.extractall(partial, filter="data")
        (partial / ".complete").write_text(f"{tarball}\n")
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target


# ---------------------------------------------------------------------------------------------
# Rates over windows


def rates_from_points(
    points: Iterable[tuple[int, int, float]],
    steps_per_epoch: int,
    warmup_steps: int,
) -> list[float]:
    """Images/s of each interval between consecutive (step, images_seen, train_seconds) points.

    Intervals that end at or before warmup_steps are dropped (first-step, cuDNN autotune and
    compile costs), and so are intervals that cross an epoch boundary, whose time includes the
    test evaluation. Points must come from one uninterrupted run (no resume).
    """
    ordered = sorted(points)
    rates = []
    for (step_a, seen_a, time_a), (step_b, seen_b, time_b) in zip(ordered, ordered[1:]):
        if step_b <= warmup_steps or step_a < warmup_steps:
            continue
        if (step_a - 1) // steps_per_epoch != (step_b - 1) // steps_per_epoch:
            continue
        seconds = time_b - time_a
        if seconds > 0:
            rates.append((seen_b - seen_a) / seconds)
    return rates


def step_points(records: Iterable[dict[str, Any]]) -> list[tuple[int, int, float]]:
    """(step, images_seen, time) of every "step" record of metrics.jsonl."""
    return [(int(r["step"]), int(r["images_seen"]), float(r["time"])) for r in records if r.get("kind") == "step"]


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


# ---------------------------------------------------------------------------------------------
# Environment


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()})"


def environment(device: torch.device) -> dict[str, Any]:
    """Facts that make a figure reproducible: versions, device, host."""
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def peak_for(device: torch.device) -> tuple[float | None, str | None]:
    """(peak FLOP/s, its name) for MFU; None on CPU, where no peak is stated."""
    if device.type == "cuda":
        return CUDA_PEAK_FLOPS, CUDA_PEAK_NAME
    return None, None


def write_json(path: str | Path, payload: Any) -> Path:
    """Write JSON atomically (the benchmarks rewrite their file after each model, so a timeout keeps results)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
