"""Tests for the devices: resolving a device choice, the job-queue slots it may use, the device list with
CUDA mocked, a torchrun rank's device, and the data-parallel options the CPU cannot run."""

from __future__ import annotations

import json

import pytest
import torch

from fake_gpus import fake_two_gpus
from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.engine.devices import eligible_slots, list_devices, resolve_device
from wrn_core.engine.distributed import Dist, device_for
from wrn_core.engine.loop import train_run
from wrn_core.store import RunStore


@pytest.mark.parametrize(("cuda", "mps", "auto"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, auto):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(auto)
    assert resolve_device("cpu") == torch.device("cpu")


def test_an_explicit_device_that_is_not_there_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="^device cuda was asked for but no CUDA GPU is available; use --device cpu or auto$"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="^device mps was asked for but is not available; use --device cpu or auto$"):
        resolve_device("mps")


@pytest.fixture
def two_gpus(monkeypatch):
    """A machine with two CUDA GPUs as torch and NVML report them (no real GPU needed) and no mps."""
    fake_two_gpus(monkeypatch)


SLOTS = ["cuda:0", "cuda:1#0", "cuda:1#1", "cpu#0", "cpu#1"]


@pytest.mark.parametrize(("choice", "slots", "eligible"), [
    ("auto", SLOTS, ["cuda:0", "cuda:1#0", "cuda:1#1"]),  # a GPU first
    ("auto", ["cpu#0", "cpu#1"], ["cpu#0", "cpu#1"]),  # else the CPU
    ("cuda", SLOTS, ["cuda:0", "cuda:1#0", "cuda:1#1"]),
    ("cpu", SLOTS, ["cpu#0", "cpu#1"]),
    ("cuda:1", SLOTS, ["cuda:1#0", "cuda:1#1"]),  # the device, whatever its suffix
    ("cuda:0", SLOTS, ["cuda:0"]),
    ("cuda:2", SLOTS, []),
    ("cuda", ["cpu"], []),
    ("mps", SLOTS, []),
])
def test_eligible_slots(choice, slots, eligible):
    assert eligible_slots(choice, slots) == eligible


def test_eligible_slots_refuses_a_device_name_that_is_not_one():
    with pytest.raises(ConfigError):
        eligible_slots("gpu0", SLOTS)


def test_list_devices_lists_every_gpu_with_its_memory(two_gpus):
    devices = list_devices()
    assert [(d.name, d.kind) for d in devices] == [("cpu", "cpu"), ("cuda:0", "cuda"), ("cuda:1", "cuda")]
    gpu0, gpu1 = devices[1:]
    assert (gpu0.description, gpu0.free_memory_mb, gpu0.total_memory_mb, gpu0.compute_capability) == (
        "NVIDIA H100 80GB HBM3", 70 * 1024, 80 * 1024, "9.0")
    assert (gpu1.free_memory_mb, gpu1.total_memory_mb, gpu1.compute_capability) == (10 * 1024, 40 * 1024, "8.0")
    assert gpu1.label() == "cuda:1 — NVIDIA A100-SXM4-40GB (10.0 GiB free of 40.0 GiB)"
    assert devices[0].total_memory_mb > 0  # system RAM for the CPU


def test_a_gpu_index_beyond_the_machine_is_one_line(two_gpus):
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match=r"^device cuda:2 does not exist: this machine has 2 CUDA GPUs \(cuda:0..cuda:1\)$"):
        resolve_device("cuda:2")


def test_each_torchrun_rank_takes_the_gpu_of_its_local_rank(two_gpus):
    assert device_for("cuda", Dist(rank=1, local_rank=1, world_size=2)) == torch.device("cuda", 1)
    assert device_for("auto", Dist(rank=0, local_rank=0, world_size=2)) == torch.device("cuda", 0)
    assert device_for("cuda:1", Dist()) == torch.device("cuda:1")  # one process: any GPU it names
    with pytest.raises(ConfigError, match=r"^under torchrun each process uses cuda:<local rank>; use --device cuda or auto, not cuda:1$"):
        device_for("cuda:1", Dist(rank=0, local_rank=0, world_size=2))
    with pytest.raises(ConfigError, match=r"^local rank 2 has no GPU: this machine has 2; start at most that many"):
        device_for("cuda", Dist(rank=2, local_rank=2, world_size=3))


def test_a_gloo_job_runs_on_the_cpu_and_not_on_mps(monkeypatch):
    assert device_for("cpu", Dist(rank=1, local_rank=1, world_size=2)) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="^data-parallel training runs on CUDA GPUs \\(NCCL\\) or the CPU \\(gloo\\), not on mps$"):
        device_for("mps", Dist(rank=0, local_rank=0, world_size=2))


def test_sync_bn_on_the_cpu_ends_the_run_failed_with_one_line(tmp_path):
    # Rank 0 of a 2-process gloo job meets it in setup, before any collective, so no process group is needed.
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=64, synthetic_test=32,
                         batch_size=32, device="cpu", sync_bn=True, world_size=2)
    run = RunStore(tmp_path).create(config, "sync-bn")
    assert train_run(run, dist=Dist(rank=0, local_rank=0, world_size=2)) == "failed"
    status = json.loads(run.status_path.read_text())
    assert status["message"] == "--sync-bn needs CUDA GPUs: torch's SyncBatchNorm runs only there", status
    assert status["error_kind"] == "input" and not run.has_checkpoint()
    assert not any(r["kind"] == "step" for r in run.read_metrics())
