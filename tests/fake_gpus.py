"""A machine with two CUDA GPUs as torch and NVML report them, for the tests of device logic (no real GPU needed)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

GIB = 2**30
NAMES = {0: "NVIDIA H100 80GB HBM3", 1: "NVIDIA A100-SXM4-40GB"}
MEMORY = {0: (70 * GIB, 80 * GIB), 1: (10 * GIB, 40 * GIB)}  # (free, total) bytes


def fake_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees cuda:0 (H100, 70 of 80 GiB free) and cuda:1 (A100, 10 of 40 GiB free); no mps."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: SimpleNamespace(name=NAMES[i], major=9 - i, minor=0, total_memory=MEMORY[i][1], uuid=f"u{i}"))
    # Free memory comes from NVML, by each GPU's UUID (no CUDA context on GPUs a process does not train on).
    nvml = SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByUUID=lambda uuid: int(uuid[len("GPU-u"):]),
        nvmlDeviceGetMemoryInfo=lambda index: SimpleNamespace(free=MEMORY[index][0], total=MEMORY[index][1]),
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
