"""The devices this machine can train on (cpu, each cuda:i, mps), which of them a device choice means, and
whether a run's predicted training memory fits the chosen one (the memory pre-flight)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrn_core.config import ConfigError, TrainConfig, check_device_name
from wrn_core.model.memory import predicted_training_mb


@dataclass(frozen=True)
class DeviceInfo:
    """One training device as a user picks it."""

    name: str  # cpu | cuda:0 | cuda:1 | ... | mps
    kind: str  # cpu | cuda | mps
    description: str  # e.g. "NVIDIA H100 80GB HBM3"
    total_memory_mb: float | None  # device memory (CUDA), system RAM (cpu); None where not known
    free_memory_mb: float | None  # free device memory (CUDA), available RAM (cpu)
    compute_capability: str | None  # e.g. "9.0" (CUDA)

    def label(self) -> str:
        """A line for a device box: 'cuda:0 — NVIDIA H100 (79.2 GiB free of 79.6 GiB)'."""
        if self.free_memory_mb is not None and self.total_memory_mb is not None:
            return f"{self.name} — {self.description} ({self.free_memory_mb / 1024:.1f} GiB free of {self.total_memory_mb / 1024:.1f} GiB)"
        return f"{self.name} — {self.description}"


def _cpu_description() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def list_devices() -> list[DeviceInfo]:
    """cpu, then every visible CUDA GPU with its memory and compute capability, then mps when present."""
    import os

    total = free = None
    try:
        import psutil

        memory = psutil.virtual_memory()
        total, free = memory.total / 2**20, memory.available / 2**20  # system RAM: what a CPU run can use
    except Exception:  # noqa: BLE001 - psutil missing: memory unknown
        pass
    devices = [DeviceInfo("cpu", "cpu", f"{_cpu_description()} ({os.cpu_count()} logical CPUs)", total, free, None)]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            devices.append(DeviceInfo(
                f"cuda:{index}", "cuda", props.name, total / 2**20, free / 2**20, f"{props.major}.{props.minor}",
            ))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "mps", "Apple GPU (Metal)", None, None, None))
    return devices


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable explicit choice is a ConfigError."""
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name} was asked for but no CUDA GPU is available; use --device cpu or auto")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError(f"device {name} does not exist: this machine has {count} CUDA GPU{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps was asked for but is not available; use --device cpu or auto")
    return torch.device(name)


def eligible_slots(choice: str, slots: list[str]) -> list[str]:
    """The job-queue slots a device choice may run on.

    Slots are device names ("cpu", "cuda:0", ...); several slots of one device carry a suffix
    ("cpu#0", "cpu#1") so that one device can train more than one job at a time.
    """
    check_device_name(choice)
    device_of = {slot: slot.split("#", 1)[0] for slot in slots}
    if choice == "auto":
        for kind in ("cuda", "mps", "cpu"):
            found = [s for s in slots if device_of[s].split(":", 1)[0] == kind]
            if found:
                return found
        return []
    if choice in ("cuda", "cpu", "mps"):
        return [s for s in slots if device_of[s].split(":", 1)[0] == choice]
    return [s for s in slots if device_of[s] == choice]


@dataclass(frozen=True)
class MemoryCheck:
    """A run's predicted training memory against what its device has free."""

    device: str  # cpu | cuda:0 | ...
    predicted_mb: float
    free_mb: float | None  # None: unknown (no psutil, mps)
    per_process: bool  # data-parallel: the prediction is per GPU (each holds its share of the batch)

    @property
    def fits(self) -> bool:
        return self.free_mb is None or self.predicted_mb <= self.free_mb

    def message(self) -> str:
        where = "RAM" if self.device == "cpu" else self.device
        free = f"{self.free_mb:,.0f} MiB free" if self.free_mb is not None else "free memory unknown"
        return f"predicted training memory {self.predicted_mb:,.0f} MiB{' per process' if self.per_process else ''} against {free} on {where}"


def check_memory(config: TrainConfig, image_size: tuple[int, int] = (32, 32)) -> MemoryCheck:
    """The pre-flight: predicted training memory against the chosen device's free memory (RAM on the CPU)."""
    device = resolve_device(config.device)
    name = "cpu"
    if device.type == "cuda":
        name = f"cuda:{device.index if device.index is not None else 0}"
    elif device.type == "mps":
        name = "mps"
    free = next((d.free_memory_mb for d in list_devices() if d.name == name), None)
    return MemoryCheck(name, predicted_training_mb(config, device.type, image_size), free, config.world_size > 1)
