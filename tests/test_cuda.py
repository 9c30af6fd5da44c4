"""The training engine on a CUDA GPU (`pytest -m cuda`; skipped without one): bf16, channels_last, compile, resume, memory, OOM, torchrun."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from wrn_core.engine import loop as loop_module
from wrn_core.engine import build as engine_build
from wrn_core.engine.optim import build_optimizer
from wrn_core.engine.reporter import Reporter
from wrn_core.engine.step import autocast
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.engine.distributed import Dist
from wrn_core.jobs import JobManager
from wrn_core.model.memory import CUDA_CONTEXT_MB, parameter_count, predicted_training_mb, saved_activation_bytes, training_memory_mb
from wrn_core.model import build_model
from wrn_core.store import RunStore
from wrn_core.engine.loop import train_run
from wrn_core.store.records import Progress

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run `pytest -m cuda` on a GPU machine)"),
]

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
CUDA = torch.device("cuda")
# Tolerances of a resumed run against an uninterrupted one: bf16 autocast and cuDNN's autotuned,
# non-deterministic kernels make CUDA runs differ in the last bits, which grow over the steps.
LOSS_TOLERANCE = 0.05  # absolute, cross-entropy (nats)
ACCURACY_TOLERANCE = 0.05  # absolute, fraction of the 256 test images (13 images)
MEMORY_TOLERANCE = 0.25  # |predicted - measured| / measured: how far the memory pre-flight may miss a CUDA peak


def cuda_config(**changes) -> TrainConfig:
    """A tiny synthetic run on the GPU: WRN-10-1, 10 steps of 64 per epoch, every step logged."""
    base = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic", synthetic_train=640, synthetic_test=256,
        epochs=1, batch_size=64, eval_batch_size=256, lr=0.05, schedule="onecycle", device="cuda", log_every=1,
    )
    return base.replace(**changes)


def records_of(run, kind: str) -> list[dict]:
    return [r for r in run.read_metrics() if r["kind"] == kind]


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """50 steps of WRN-10-1 on the GPU (the engine trains under bf16 autocast in channels_last there)."""
    run = RunStore(tmp_path_factory.mktemp("bf16")).create(cuda_config(synthetic_train=64 * 50, schedule="constant"), "bf16")
    status = train_run(run)
    return run, status


def test_bf16_autocast_keeps_the_loss_finite_over_50_steps(bf16_run):
    run, status = bf16_run
    assert status == "finished", run.read_status()
    steps = records_of(run, "step")
    assert [r["step"] for r in steps] == list(range(1, 51))
    assert all(math.isfinite(r["train_loss"]) for r in steps), [r["train_loss"] for r in steps]
    (epoch,) = records_of(run, "epoch")
    assert math.isfinite(epoch["test_loss"]) and epoch["peak_mem_mb"] > 0
    # The engine's autocast really computes in bf16 on CUDA.
    model = build_model(WRNConfig(depth=10, widen_factor=1)).to(CUDA, memory_format=torch.channels_last)
    images = torch.randn(8, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    with autocast(CUDA):
        assert model(images).dtype == torch.bfloat16


def test_system_records_carry_gpu_memory(bf16_run):
    run, _ = bf16_run
    system = records_of(run, "system")
    assert system, "no system records"
    last = system[-1]
    assert last["cuda_allocated_mb"] > 0 and last["cuda_peak_mb"] >= last["cuda_allocated_mb"]
    assert last["cuda_reserved_mb"] >= last["cuda_allocated_mb"]
    assert last["rss_mb"] > 0


def test_system_records_carry_gpu_load_where_nvml_answers(bf16_run):
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - no nvidia-ml-py or no driver access: NVML fields are optional
        pytest.skip(f"NVML is not available here ({type(exc).__name__}: {exc})")
    run, _ = bf16_run
    last = records_of(run, "system")[-1]
    assert last["gpu_memory_used_mb"] > 0 and last["gpu_util"] is not None, last


def test_channels_last_and_compile_both_train(tmp_path):
    store = RunStore(tmp_path)
    # channels_last: the engine's model and batches on CUDA are NHWC.
    probe = store.create(cuda_config(), "layout")
    session, _ = engine_build.build_session(probe, False, Reporter(probe, None), Dist())
    conv = session.model.stem  # the first 3x3 conv
    assert conv.weight.is_cuda and conv.weight.is_contiguous(memory_format=torch.channels_last)
    images, _ = next(iter(session.train_loader.epoch(0)))
    assert images.is_cuda and images.is_contiguous(memory_format=torch.channels_last)
    del session, images, conv
    loop_module._release_memory()
    # torch.compile (with channels_last and bf16, as the engine combines them) trains to the end.
    run = store.create(cuda_config(compile=True, synthetic_train=256, synthetic_test=128, eval_batch_size=128), "compiled")
    assert train_run(run) == "finished", run.read_status()
    events = {r["event"]: r for r in records_of(run, "event")}
    assert events["compile"]["seconds"] > 0 and "compile-eval" not in events  # evaluation runs eagerly
    assert all(math.isfinite(r["train_loss"]) for r in records_of(run, "step"))


def _stop_at(step: int) -> tuple[threading.Event, object]:
    stop = threading.Event()

    def hook(progress: Progress) -> None:
        if progress.phase == "training" and progress.step >= step:
            stop.set()

    return stop, hook


def test_mid_epoch_stop_and_resume_match_an_uninterrupted_run(tmp_path):
    store = RunStore(tmp_path)
    config = cuda_config(epochs=2)  # 10 steps per epoch
    whole = store.create(config, "whole")
    assert train_run(whole) == "finished"

    parts = store.create(config, "parts")
    stop, hook = _stop_at(13)  # in the middle of epoch 2
    assert train_run(parts, stop_event=stop, on_progress=hook) == "stopped"
    checkpoint = parts.load_checkpoint()
    assert checkpoint["step"] == 13 and checkpoint["batch_in_epoch"] == 3 and "cuda" in checkpoint["rng"]
    assert train_run(parts, resume=True) == "finished"

    assert [r["step"] for r in records_of(parts, "step")] == [r["step"] for r in records_of(whole, "step")]
    expected, got = records_of(whole, "epoch"), records_of(parts, "epoch")
    assert [r["epoch"] for r in got] == [1, 2]
    for want, have in zip(expected, got):
        assert have["images_seen"] == want["images_seen"] and have["lr"] == pytest.approx(want["lr"], rel=1e-6)
        for key in ("train_loss", "test_loss"):
            assert abs(have[key] - want[key]) <= LOSS_TOLERANCE, (key, have[key], want[key])
        for key in ("train_acc", "test_acc"):
            assert abs(have[key] - want[key]) <= ACCURACY_TOLERANCE, (key, have[key], want[key])
    resumed = {r["step"]: r["train_loss"] for r in records_of(parts, "step") if r["step"] > 13}
    for record in records_of(whole, "step"):
        if record["step"] in resumed:
            assert abs(resumed[record["step"]] - record["train_loss"]) <= LOSS_TOLERANCE, record["step"]


def _measured_training_mb(model_config: WRNConfig, batch_size: int) -> float:
    """Peak memory the caching allocator held for training steps, as the engine takes them, above what was held before.

    Engine settings (train.py): channels_last, cuDNN autotuning, bf16 autocast, fused SGD-Nesterov,
    zero_grad after the forward. Two steps first (autotuning, optimizer state), then the peak of three.
    """
    torch.backends.cudnn.benchmark = True
    loop_module._release_memory()
    before = torch.cuda.memory_allocated(CUDA)
    model = build_model(model_config).to(CUDA, memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainConfig(model=model_config, batch_size=batch_size), CUDA)
    images = torch.randn(batch_size, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, model_config.num_classes, (batch_size,), device=CUDA)

    def step() -> None:
        with autocast(CUDA):
            loss = F.cross_entropy(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    torch.cuda.synchronize(CUDA)
    torch.cuda.reset_peak_memory_stats(CUDA)
    for _ in range(3):
        step()
    torch.cuda.synchronize(CUDA)
    peak = torch.cuda.max_memory_allocated(CUDA)
    del model, optimizer, images, labels
    loop_module._release_memory()
    return (peak - before) / MIB


@pytest.mark.parametrize("depth, widen_factor", [(16, 8), (28, 10)], ids=["WRN-16-8", "WRN-28-10"])
def test_predicted_training_memory_is_within_25_percent(depth, widen_factor):
    model_config = WRNConfig(depth=depth, widen_factor=widen_factor)
    parts = training_memory_mb(parameter_count(model_config), saved_activation_bytes(model_config), 128, "sgd-nesterov",
                               amp=True, cuda=True)
    assert predicted_training_mb(TrainConfig(model=model_config, batch_size=128), "cuda") == pytest.approx(parts["total"])
    measured = _measured_training_mb(model_config, 128)
    # max_memory_allocated counts the caching allocator's tensors only; the CUDA context and library
    # handles (the prediction's fixed CUDA_CONTEXT_MB allowance) live outside it, so they are left out.
    predicted = parts["total"] - CUDA_CONTEXT_MB
    error = (predicted - measured) / measured
    assert abs(error) <= MEMORY_TOLERANCE, (
        f"{model_config.name} batch 128: predicted {predicted:,.0f} MiB (total {parts['total']:,.0f} MiB with the "
        f"{CUDA_CONTEXT_MB:.0f} MiB context allowance; {parts}) against max_memory_allocated {measured:,.0f} MiB: {error:+.1%}")


def test_a_batch_too_large_fails_with_the_oom_hint_and_the_next_job_trains(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs")
    # WRN-16-8 at batch 1024 keeps ~3.6 GiB of activations (memory.py); this process may use 1 GiB of
    # the GPU, so the batch is too large on any card (set_per_process_memory_fraction makes the
    # caching allocator raise the same torch.OutOfMemoryError as a full GPU).
    big = store.create(cuda_config(model=WRNConfig(depth=16, widen_factor=8), synthetic_train=1024, synthetic_test=64,
                                   batch_size=1024, eval_batch_size=64), "too-big")
    loop_module._release_memory()
    baseline = torch.cuda.memory_allocated(CUDA)
    total = torch.cuda.get_device_properties(CUDA).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (baseline + 2**30) / total), CUDA)
    try:
        assert train_run(big) == "failed"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
    status = big.read_status()
    assert status["error_kind"] == "oom", status
    assert status["message"].startswith("CUDA out of memory at step 0 (batch 1024, WRN-16-8)"), status["message"]
    assert "try a smaller batch size" in status["message"]
    assert big.owner() is None  # the lock is released
    assert torch.cuda.memory_allocated(CUDA) - baseline < 16 * MIB  # the failed run's tensors are gone

    # The next job on the same GPU, as the dashboard runs it: a process started by the job manager.
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.chdir(REPO)
    manager = JobManager(store.root, slots=["cuda:0"])
    try:
        name = manager.submit(cuda_config(device="cuda:0", synthetic_train=256, synthetic_test=64, eval_batch_size=64), "next")
        assert manager.wait(name, timeout=180)
    finally:
        manager.shutdown(timeout=30)
    after = store.get("next").read_status()
    assert after["status"] == "finished" and after["device"] == "cuda", after


def _torchrun(nproc: int, runs: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "wrn_core",
               "train", "--blocks", "1", "--widen-factor", "1", "--synthetic-train", "512", "--synthetic-test", "128",
               "--batch-size", "64", "--epochs", "1", "--device", "cuda", "--log-every", "2", "--runs-dir", str(runs),
               "--name", name, "--quiet", *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("sync_bn", [False, True], ids=["plain", "sync-bn"])
def test_torchrun_with_one_process_on_cuda_finishes(tmp_path, sync_bn):
    result = _torchrun(1, tmp_path, "one", *(["--sync-bn"] if sync_bn else []))
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunStore(tmp_path).get("one")
    status = run.read_status()
    assert status["status"] == "finished" and status["device"] == "cuda" and status["world_size"] == 1, status
    assert run.read_config().sync_bn is sync_bn
    assert records_of(run, "epoch")[0]["peak_mem_mb"] > 0


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="SyncBatchNorm across processes needs 2 GPUs")
def test_torchrun_with_sync_bn_on_two_gpus(tmp_path):
    result = _torchrun(2, tmp_path, "two", "--sync-bn")
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunStore(tmp_path).get("two")
    assert run.read_status()["world_size"] == 2
    (epoch,) = records_of(run, "epoch")
    assert epoch["replicas_agree"] and epoch["shards_disjoint"] and epoch["images_per_epoch"] == 512
