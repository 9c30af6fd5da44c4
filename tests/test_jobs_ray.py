"""Sweeps on Ray (wrn_core.jobs.ray_executor): a local Ray of 2 CPUs, the sweep command as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from wrn_core.jobs import ray_connection, ray_executor, ray_nodes
from wrn_core.jobs.executor import RAY, Placement
from wrn_core.jobs.ray_processes import RaySweepProcesses
from wrn_core.store import RunBusyError, RunStore, RunStoreError, parse_metrics
from wrn_core.store.records import FINISHED, INTERRUPTED, RESUME, STOPPED

REPO = Path(__file__).resolve().parents[1]
# Tiny cells: WRN-10-1 / 16-1 / 10-2 / 16-2 on synthetic data.
TINY = ["--dataset", "synthetic", "--synthetic-test", "64", "--batch-size", "32", "--device", "cpu", "--no-probe",
        "--log-every", "2", "--schedule", "constant", "--lr", "0.05"]


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray of 2 CPUs for the module (no dashboard, no usage stats); sweeps connect to it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    # address="local": a Ray of its own even when another (a `ray start`, another test run) is up on the machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def sweep_cli(*args: str, address: str, runs: Path, wait: bool = True, timeout: float = 240):
    command = [sys.executable, "-m", "wrn_core", "sweep", *args, "--executor", "ray", "--ray-address", address,
               "--runs-dir", str(runs)]
    if not wait:
        return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def epochs_once(run) -> list[int]:
    """The run's epochs as readers see them, after checking the raw file: since the last resume marker,
    each epoch line comes once and continues from where that marker resumed."""
    lines = [json.loads(line) for line in run.metrics_path.read_text().splitlines() if line.strip()]
    markers = [i for i, r in enumerate(lines) if r["kind"] == RESUME]
    tail = lines[markers[-1] + 1:] if markers else lines
    raw = [r["epoch"] for r in tail if r["kind"] == "epoch"]
    assert len(raw) == len(set(raw)), f"an epoch recorded twice since the last resume: {raw}"
    if markers:
        assert raw and raw[0] == int(lines[markers[-1]]["from_epoch"]) + 1
    read = [r["epoch"] for r in parse_metrics(run.metrics_path.read_text()).records if r["kind"] == "epoch"]
    assert read == sorted(set(read))
    return read


def test_a_2x2_sweep_finishes_on_ray_with_every_epoch_once(tmp_path, ray_address):
    runs = tmp_path / "runs"
    done = sweep_cli("g", "--blocks", "1,2", "--widen-factor", "1,2", "--epochs", "2", "--synthetic-train", "128",
                     *TINY, address=ray_address, runs=runs)
    assert done.returncode == 0, done.stderr
    store = RunStore(runs)
    names = [n for n in store.names() if n.startswith("g-")]
    assert len(names) == 4
    for name in names:
        run = store.get(name)
        status = run.read_status()
        assert status["status"] == FINISHED and status["sweep"] == "g"
        assert status["executor"] == "ray" and status["host"] == socket.gethostname()
        assert epochs_once(run) == [1, 2]
    shown = subprocess.run([sys.executable, "-m", "wrn_core", "sweeps", "show", "g", "--format", "json", "--runs-dir",
                            str(runs)], cwd=REPO, capture_output=True, text=True, timeout=120)
    cells = json.loads(shown.stdout)["cells"]
    assert {(c["executor"], c["host"]) for c in cells} == {("ray", socket.gethostname())}
    assert not list(runs.glob(f"{ray_nodes.PROBE_PREFIX}*"))  # the probe's token is gone


def _wait_for(predicate, timeout: float = 180, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _trained_epochs(run) -> int:
    return sum(r["kind"] == "epoch" for r in run.read_metrics())


def test_a_killed_worker_past_max_retries_leaves_its_cell_interrupted_and_resume_finishes_it(tmp_path, ray_address):
    runs = tmp_path / "runs"
    sweep = sweep_cli("k", "--blocks", "1", "--widen-factor", "1", "--epochs", "6", "--synthetic-train", "1024",
                      "--max-retries", "0", *TINY, address=ray_address, runs=runs, wait=False)
    store = RunStore(runs)
    try:
        _wait_for(lambda: store.exists("k-n1-k1-s0") and _trained_epochs(store.get("k-n1-k1-s0")) >= 1,
                  what="the cell's first epoch")
        run = store.get("k-n1-k1-s0")
        trainer = psutil.Process(run.owner().pid)
        worker = trainer.parent()  # the Ray worker that holds the cell's actor
        assert "wrn_core" not in " ".join(worker.cmdline())
        os.kill(worker.pid, signal.SIGKILL)
        sweep.wait(120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 1, sweep.stderr.read()
    trainer.wait(30)  # it died with its worker
    status = run.read_status()
    assert status["status"] == INTERRUPTED and "owner" not in status
    assert "worker on node" in status["message"] and "after 0 retries" in status["message"], status["message"]
    assert _trained_epochs(run) < 6
    resumed = sweep_cli("k", "--resume", "--no-probe", address=ray_address, runs=runs)
    assert resumed.returncode == 0, resumed.stderr
    assert run.read_status()["status"] == FINISHED
    assert epochs_once(run) == [1, 2, 3, 4, 5, 6]


def test_a_stop_request_from_another_process_stops_a_ray_cell_with_a_checkpoint(tmp_path, ray_address):
    runs = tmp_path / "runs"
    sweep = sweep_cli("s", "--blocks", "1", "--widen-factor", "1", "--epochs", "200", "--synthetic-train", "256",
                      *TINY, address=ray_address, runs=runs, wait=False)
    store = RunStore(runs)
    try:
        _wait_for(lambda: store.exists("s-n1-k1-s0") and any(r["kind"] == "step" for r in store.get("s-n1-k1-s0").read_metrics()),
                  what="the cell's first steps")
        asked = subprocess.run([sys.executable, "-m", "wrn_core", "runs", "stop", "s-n1-k1-s0", "--runs-dir", str(runs)],
                               cwd=REPO, capture_output=True, text=True, timeout=120)
        assert asked.returncode == 0, asked.stderr
        sweep.wait(120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    run = store.get("s-n1-k1-s0")
    status = run.read_status()
    assert status["status"] == STOPPED and status["executor"] == "ray"
    assert run.load_checkpoint()["step"] == status["step"]
    assert status["epoch"] < 200


def test_a_runs_dir_the_workers_do_not_see_is_refused_in_one_line(tmp_path, ray_address, monkeypatch, capsys):
    from wrn_core.cli import main

    elsewhere = tmp_path / "driver-only"
    elsewhere.mkdir()
    real_write = ray_nodes._write_token
    # The driver's token lands on a disk of its own: the workers, reading the runs directory, do not find it.
    monkeypatch.setattr(ray_nodes, "_write_token", lambda path, token: real_write(elsewhere / path.name, token))
    runs = tmp_path / "runs"
    with pytest.raises(RunStoreError, match="does not see the runs directory"):
        ray_nodes.check_shared_runs_dir(runs)
    code = main(["sweep", "x", "--blocks", "1", "--widen-factor", "1", "--epochs", "1", "--synthetic-train", "64", *TINY,
                 "--executor", "ray", "--ray-address", ray_address, "--runs-dir", str(runs)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "flock" in err and "does not see the runs directory" in err
    assert not RunStore(runs).names() and not list(runs.glob("*.sweep.json"))  # nothing made


def test_a_remote_error_is_said_in_one_line_with_where_and_why():
    from wrn_core.errors import first_and_last_line

    lost = RuntimeError("\x1b[36mray::CellTrainer.run()\x1b[39m (pid=1, ip=127.0.0.1)\n  File \"x.py\"\nMemoryError: oom")
    assert first_and_last_line(lost) == "ray::CellTrainer.run() (pid=1, ip=127.0.0.1) MemoryError: oom"
    assert first_and_last_line(RuntimeError("\x1b[31mone line\x1b[0m")) == "one line"
    assert first_and_last_line(RuntimeError("")) == "RuntimeError"


def _probe_from_a_module_workers_lack(path: str):
    return None, "never run"  # the workers cannot import this test module, as a node without wrn-lab cannot import wrn_core


def test_a_worker_that_cannot_run_the_probe_is_refused_with_why(tmp_path, ray_address, monkeypatch):
    """Ray's task error says where first and why last: the one-line refusal carries the why, without terminal colours."""
    monkeypatch.setattr(ray_nodes, "_read_token", _probe_from_a_module_workers_lack)
    with pytest.raises(RunStoreError) as refused:
        ray_nodes.check_shared_runs_dir(tmp_path / "runs")
    said = str(refused.value)
    assert len(said.splitlines()) == 1 and "ModuleNotFoundError: No module named 'test_jobs_ray'" in said, said
    assert "\x1b" not in said


