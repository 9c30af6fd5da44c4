"""Data-parallel training with torchrun on the CPU (gloo): shards, one writer, stop/resume, world sizes, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytest import approx

from polling import wait_until
from wrn_core.cli import main as cli_main
from wrn_core.jobs import JobManager
from wrn_core.store import Run, RunStore

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


# Run under torchrun in place of `-m wrn_core`: every rank reports what it really trained on and holds,
# read from its own tensors, not from the engine's epoch records. At each epoch's end a rank writes a
# sha256 of its parameters' bytes and the images it trained on, and where it stops, its step. With
# "gray", each training image i of the synthetic set is a constant image of gray level i (crops and flips
# keep it constant), so the batches a rank's train_step receives name their images.
WITNESS = """
import dataclasses, hashlib, json, os, sys
sys.path.insert(0, os.getcwd())  # the repository, as for `-m wrn_core`
import torch
from wrn_core import cli
from wrn_core.engine import build, loop

out_dir, gray, argv = sys.argv[1], sys.argv[2] == "gray", sys.argv[3:]
rank = os.environ["RANK"]
seen = []
real_load, real_step, real_finish, real_stop = build.load_dataset, loop.train_step, loop.finish_epoch, loop._stop
state = {}

def load_dataset(config, **kwargs):
    data = real_load(config, **kwargs)
    if not gray:
        return data
    n = data.train_images.shape[0]
    levels = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand_as(data.train_images).contiguous()
    state["mean"] = torch.tensor(data.mean).view(1, -1, 1, 1)
    state["std"] = torch.tensor(data.std).view(1, -1, 1, 1)
    return dataclasses.replace(data, train_images=levels)

def train_step(forward, optimizer, images, labels, *args, **kwargs):
    if gray:
        pixels = (images.float().cpu() * state["std"] + state["mean"]) * 255  # undo the loader's normalisation
        seen.extend(pixels[:, 0, 0, 0].round().long().tolist())
    return real_step(forward, optimizer, images, labels, *args, **kwargs)

def params_sha(session):
    digest = hashlib.sha256()
    for p in session.model.parameters():
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()

def dump(kind, **fields):
    with open(os.path.join(out_dir, f"{kind}-rank{rank}.jsonl"), "a") as f:
        f.write(json.dumps(fields) + "\\n")

def finish_epoch(run, session, position, *args):
    dump("epoch", epoch=position.epoch + 1, params=params_sha(session), indices=list(seen))
    seen.clear()
    return real_finish(run, session, position, *args)

def stop(run, session, position, *args):
    dump("stop", step=position.step, params=params_sha(session))
    return real_stop(run, session, position, *args)

