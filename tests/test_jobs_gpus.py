"""The job manager and the sweep runner on a machine with two (mocked) GPUs: the least-loaded GPU takes a job,
a job on cuda:i sees that GPU as its cuda:0 through CUDA_VISIBLE_DEVICES, and a sweep runs one cell per GPU."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fake_gpus import fake_two_gpus
from polling import wait_until
from tiny_runs import tiny_config
from wrn_core.jobs import JobManager
from wrn_core.jobs.sweep_runner import SweepRunner
from wrn_core.sweeps import make_sweep

# Stands in for `python -m wrn_core resume NAME --runs-dir R ...`: notes what CUDA_VISIBLE_DEVICES it was given
# in <itself>.<run>, then holds its slot until the test creates <itself>.release.
HOLDS_ITS_GPU = """
import os, sys, time
me = sys.argv[0]
name = sys.argv[sys.argv.index("resume") + 1]
with open(f"{me}.{name}", "w") as note:
    note.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
while not os.path.exists(me + ".release"):
    time.sleep(0.05)
"""


@pytest.fixture
def gpu_machine(tmp_path, monkeypatch):
    """(a JobManager with a queue per GPU whose jobs run HOLDS_ITS_GPU, the stub's path) on two mocked GPUs, this
    process seeing physical GPUs 2 and 3 as its cuda:0 and cuda:1."""
    fake_two_gpus(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    stub = tmp_path / "python"
    stub.write_text(f"#!{sys.executable}\n{HOLDS_ITS_GPU}")
    stub.chmod(0o755)
    manager = JobManager(tmp_path / "runs", slots=["cuda:0", "cuda:1"], python=str(stub))
    try:
        yield manager, stub
    finally:
        Path(f"{stub}.release").touch()
        manager.shutdown(timeout=60)


def seen_by(stub: Path, name: str) -> str | None:
    """The CUDA_VISIBLE_DEVICES the job of run `name` was started with (None until it has started)."""
    note = Path(f"{stub}.{name}")
    return note.read_text() if note.exists() else None


def test_auto_jobs_go_to_the_least_loaded_gpu_and_see_it_as_their_cuda_0(gpu_machine):
    manager, stub = gpu_machine
    for name in ("a", "b", "c"):
        manager.submit(tiny_config(device="auto"), name)
    # a: both idle, the first GPU; b: the idle one; c: both busy, it waits on the first of the least loaded.
    assert [(j.name, j.device, j.state) for j in manager.jobs()] == [
        ("a", "cuda:0", "running"), ("b", "cuda:1", "running"), ("c", "cuda:0", "queued")]
    # Each sees its own GPU, named as this process's CUDA_VISIBLE_DEVICES names it: physical 2 and 3.
    assert wait_until(lambda: seen_by(stub, "a") and seen_by(stub, "b") and (seen_by(stub, "a"), seen_by(stub, "b")),
                      "both jobs to start") == ("2", "3")
    assert manager.load() == {"cuda:0": 2, "cuda:1": 1}


def test_a_job_asked_for_one_gpu_waits_for_it_whatever_the_other_does(gpu_machine):
    manager, stub = gpu_machine
    manager.submit(tiny_config(device="cuda:1"), "first")
    manager.submit(tiny_config(device="cuda:1"), "second")
    assert [(j.name, j.device, j.state) for j in manager.jobs()] == [("first", "cuda:1", "running"), ("second", "cuda:1", "queued")]
    # It names its GPU itself, so it sees this process's GPUs as they are and trains on its cuda:1 (physical 3).
    assert wait_until(lambda: seen_by(stub, "first"), "the job to start") == "2,3"


def test_a_sweep_runs_one_cell_per_gpu(gpu_machine):
    manager, stub = gpu_machine
    runner = SweepRunner(manager)
    try:
        runner.start(make_sweep("grid", tiny_config(device="cuda"), [1, 2], [1, 2]))
        running = wait_until(lambda: len(manager.jobs()) == 2 and manager.jobs(), "two cells to start")
        # The first two cells in order, at once, one on each GPU; the other two are not even created yet.
        assert {(j.name, j.device, j.state) for j in running} == {
            ("grid-n1-k1-s0", "cuda:0", "running"), ("grid-n1-k2-s0", "cuda:1", "running")}
        assert not manager.store.exists("grid-n2-k1-s0") and not manager.store.exists("grid-n2-k2-s0")
        wait_until(lambda: {seen_by(stub, j.name) for j in running} == {"2", "3"}, "the two cells to see their own GPU")
        Path(f"{stub}.release").touch()  # the first two end: the next two take their GPUs
        wait_until(lambda: seen_by(stub, "grid-n2-k1-s0") and seen_by(stub, "grid-n2-k2-s0"), "the last two cells to start")
    finally:
        runner.shutdown()
