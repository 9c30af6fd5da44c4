"""System metrics while training: device memory (torch.cuda), GPU load (NVML, optional), process CPU and memory (psutil).

The trainer asks for a `system` record every few seconds; sampling never synchronises the GPU.
Each source is optional: without psutil, an NVIDIA driver or nvidia-ml-py the fields are None.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from wrn_core.store.records import EPOCH, SYSTEM, of_kind

SYSTEM_INTERVAL_S = 5.0  # seconds between `system` records while training
MIB = 2**20


def _nvml_handle(device: torch.device) -> Any | None:
    """The NVML handle of the GPU torch calls `device`, or None (no driver, no nvidia-ml-py, no match)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no library, no driver: GPU load is simply not reported
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        # By UUID: CUDA_VISIBLE_DEVICES renumbers GPUs for torch, never for NVML.
        uuid = str(torch.cuda.get_device_properties(index).uuid)
        return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
    except Exception:  # noqa: BLE001
        pass
    try:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        physical = int(ids[index]) if ids and ids[index].isdigit() else index
        return pynvml.nvmlDeviceGetHandleByIndex(physical)
    except Exception:  # noqa: BLE001
        return None


def nvml_readings(handle: Any) -> dict[str, float | None]:
    """GPU load, memory, temperature and power of one NVML handle, each queried on its own: a query the
    GPU does not support (power on some boards, temperature on MIG) leaves that field None, not all five."""
    import pynvml

    def read(query: Any) -> Any:
        try:
            return query()
        except Exception:  # noqa: BLE001 - NVMLError_NotSupported and kin
            return None

    rates = read(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    memory = read(lambda: pynvml.nvmlDeviceGetMemoryInfo(handle))
    temperature = read(lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
    power = read(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))  # milliwatts
    return {
        "gpu_util": float(rates.gpu) if rates is not None else None,
        "gpu_memory_util": float(rates.memory) if rates is not None else None,
        "gpu_memory_used_mb": memory.used / MIB if memory is not None else None,
        "gpu_temp_c": float(temperature) if temperature is not None else None,
        "gpu_power_w": power / 1000.0 if power is not None else None,
    }


class SystemMonitor:
    """Samples the training process and its device; `due()` says when the next record is wanted."""

    def __init__(self, device: torch.device, interval_s: float = SYSTEM_INTERVAL_S) -> None:
        self.device = device
        self.interval_s = interval_s
        self.last = -float("inf")
        try:
            import psutil

            self.process = psutil.Process()
            self.process.cpu_percent(None)  # the first call only starts the measuring window
        except Exception:  # noqa: BLE001 - psutil missing: no CPU/RSS fields
            self.process = None
        self.nvml = _nvml_handle(device) if device.type == "cuda" else None

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.interval_s

    def sample(self) -> dict[str, Any]:
        """One reading: process CPU % (100 = one core) and RSS; CUDA memory and GPU load where there is a GPU."""
        self.last = time.monotonic()
        reading: dict[str, Any] = {
            "cpu_percent": None, "rss_mb": None, "cuda_allocated_mb": None, "cuda_reserved_mb": None,
            "cuda_peak_mb": None, "gpu_util": None, "gpu_memory_util": None, "gpu_memory_used_mb": None,
            "gpu_temp_c": None, "gpu_power_w": None,
        }
        if self.process is not None:
            try:
                reading["cpu_percent"] = float(self.process.cpu_percent(None))
                reading["rss_mb"] = self.process.memory_info().rss / MIB
            except Exception:  # noqa: BLE001
                pass
        if self.device.type == "cuda":
            reading["cuda_allocated_mb"] = torch.cuda.memory_allocated(self.device) / MIB
            reading["cuda_reserved_mb"] = torch.cuda.memory_reserved(self.device) / MIB
            reading["cuda_peak_mb"] = torch.cuda.max_memory_allocated(self.device) / MIB
        if self.nvml is not None:
            reading.update(nvml_readings(self.nvml))
        return reading


def system_usage(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """Peak memory and mean load over a run's `system` records (for runs show and the Runs page)."""
    system = list(of_kind(records, SYSTEM))

    def values(key: str) -> list[float]:
        return [float(r[key]) for r in system if isinstance(r.get(key), (int, float))]

    def peak(key: str) -> float | None:
        found = values(key)
        return max(found) if found else None

    def mean(key: str) -> float | None:
        found = values(key)
        return sum(found) / len(found) if found else None

    return {
        "samples": float(len(system)),
        "peak_cuda_mb": peak("cuda_peak_mb"),
        "peak_rss_mb": peak("rss_mb"),
        "mean_gpu_util": mean("gpu_util"),
        "mean_cpu_percent": mean("cpu_percent"),
    }


def measured_memory(store: Any, model: Any) -> list[dict[str, Any]]:
    """Runs of this model (depth, k, dropout, classes) with their batch size, device and measured peaks.

    peak_cuda_mb is torch's max_memory_allocated (what the training-memory prediction estimates);
    peak_rss_mb is the process's resident memory, which on the CPU includes the Python and torch runtime.
    """
    found = []
    for name in store.names():
        run = store.get(name)
        try:
            config = run.read_config()
        except Exception:  # noqa: BLE001 - a damaged run just does not count here
            continue
        m = config.model
        if (m.depth, m.widen_factor, m.dropout, m.num_classes) != (model.depth, model.widen_factor, model.dropout, model.num_classes):
            continue
        records = run.read_metrics()
        summary = system_usage(records)
        epoch_peaks = [r["peak_mem_mb"] for r in of_kind(records, EPOCH) if isinstance(r.get("peak_mem_mb"), (int, float))]
        peak_cuda = max([v for v in (summary["peak_cuda_mb"], *epoch_peaks) if v is not None], default=None)
        if peak_cuda is None and summary["peak_rss_mb"] is None:
            continue
        found.append({
            "run": name, "batch_size": config.batch_size, "optimizer": config.optimizer,
            "device": run.status().device or config.device, "world_size": config.world_size,
            "peak_cuda_mb": peak_cuda, "peak_rss_mb": summary["peak_rss_mb"],
        })
    return found
