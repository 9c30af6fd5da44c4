"""Tests for the system monitor: process readings on the CPU, CUDA memory and NVML readings with a fake
GPU and a fake pynvml, the NVML handle behind CUDA_VISIBLE_DEVICES, and the summary of system records."""

from __future__ import annotations

import sys
import time
from types import ModuleType, SimpleNamespace

import psutil
import pytest
import torch

from wrn_core.engine import monitor as monitor_module
from wrn_core.engine.monitor import SystemMonitor, system_usage

MIB = 2**20
GPU_FIELDS = ("gpu_util", "gpu_memory_util", "gpu_memory_used_mb", "gpu_temp_c", "gpu_power_w")


class NVMLError(Exception):
    """What pynvml raises for a query the GPU does not support."""


def fake_pynvml(unsupported: tuple[str, ...] = (), uuids: tuple[str, ...] = ("GPU-abc",)) -> ModuleType:
    """A pynvml whose GPU answers every query but those named in `unsupported`; `calls` lists lookups."""
    nvml = ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.calls = []

    def query(name, value):
        def answer(*args):
            nvml.calls.append((name, args))
            if name in unsupported:
                raise NVMLError(name)
            return value(*args) if callable(value) else value
        return answer

    def by_uuid(uuid):
        if uuid not in uuids:
            raise NVMLError("not found")
        return f"handle-{uuid}"

    nvml.nvmlInit = query("nvmlInit", None)
    nvml.nvmlDeviceGetHandleByUUID = query("nvmlDeviceGetHandleByUUID", by_uuid)
    nvml.nvmlDeviceGetHandleByIndex = query("nvmlDeviceGetHandleByIndex", lambda i: f"handle-{i}")
    nvml.nvmlDeviceGetUtilizationRates = query("nvmlDeviceGetUtilizationRates", SimpleNamespace(gpu=87, memory=41))
    nvml.nvmlDeviceGetMemoryInfo = query("nvmlDeviceGetMemoryInfo", SimpleNamespace(used=3000 * MIB))
    nvml.nvmlDeviceGetTemperature = query("nvmlDeviceGetTemperature", 64)
    nvml.nvmlDeviceGetPowerUsage = query("nvmlDeviceGetPowerUsage", 250_500)  # milliwatts
    return nvml


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch sees one CUDA GPU (uuid abc) with 100 MiB allocated, 150 reserved and a 120 MiB peak."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid="abc"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda d: 100 * MIB)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda d: 150 * MIB)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 120 * MIB)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def use(monkeypatch, nvml: ModuleType | None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", nvml)  # None: `import pynvml` raises ImportError


def _burn_cpu(seconds: float) -> None:
    """Keep this process on the CPU for `seconds` of its own CPU time (not wall time: the machine may be busy)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(range(1000))


def test_a_cpu_reading_has_the_process_and_no_gpu():
    monitor = SystemMonitor(torch.device("cpu"))
    _burn_cpu(0.2)  # the process's CPU time since the monitor started its window
    reading = monitor.sample()
    assert reading["cpu_percent"] > 0  # it measured the work done, not a constant
    assert reading["rss_mb"] == pytest.approx(psutil.Process().memory_info().rss / 2**20, rel=0.2)
    assert all(reading[key] is None for key in ("cuda_allocated_mb", "cuda_reserved_mb", "cuda_peak_mb", *GPU_FIELDS))


def test_a_gpu_reading_has_cuda_memory_and_every_nvml_field(fake_gpu, monkeypatch):
    use(monkeypatch, fake_pynvml())
    reading = SystemMonitor(torch.device("cuda", 0)).sample()
    assert (reading["cuda_allocated_mb"], reading["cuda_reserved_mb"], reading["cuda_peak_mb"]) == (100, 150, 120)
    assert {key: reading[key] for key in GPU_FIELDS} == {
        "gpu_util": 87.0, "gpu_memory_util": 41.0, "gpu_memory_used_mb": 3000.0, "gpu_temp_c": 64.0, "gpu_power_w": 250.5}


@pytest.mark.parametrize("unsupported", ["nvmlDeviceGetPowerUsage", "nvmlDeviceGetTemperature", "nvmlDeviceGetUtilizationRates"])
def test_one_unsupported_nvml_query_leaves_the_other_readings(fake_gpu, monkeypatch, unsupported):
    use(monkeypatch, fake_pynvml(unsupported=(unsupported,)))
    reading = SystemMonitor(torch.device("cuda", 0)).sample()
    missing = {"nvmlDeviceGetPowerUsage": {"gpu_power_w"}, "nvmlDeviceGetTemperature": {"gpu_temp_c"},
               "nvmlDeviceGetUtilizationRates": {"gpu_util", "gpu_memory_util"}}[unsupported]
    assert {key for key in GPU_FIELDS if reading[key] is None} == missing, reading


def test_without_nvml_the_gpu_load_is_none_and_cuda_memory_stays(fake_gpu, monkeypatch):
    use(monkeypatch, None)
    reading = SystemMonitor(torch.device("cuda", 0)).sample()
    assert reading["cuda_allocated_mb"] == 100 and all(reading[key] is None for key in GPU_FIELDS)
    failing = fake_pynvml(unsupported=("nvmlInit",))  # a library but no driver
    use(monkeypatch, failing)
    reading = SystemMonitor(torch.device("cuda", 0)).sample()
    assert all(reading[key] is None for key in GPU_FIELDS) and [c[0] for c in failing.calls] == ["nvmlInit"]


def test_the_nvml_handle_is_found_by_uuid_else_by_the_physical_index(fake_gpu, monkeypatch):
    nvml = fake_pynvml()
    use(monkeypatch, nvml)
    assert monitor_module._nvml_handle(torch.device("cuda", 0)) == "handle-GPU-abc"
    # No uuid match: torch's cuda:1 is the physical GPU CUDA_VISIBLE_DEVICES names second.
    use(monkeypatch, fake_pynvml(uuids=()))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert monitor_module._nvml_handle(torch.device("cuda", 1)) == "handle-5"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert monitor_module._nvml_handle(torch.device("cuda", 1)) == "handle-1"


def test_the_monitor_is_due_once_per_interval():
    monitor = SystemMonitor(torch.device("cpu"), interval_s=3600.0)
    assert monitor.due()
    monitor.sample()
    assert not monitor.due()


def test_system_usage_takes_peaks_and_means_of_the_values_present():
    records = [
        {"kind": "system", "cuda_peak_mb": 100.0, "rss_mb": 500.0, "gpu_util": 50.0, "cpu_percent": 90.0},
        {"kind": "system", "cuda_peak_mb": 300.0, "rss_mb": None, "gpu_util": 70.0, "cpu_percent": 110.0},
        {"kind": "system", "cuda_peak_mb": None, "rss_mb": 700.0, "gpu_util": None, "cpu_percent": None},
        {"kind": "epoch", "cuda_peak_mb": 9999.0},  # not a system record
    ]
    assert system_usage(records) == {"samples": 3.0, "peak_cuda_mb": 300.0, "peak_rss_mb": 700.0,
                                       "mean_gpu_util": 60.0, "mean_cpu_percent": 100.0}
    assert system_usage([]) == {"samples": 0.0, "peak_cuda_mb": None, "peak_rss_mb": None,
                                  "mean_gpu_util": None, "mean_cpu_percent": None}
