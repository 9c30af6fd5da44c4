"""The devices this machine can train on (cpu, each cuda:i, mps), which of them a device choice means, and
whether a run's predicted training memory fits the chosen one (the memory pre-flight)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

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
            # Free memory from NVML: torch's mem_get_info would create a CUDA context on every GPU listed.
            free_mb = nvml_free_mb(str(getattr(props, "uuid", "")))
            devices.append(DeviceInfo(
                f"cuda:{index}", "cuda", props.name, props.total_memory / 2**20, free_mb, f"{props.major}.{props.minor}",
            ))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(DeviceInfo("mps", "mps", "Apple GPU (Metal)", None, None, None))
    return devices


def _nvml() -> Any | None:
    """pynvml, initialised, or None (no nvidia-ml-py, no driver)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no library or no driver: NVML's figures are simply not known
        return None


def nvml_free_mb(uuid: str) -> float | None:
    """Free memory (MiB) of the GPU with this UUID as NVML sees it, or None where NVML cannot say."""
    nvml = _nvml()
    if nvml is None or not uuid:
        return None
    try:
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        return nvml.nvmlDeviceGetMemoryInfo(handle).free / 2**20
    except Exception:  # noqa: BLE001 - e.g. a MIG instance NVML names otherwise
        return None


def unusable_gpu_reason() -> str | None:
    """Why the NVIDIA GPUs that NVML sees cannot be used by this torch, with the fix, in one line; None when
    torch can use them or there are none. (A CPU-only wheel, or a driver older than the wheel's CUDA.)"""
    if torch.cuda.is_available():
        return None
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        count = nvml.nvmlDeviceGetCount()
        if count < 1:
            return None
        name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))
        driver = nvml.nvmlSystemGetDriverVersion()
        driver_cuda = nvml.nvmlSystemGetCudaDriverVersion_v2()  # e.g. 12020 for CUDA 12.2
    except Exception:  # noqa: BLE001
        return None
    name = name.decode() if isinstance(name, bytes) else str(name)
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    gpus = f"{count} NVIDIA GPU{'s' if count != 1 else ''} ({name}, driver {driver})"
    built = torch.version.cuda
    if not built:
        return f"{gpus} found, but this torch {torch.__version__} is a CPU-only build: install a CUDA build of torch (README, 'GPUs')"
    supports = f"{driver_cuda // 1000}.{driver_cuda % 1000 // 10}"
    wanted = tuple(int(part) for part in built.split(".")[:2])
    if (driver_cuda // 1000, driver_cuda % 1000 // 10) < wanted:
        return (f"{gpus} found, but the driver supports CUDA {supports} and this torch was built for CUDA {built}: "
                f"update the NVIDIA driver, or install the torch build for CUDA {supports} (README, 'GPUs')")
    return f"{gpus} found, but torch cannot use them (CUDA {built}, driver CUDA {supports}): check CUDA_VISIBLE_DEVICES and the driver"


def child_visible_devices(index: int, parent: str | None = None) -> str:
    """The CUDA_VISIBLE_DEVICES a child gets to see this process's cuda:`index` as its cuda:0.

    Through the parent's own list when it has one ("2,3", GPU UUIDs or MIG instances), so a job on
    cuda:1 of a process that sees "2,3" trains on physical GPU 3, not 1.
    """
    parent = os.environ.get("CUDA_VISIBLE_DEVICES") if parent is None else parent
    visible = [entry.strip() for entry in (parent or "").split(",") if entry.strip()]
    if not visible:
        return str(index)
    if index >= len(visible):
        raise ConfigError(f"cuda:{index} is not among this process's visible GPUs ({parent})")
    return visible[index]


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
        for device_type in ("cuda", "mps", "cpu"):
            found = [s for s in slots if device_of[s].split(":", 1)[0] == device_type]
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
    if free is None and device.type == "cuda":
        # NVML could not say: ask the chosen GPU itself, the one device this process is about to train on.
        free = torch.cuda.mem_get_info(device.index if device.index is not None else torch.cuda.current_device())[0] / 2**20
    return MemoryCheck(name, predicted_training_mb(config, device.type, image_size), free, config.world_size > 1)