def test_without_ray_the_executor_says_what_to_install(tmp_path, monkeypatch, capsys):
    from wrn_core.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = main(["sweep", "x", "--blocks", "1", "--widen-factor", "1", "--epochs", "1", "--synthetic-train", "64", *TINY,
                 "--executor", "ray", "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {ray_nodes.RAY_MISSING}"


def test_a_background_ray_sweep_stops_its_cells_on_ctrl_c(tmp_path, ray_address):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.sweeps import make_sweep, save_sweep

    runs = tmp_path / "runs"
    base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=256, synthetic_test=64, epochs=200,
                       batch_size=32, log_every=2, schedule="constant", lr=0.05, device="cpu")
    save_sweep(runs, make_sweep("bg", base, [1], [1, 2]))
    processes = RaySweepProcesses(runs)
    processes.resume("bg", Placement(executor=RAY, address=ray_address))  # the dashboard's way: a process of its own
    store = RunStore(runs)
    names = ["bg-n1-k1-s0", "bg-n1-k2-s0"]
    _wait_for(lambda: all(store.exists(n) and any(r["kind"] == "step" for r in store.get(n).read_metrics()) for n in names),
              what="both cells training at once (1 CPU each of 2)")
    assert processes.running("bg") and processes.stop("bg")  # Ctrl-C to the sweep's process
    _wait_for(lambda: not processes.running("bg"), timeout=150, what="the sweep process to end")
    assert processes.error("bg") is None
    for name in names:
        status = store.get(name).read_status()
        assert status["status"] == STOPPED, status
        assert store.get(name).load_checkpoint()["step"] == status["step"]


def test_queued_on_ray_names_the_unlocked_cells_a_ray_sweep_has_queued(tmp_path):
    from tiny_runs import tiny_config

    store = RunStore(tmp_path)
    waiting = store.create(tiny_config(), "waiting", executor="ray")  # created queued, lock let go for the trainer
    store.create(tiny_config(), "local")  # queued by no Ray sweep
    held = store.create(tiny_config(), "held", hold="training", executor="ray")
    assert waiting.read_status()["status"] == INTERRUPTED  # what any reader sees without the sweep's knowledge
    assert ray_executor.queued_on_ray(store, ["waiting", "local", "held", "missing"]) == ["waiting"]
    held.release()


def test_a_cell_that_fails_for_an_input_reason_is_not_retried(tmp_path, ray_address):
    runs, images = tmp_path / "runs", tmp_path / "images"
    # Files in the right layout pass the sweep's checks (no decoding); none decodes, so the trainer fails: bad input.
    for split in ("train", "test"):
        for label in ("a", "b"):
            (images / split / label).mkdir(parents=True)
            (images / split / label / "x.jpg").write_text("not a jpeg")
    flags = [f for f in TINY if f not in ("--dataset", "synthetic", "--synthetic-test", "64")]
    failed = sweep_cli("f", "--blocks", "1", "--widen-factor", "1", "--epochs", "1", "--dataset", "folder", "--data-dir",
                       str(images), *flags, address=ray_address, runs=runs)
    assert failed.returncode == 1, failed.stderr
    run = RunStore(runs).get("f-n1-k1-s0")
    status = run.read_status()
    assert status["status"] == "failed" and status["error_kind"] == "input", status
    again = sweep_cli("f", "--resume", address=ray_address, runs=runs)
    assert again.returncode == 1 and "complete" in again.stderr and "1 failed" in again.stderr  # as the first run ended
    assert run.read_status()["started_at"] == status["started_at"]  # nothing trained it again


def test_a_cell_waiting_in_rays_queue_reads_queued_to_every_reader_and_stopped_once_cancelled(tmp_path, ray_address):
    """Two cells of 2 CPUs on a Ray of 2: the second waits in Ray's queue while the first trains (200 epochs: it
    is still training when looked at). Another process's `runs list` (which reconciles) must neither show it
    interrupted nor persist that. Then Ctrl-C to the sweep: the training cell stops with a checkpoint, the
    waiting one is cancelled and reads stopped, never having trained."""
    runs = tmp_path / "runs"
    sweep = sweep_cli("q", "--blocks", "1", "--widen-factor", "1,2", "--epochs", "200", "--synthetic-train", "320",
                      "--cpus-per-cell", "2", *TINY, address=ray_address, runs=runs, wait=False)
    store = RunStore(runs)
    try:
        def one_trains_one_waits() -> bool:
            if len([n for n in store.names() if n.startswith("q-")]) < 2:
                return False
            return sorted(store.summary(n).status for n in store.names() if n.startswith("q-")) == ["queued", "running"]

        _wait_for(one_trains_one_waits, what="one cell training while the other waits in Ray's queue")
        (training,) = [n for n in store.names() if n.startswith("q-") and store.summary(n).status == "running"]
        (waiting,) = [n for n in store.names() if n.startswith("q-") and n != training]
        listed = subprocess.run([sys.executable, "-m", "wrn_core", "runs", "list", "--runs-dir", str(runs)], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0 and "interrupted" not in listed.stdout, listed.stdout
        rows = {line.split()[0]: line.split()[4] for line in listed.stdout.splitlines()[1:]}
        assert rows == {training: "running", waiting: "queued"}, listed.stdout
        assert json.loads(store.get(waiting).status_path.read_text())["status"] == "queued"  # nothing persisted otherwise
        sweep.send_signal(signal.SIGINT)
        out, err = sweep.communicate(timeout=300)
        assert sweep.returncode == 0, err
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    stopped = store.get(training).read_status()
    assert stopped["status"] == STOPPED and store.get(training).load_checkpoint()["step"] == stopped["step"]
    cancelled = store.get(waiting).read_status()
    assert cancelled["status"] == STOPPED and cancelled["message"].startswith("stopped before it started training"), cancelled
    assert not store.get(waiting).has_checkpoint() and not [r for r in store.get(waiting).read_metrics() if r["kind"] == "step"]


def test_ray_address_comes_from_the_flag_else_ray_address_else_a_local_ray(monkeypatch):
    """RayCluster as `sweep --executor ray` uses it, with a stand-in ray that records how it was started."""
    calls: list = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **options: calls.append(options),
                           shutdown=lambda: calls.append("shutdown"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_connection, "check_reachable", lambda address: None)  # no head answers at head:6379 here
    quiet = {"log_to_driver": False, "configure_logging": False}
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    with ray_connection.RayCluster() as cluster:
        assert (cluster.address, cluster.started_here) == ("head:6379", False)
    with ray_connection.RayCluster("other:6379"):
        pass
    monkeypatch.delenv("RAY_ADDRESS")
    with ray_connection.RayCluster(num_cpus=2) as cluster:
        assert cluster.started_here
    assert calls == [{"address": "head:6379", **quiet}, "shutdown", {"address": "other:6379", **quiet}, "shutdown",
                     {"address": "local", "num_cpus": 2, "include_dashboard": False, **quiet}, "shutdown"]


def test_a_failed_connect_leaves_no_half_open_ray_and_says_why_in_one_line(monkeypatch):
    """ray.init raising (a Ray Client handshake refused, a version mismatch): the process is left as it was
    (ray.shutdown: Ray Client mode off, so a later local Ray can start) and the error is one line with Ray's reason."""
    calls: list = []

    def refuse(**options):
        calls.append("init")
        raise ConnectionError("ray client connection failed\nthe server's Ray is 2.9, this one 2.60")

    fake = SimpleNamespace(is_initialized=lambda: False, init=refuse, shutdown=lambda: calls.append("shutdown"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(ray_connection, "check_reachable", lambda address: None)
    with pytest.raises(RunStoreError) as refused:
        with ray_connection.RayCluster("ray://head:10001"):
            pass
    assert calls == ["init", "shutdown"]
    assert str(refused.value) == ("could not start or reach the Ray cluster at ray://head:10001: ray client connection "
                                  "failed the server's Ray is 2.9, this one 2.60")


def test_a_client_server_that_fails_to_start_is_tried_again(monkeypatch):
    """Ray Client's proxy can hand a new driver a port an earlier driver's server still holds: that start fails, and
    the connect is tried again (here it works the third time); a failure that persists is said with its tries."""
    from wrn_core.jobs import ray_connection as connection

    calls: list = []
    failing = {"left": 2}

    def init(**options):
        calls.append("init")
        if failing["left"]:
            failing["left"] -= 1
            raise ConnectionError("Initialization failure from server:\nRuntimeError: Starting Ray client server failed.")

    fake = SimpleNamespace(is_initialized=lambda: False, init=init, shutdown=lambda: calls.append("shutdown"))
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setattr(connection, "check_reachable", lambda address: None)
    monkeypatch.setattr(connection.time, "sleep", lambda s: calls.append(f"sleep {s:g}"))
    with connection.RayCluster("ray://head:10001"):
        pass
    assert calls == ["init", "shutdown", "sleep 5", "init", "shutdown", "sleep 5", "init", "shutdown"]
    failing["left"], calls[:] = 9, []
    with pytest.raises(RunStoreError, match=r"at ray://head:10001 \(3 tries\): Initialization failure from server: "
                                            r"RuntimeError: Starting Ray client server failed\.$"):
        with connection.RayCluster("ray://head:10001"):
            pass
    assert calls.count("init") == 3


def test_nothing_answering_at_the_address_is_refused_at_once_in_one_line():
    from wrn_core.jobs.ray_connection import check_reachable
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: a connect is refused
        with pytest.raises(RunStoreError, match=f"^could not reach the Ray cluster at ray://127.0.0.1:{port}: nothing "
                                                f"answers at 127.0.0.1:{port} \\(Connection refused\\)$"):
            check_reachable(f"ray://127.0.0.1:{port}")
        s.listen()
        check_reachable(f"127.0.0.1:{port}")  # something listens: Ray's to judge
    check_reachable("auto")


def test_a_second_driver_of_the_same_sweep_is_refused(tmp_path, monkeypatch):
    """A driver holds the sweep's queue lock while it drives its cells; another driver (here the lock held through
    another open of it, as another process holds it) is refused in one line before it touches Ray; the lock is free
    again once the first has let go."""
    from wrn_core.store.lock import ROLE_QUEUED, RunLock, queue_lock_name
    from wrn_core.sweeps import make_sweep
    from tiny_runs import tiny_config

    store = RunStore(tmp_path)
    sweep = make_sweep("twice", tiny_config(), [1], [1])
    remote_calls: list = []
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(remote=lambda **options: remote_calls.append(options)))
    first = RunLock(tmp_path / queue_lock_name("twice"))
    first.acquire(ROLE_QUEUED, "sweep twice", wait_s=0.0)  # the first driver
    try:
        with pytest.raises(RunBusyError, match=r"\(another `sweep twice` drives its cells\)$") as refused:
            ray_executor.RaySweep(store).drive(sweep)
        assert "\n" not in str(refused.value) and remote_calls == []  # refused before anything reached Ray
    finally:
        first.release()
    second = RunLock(tmp_path / queue_lock_name("twice"))
    second.acquire(ROLE_QUEUED, "sweep twice", wait_s=0.0)  # the first has let go: the lock can be taken
    second.release()
