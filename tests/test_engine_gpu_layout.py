"""Tests of the CUDA logic that run without a GPU: device lists, visible-device mapping, NVML fallbacks."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from wrn_core.config import ConfigError
from wrn_core.engine import devices
from wrn_core.engine.monitor import nvml_readings


class FakeNVML(types.ModuleType):
    """A pynvml with two GPUs; `unsupported` names the queries that raise as NVML does for a missing sensor."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, unsupported: tuple[str, ...] = (), driver_cuda: int = 13000) -> None:
        super().__init__("pynvml")
        self.unsupported = unsupported
        self.driver_cuda = driver_cuda
        self.asked: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        self.asked.append(name)
        if name in self.unsupported:
            raise RuntimeError(f"NVML {name}: Not Supported")

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"handle-{index}"

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.asked.append(uuid)
        return f"handle-{uuid}"

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return b"NVIDIA H200"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "535.104.05"

    def nvmlSystemGetCudaDriverVersion_v2(self) -> int:
        return self.driver_cuda

    def nvmlDeviceGetUtilizationRates(self, handle: str):
        self._maybe_fail("utilization")
        return types.SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: str):
        self._maybe_fail("memory")
        return types.SimpleNamespace(used=3 * 2**30, free=100 * 2**30, total=141 * 2**30)

    def nvmlDeviceGetTemperature(self, handle: str, sensor: int) -> int:
        self._maybe_fail("temperature")
        return 51

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        self._maybe_fail("power")
        return 350_000  # milliwatts


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_one_unsupported_nvml_query_leaves_only_its_own_reading_empty(nvml):
    nvml.unsupported = ("power",)
    reading = nvml_readings("handle-0")
    assert reading["gpu_power_w"] is None
    assert reading["gpu_util"] == 87.0 and reading["gpu_memory_util"] == 40.0
    assert reading["gpu_memory_used_mb"] == 3 * 1024 and reading["gpu_temp_c"] == 51.0
    nvml.unsupported = ("utilization", "temperature")
    reading = nvml_readings("handle-0")
    assert reading["gpu_util"] is None and reading["gpu_temp_c"] is None and reading["gpu_power_w"] == 350.0


def test_gpus_are_listed_with_nvml_memory_and_no_cuda_context(nvml, monkeypatch):
    props = [types.SimpleNamespace(name="NVIDIA H200", total_memory=141 * 2**30, major=9, minor=0, uuid=f"uuid-{i}")
             for i in range(2)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props[index])

    def context_on(index):
        raise AssertionError(f"mem_get_info({index}) creates a CUDA context on a GPU this process may not train on")

    monkeypatch.setattr(torch.cuda, "mem_get_info", context_on)
    found = [d for d in devices.list_devices() if d.kind == "cuda"]
    assert [d.name for d in found] == ["cuda:0", "cuda:1"]
    assert all(d.free_memory_mb == 100 * 1024 and d.total_memory_mb == 141 * 1024 for d in found)
    assert {"GPU-uuid-0", "GPU-uuid-1"} <= set(nvml.asked)


def test_without_nvml_free_memory_is_unknown_rather_than_a_context_on_every_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: no nvidia-ml-py
    assert devices.nvml_free_mb("uuid-0") is None


@pytest.mark.parametrize("parent,index,child", [
    (None, 1, "1"),
    ("", 0, "0"),
    ("2,3", 1, "3"),
    ("GPU-8f1e-aa, GPU-77c2-bb", 1, "GPU-77c2-bb"),
    ("MIG-5c4b-01,MIG-5c4b-02", 0, "MIG-5c4b-01"),
])
def test_a_slot_maps_through_the_parents_visible_devices(monkeypatch, parent, index, child):
    if parent is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", parent)
    assert devices.child_visible_devices(index) == child


def test_a_slot_beyond_the_parents_visible_devices_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"cuda:2 is not among this process's visible GPUs \(0,1\)"):
        devices.child_visible_devices(2, parent="0,1")


def test_a_gpu_torch_cannot_use_is_named_with_the_fix(nvml, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    reason = devices.unusable_gpu_reason()
    assert "2 NVIDIA GPUs (NVIDIA H200, driver 535.104.05)" in reason and "CPU-only build" in reason
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    nvml.driver_cuda = 12020
    reason = devices.unusable_gpu_reason()
    assert "supports CUDA 12.2" in reason and "built for CUDA 13.0" in reason and "update the NVIDIA driver" in reason
    assert "\n" not in reason


def test_no_gpu_at_all_is_not_a_problem(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert devices.unusable_gpu_reason() is None


def test_the_folder_decoder_does_not_fork_a_process_that_holds_cuda(monkeypatch):
    from wrn_core.data import folder

    monkeypatch.setattr(folder, "_cuda_initialized", lambda: False)
    assert folder._pool_context().get_start_method() == "fork"
    monkeypatch.setattr(folder, "_cuda_initialized", lambda: True)
    assert folder._pool_context().get_start_method() in ("forkserver", "spawn")