build.load_dataset, loop.train_step, loop.finish_epoch, loop._stop = load_dataset, train_step, finish_epoch, stop
sys.exit(cli.main(argv))
"""


def witness(tmp_path: Path, nproc: int, *args: str, gray: bool = False) -> tuple[list[str], Path]:
    """The torchrun command line that trains through WITNESS, and the folder its ranks report into."""
    script, out = tmp_path / "witness.py", tmp_path / "witness"
    script.write_text(WITNESS)
    out.mkdir(exist_ok=True)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", str(script),
            str(out), "gray" if gray else "real", *args], out


def reports(out: Path, kind: str, rank: int) -> list[dict]:
    path = out / f"{kind}-rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_two_processes_train_one_run_like_one_process(tmp_path, reference):
    runs = str(tmp_path / "runs")
    single = run([sys.executable, "-m", "wrn_core", "train", *TINY, "--epochs", "3", "--runs-dir", runs, "--name", "one", "--quiet"])
    assert single.returncode == 0, single.stderr
    ddp, one = reference, RunStore(runs).get("one")
    assert ddp.read_status()["status"] == "finished" and ddp.read_status()["world_size"] == 2
    assert ddp.read_config().world_size == 2
    epochs = epochs_of(ddp)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    for e in epochs:
        assert e["images_per_epoch"] == 256 and e["images_seen"] == 256 * e["epoch"], e
    assert steps_of(ddp) == steps_of(one) == list(range(2, 25, 2))
    # Same global batches and augmentations; only BatchNorm sees 16 images per shard instead of 32.
    for a, b in zip(epochs, epochs_of(one)):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.1, (a["train_loss"], b["train_loss"])


def test_the_ranks_hold_the_same_weights_and_train_on_disjoint_shards(tmp_path):
    runs = str(tmp_path / "runs")
    command, out = witness(tmp_path, 2, "train", *TINY, "--epochs", "2", "--runs-dir", runs, "--name", "seen", "--quiet", gray=True)
    result = run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = reports(out, "epoch", 0), reports(out, "epoch", 1)
    assert [r["epoch"] for r in rank0] == [r["epoch"] for r in rank1] == [1, 2]
    for a, b in zip(rank0, rank1):
        assert a["params"] == b["params"]  # bit for bit the same weights on both ranks
        assert len(a["indices"]) == len(b["indices"]) == 128  # 8 steps of 16 images each
        assert not set(a["indices"]) & set(b["indices"])  # no image on both ranks
        assert sorted(a["indices"] + b["indices"]) == list(range(256))  # every image once
    assert rank0[0]["indices"] != rank0[1]["indices"]  # a new order each epoch
    # And the engine's own epoch records say the same.
    assert all(e["replicas_agree"] and e["shards_disjoint"] for e in epochs_of(RunStore(runs).get("seen")))


def _stopped_ddp_run(command: list[str], runs: str, name: str, sig: int) -> int:
    """Start a 40-epoch torchrun training, send `sig` to torchrun once step 12 is logged; its return code."""
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = RunStore(runs)
    wait_until(lambda: store.exists(name) and any(r["kind"] == "step" and r["step"] >= 12 for r in store.get(name).read_metrics()),
               f"{name} to log step 12", timeout=240, interval=0.1, proc=proc)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Run:
    """An uninterrupted 2-process run of 3 epochs, to compare stopped and resumed ones against."""
    runs = str(tmp_path_factory.mktemp("reference"))
    result = run(torchrun(2, "train", *TINY, "--epochs", "3", "--runs-dir", runs, "--name", "ddp", "--quiet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(str(Path(runs) / "ddp")) == 1  # rank 0 alone reports
    return RunStore(runs).get("ddp")


def assert_same_training(run_, reference_) -> None:
    """The same logged steps, per-step training loss and per-epoch test accuracy as the reference run."""
    steps = {r["step"]: r["train_loss"] for r in run_.read_metrics() if r["kind"] == "step"}
    expected = {r["step"]: r["train_loss"] for r in reference_.read_metrics() if r["kind"] == "step"}
    assert list(steps) == list(expected) == list(range(2, 25, 2))  # every logged step once
    assert steps == approx(expected, abs=1e-3)
    assert [e["test_acc"] for e in epochs_of(run_)] == approx([e["test_acc"] for e in epochs_of(reference_)], abs=1e-3)
    assert [e["epoch"] for e in epochs_of(run_)] == [1, 2, 3]


def assert_stopped_with_one_checkpoint(run_) -> None:
    status = json.loads(run_.status_path.read_text())
    assert status["status"] == "stopped", status
    checkpoint = run_.load_checkpoint()
    assert checkpoint["step"] == status["step"] and checkpoint["world_size"] == 2
    assert len(checkpoint["rng_ranks"]) == 2 and run_.owner() is None
    assert not list(run_.path.glob("*.tmp*"))  # one checkpoint, no half-written second one


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_to_torchrun_stops_every_rank_at_one_step_and_resume_matches(tmp_path, reference, sig):
    runs = str(tmp_path / "runs")
    command, out = witness(tmp_path, 2, "train", *TINY, "--epochs", "40", "--runs-dir", runs, "--name", "stop", "--quiet")
    _stopped_ddp_run(command, runs, "stop", sig)  # SIGINT: Ctrl-C in its terminal; SIGTERM: e.g. a scheduler
    run_ = RunStore(runs).get("stop")
    assert_stopped_with_one_checkpoint(run_)
    (stop0,), (stop1,) = reports(out, "stop", 0), reports(out, "stop", 1)
    assert stop0 == stop1 and stop0["step"] == run_.load_checkpoint()["step"]  # the same step and weights
    result = run(torchrun(2, "resume", "stop", "--epochs", "3", "--runs-dir", runs, "--quiet"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_.read_status()["status"] == "finished"
    assert_same_training(run_, reference)


def test_the_job_manager_stops_a_torchrun_job_and_resume_matches(tmp_path, reference):
    manager = JobManager(tmp_path / "runs")
    try:
        config = reference.read_config().replace(epochs=40, world_size=1)  # TINY, as the reference trained it
        name = manager.submit(config, "managed", nproc=2)
        run_ = manager.store.get(name)
        wait_until(lambda: any(r["kind"] == "step" and r["step"] >= 12 for r in run_.read_metrics()),
                   "the managed job to log step 12", timeout=240, interval=0.1)
        assert manager.stop(name) and manager.wait(name, timeout=120)
        assert_stopped_with_one_checkpoint(run_)
        manager.resume(name, epochs=3)
        assert manager.wait(name, timeout=300)
        assert json.loads(run_.status_path.read_text())["status"] == "finished"
        assert_same_training(run_, reference)
    finally:
        manager.shutdown(timeout=30)


def test_resume_on_another_world_size(tmp_path):
    runs = str(tmp_path / "runs")
    _stopped_ddp_run(torchrun(2, "train", *TINY, "--epochs", "40", "--runs-dir", runs, "--name", "resize", "--quiet"),
                     runs, "resize", signal.SIGINT)
    run_ = RunStore(runs).get("resize")
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


def test_an_unreachable_rendezvous_is_one_line_naming_its_timeout(tmp_path, monkeypatch, capsys):
    """The join timeout passes on a fake clock that each retry's pause moves on: no real waiting, and the
    connection attempts are real (nobody listens on the port)."""
    from wrn_core.cli import ddp

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clock = {"now": 0.0, "pauses": 0}

    def pause(seconds: float) -> None:
        clock["pauses"] += 1
        clock["now"] += seconds

    monkeypatch.setattr(ddp, "time", SimpleNamespace(monotonic=lambda: clock["now"], sleep=pause))
    code = cli_main(["ddp", "--nproc-per-node", "1", "--nnodes", "2", "--rdzv-endpoint", f"127.0.0.2:{port}",
                     "--join-timeout", "3", "train", *TINY, "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the rendezvous at 127.0.0.2:{port} within 3 s")
    assert clock["pauses"] == 3  # it tried once a second until the 3 s had passed, then gave up
    assert not (tmp_path / "runs").exists()


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
        assert [e["world_size"] for e in epochs_of(run_)] == [2, 2]
    finally:
        manager.shutdown(timeout=30)
