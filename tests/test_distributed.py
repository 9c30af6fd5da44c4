"""Data-parallel training with torchrun on the CPU (gloo): shards, one writer, stop/resume, world sizes, errors."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrn_core.jobs import JobManager
from wrn_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]
# 256 images in global batches of 32: 8 steps per epoch, no image left over.
TINY = ["--blocks", "1", "--widen-factor", "1", "--synthetic-train", "256", "--synthetic-test", "64",
        "--batch-size", "32", "--device", "cpu", "--log-every", "2", "--lr", "0.05", "--schedule", "constant"]


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "wrn_core", *args]


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def epochs_of(run_):
    return [r for r in run_.read_metrics() if r["kind"] == "epoch"]


def steps_of(run_):
    return [r["step"] for r in run_.read_metrics() if r["kind"] == "step"]


def test_two_processes_train_one_run_like_one_process(tmp_path):
    runs = str(tmp_path / "runs")
    result = run(torchrun(2, "train", *TINY, "--epochs", "3", "--runs-dir", runs, "--name", "ddp", "--quiet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(str(Path(runs) / "ddp")) == 1  # rank 0 alone reports
    single = run([sys.executable, "-m", "wrn_core", "train", *TINY, "--epochs", "3", "--runs-dir", runs, "--name", "one", "--quiet"])
    assert single.returncode == 0, single.stderr
    store = RunStore(runs)
    ddp, one = store.get("ddp"), store.get("one")
    assert ddp.read_status()["status"] == "finished" and ddp.read_status()["world_size"] == 2
    assert ddp.read_config().world_size == 2
    epochs = epochs_of(ddp)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for e in epochs:
        # Every image once per epoch over the two shards, and the same weights on both ranks.
        assert e["images_per_epoch"] == 256 and e["shards_disjoint"] and e["replicas_agree"], e
        assert e["images_seen"] == 256 * e["epoch"]
    assert steps_of(ddp) == steps_of(one) == list(range(2, 25, 2))
    # Same global batches and augmentations; only BatchNorm sees 16 images per shard instead of 32.
    for a, b in zip(epochs, epochs_of(one)):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.1, (a["train_loss"], b["train_loss"])


def _stopped_ddp_run(runs: str, name: str) -> tuple[RunStore, int]:
    proc = subprocess.Popen(torchrun(2, "train", *TINY, "--epochs", "40", "--runs-dir", runs, "--name", name, "--quiet"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = RunStore(runs)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if store.exists(name) and any(r["kind"] == "step" and r["step"] >= 12 for r in store.get(name).read_metrics()):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal does: torchrun passes it to every rank
    proc.communicate(timeout=120)
    return store, proc.returncode


def test_stop_stops_every_rank_at_one_step_and_resume_continues(tmp_path):
    runs = str(tmp_path / "runs")
    store, _ = _stopped_ddp_run(runs, "stop")
    run_ = store.get("stop")
    status = run_.read_status()
    assert status["status"] == "stopped", status
    checkpoint = run_.load_checkpoint()
    assert checkpoint["step"] == status["step"] and checkpoint["world_size"] == 2
    assert len(checkpoint["rng_ranks"]) == 2 and run_.owner() is None
    result = run(torchrun(2, "resume", "stop", "--epochs", "3", "--runs-dir", runs, "--quiet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_.read_status()["status"] == "finished"
    assert steps_of(run_) == list(range(2, 25, 2))  # every logged step once
    assert [e["epoch"] for e in epochs_of(run_)] == [1, 2, 3]


def test_resume_on_another_world_size(tmp_path):
    runs = str(tmp_path / "runs")
    store, _ = _stopped_ddp_run(runs, "resize")
    run_ = store.get("resize")
    stopped_at = run_.read_status()["step"]
    result = run([sys.executable, "-m", "wrn_core", "resume", "resize", "--epochs", "3", "--runs-dir", runs, "--quiet"])
    assert result.returncode == 0, result.stderr
    assert run_.read_status()["status"] == "finished" and run_.read_config().world_size == 1
    (event,) = [r for r in run_.read_metrics() if r["kind"] == "event" and r["event"] == "world-size"]
    assert event["step"] == stopped_at and "1 process(es)" in event["message"] and "written by 2" in event["message"]
    assert steps_of(run_) == list(range(2, 25, 2))


def test_a_batch_that_does_not_divide_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    checked = run([sys.executable, "-m", "wrn_core", "ddp", "--nproc-per-node", "2", "train", *TINY, "--batch-size", "33",
                   "--runs-dir", str(runs)])
    assert checked.returncode == 2
    assert checked.stderr.strip().splitlines() == [
        "error: batch size 33 does not divide over 2 processes; use a multiple of 2 (--batch-size is the global batch)"]
    # Plain torchrun: each rank meets it, rank 0 alone says so; no run is created.
    plain = run(torchrun(2, "train", *TINY, "--batch-size", "33", "--runs-dir", str(runs)))
    assert plain.returncode != 0
    assert plain.stderr.count("error: batch size 33 does not divide over 2 processes") == 1
    assert "wrn_core/" not in plain.stderr  # no traceback through our code
    assert not runs.exists() or RunStore(runs).names() == []


def test_a_rendezvous_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run([sys.executable, "-m", "wrn_core", "ddp", "--nproc-per-node", "1", "--nnodes", "2",
                      "--rdzv-endpoint", f"127.0.0.1:{port}", "train", *TINY, "--runs-dir", str(tmp_path / "runs")], timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is in use; choose a free port in --rdzv-endpoint"]


def test_an_unreachable_rendezvous_is_one_line_naming_its_timeout(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The 60 s timeout only stops a hang; the one line says it gave up after the 3 s asked for.
    result = run([sys.executable, "-m", "wrn_core", "ddp", "--nproc-per-node", "1", "--nnodes", "2",
                  "--rdzv-endpoint", f"127.0.0.2:{port}", "--join-timeout", "3", "train", *TINY,
                  "--runs-dir", str(tmp_path / "runs")], timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the rendezvous at 127.0.0.2:{port} within 3 s")


def test_the_job_manager_launches_torchrun_and_rank_0_writes(tmp_path):
    from wrn_core.config import TrainConfig, WRNConfig

    manager = JobManager(tmp_path / "runs")
    try:
        config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=256, synthetic_test=64,
                             batch_size=32, device="cpu", log_every=2, epochs=2)
        name = manager.submit(config, "launched", nproc=2)
        assert manager.wait(name, timeout=300)
        run_ = manager.store.get(name)
        status = run_.read_status()
        assert status["status"] == "finished" and status["world_size"] == 2, status
        assert all(e["shards_disjoint"] and e["replicas_agree"] for e in epochs_of(run_))
    finally:
        manager.shutdown(timeout=30)
