"""Tests for `python -m wrn_core`: summary, train, resume, runs (show: command, findings), one-line errors
(command_for and the flag maps: test_cli_flags.py)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import trainer_env
from polling import wait_until
from test_cli_flags import parse_command
from wrn_core.cli import command_for, main
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]
TINY = ["--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic", "--synthetic-train", "128",
        "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu", "--log-every", "1"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def shown(result: subprocess.CompletedProcess) -> dict:
    """The JSON object `runs show` prints first (the epoch table follows it)."""
    return json.JSONDecoder().raw_decode(result.stdout)[0]


def test_summary_json_for_wrn_28_10():
    result = run_cli("summary", "--depth", "28", "--widen-factor", "10", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total_params"] == 36479194
    assert (data["name"], data["depth"], data["blocks"], data["widen_factor"]) == ("WRN-28-10", 28, 4, 10)
    assert data["total_macs"] == 5243346730  # the README's figure, exactly
    assert sum(layer["params"] for layer in data["layers"]) == 36479194
    assert {"out_channels", "output_shape", "params", "macs"} <= set(data["layers"][0])


def test_summary_table_is_the_readmes_byte_for_byte_and_csv(capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"```text\n\$ python -m wrn_core summary --blocks 1 --widen-factor 8\n(.*?)```", readme, re.S)
    assert shown, "the README's summary example is gone"
    assert main(["summary", "--blocks", "1", "--widen-factor", "8"]) == 0
    assert capsys.readouterr().out == shown.group(1)  # the layer table, "Width by group" and the totals
    assert main(["summary", "--depth", "16", "-k", "2", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["layer"] == "stem" and rows[-1]["layer"] == "head.fc"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["summary", "--depth", "15", "--widen-factor", "2"], "depth 15 is not 6N+4; the nearest valid depths are 10 and 16"),
        (["summary", "--blocks", "0", "--widen-factor", "2"], "N must be >= 1"),
        (["summary", "--depth", "16", "--widen-factor", "0"], "widen factor k must be >= 1"),
        (["summary", "--depth", "16"], "--widen-factor"),
        (["summary", "--depth", "16", "-k", "2", "--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["summary", "--depth", "16", "-k", "2", "--image-size", "4"], "image size must be >= 8"),
        (["train", *TINY, "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["train", *TINY, "--epochs", "0"], "epochs must be >= 1"),
        (["train", *TINY, "--lr", "-1"], "learning rate must be > 0"),
        (["train", *TINY, "--lr", "abc"], "invalid float value"),
        (["train", *TINY, "--name", "../../etc"], "invalid run name"),
        (["train", *TINY, "--preset", "nope"], "unknown preset"),
        (["train", "--blocks", "1", "-k", "1", "--dataset", "folder", "--data-dir", "/no/such/dir"], "does not exist"),
        (["train", "--blocks", "1", "-k", "1", "--dataset", "folder"], "needs a data directory"),
        (["train", "--blocks", "1", "-k", "1", "--dataset", "cifar10", "--data-dir", "/no/such/dir"], "cifar-10-batches-py"),
        (["resume", "ghost"], "no run named 'ghost'"),
        (["runs", "export", "ghost"], "no run named 'ghost'"),
        (["runs", "show", "../x"], "invalid run name"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, fragment):
    runs_dir = tmp_path / "runs"
    extra = ["--runs-dir", str(runs_dir)] if args[0] in ("train", "resume", "runs") else []
    result = run_cli(*args, *extra, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []  # no run was created, so none can read running


def test_cuda_missing_exits_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    result = run_cli("train", *TINY, "--device", "cuda", "--runs-dir", str(tmp_path), timeout=120)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr
    assert RunStore(tmp_path).names() == []


def test_train_then_list_show_export(tmp_path, capsys):
    runs_dir = str(tmp_path)
    assert main(["train", *TINY, "--epochs", "2", "--runs-dir", runs_dir, "--name", "tiny"]) == 0
    assert capsys.readouterr().out.strip().endswith("tiny")
    assert main(["runs", "list", "--runs-dir", runs_dir]) == 0
    listing = capsys.readouterr().out
    assert "tiny" in listing and "WRN-10-1" in listing and "finished" in listing
    assert main(["runs", "show", "tiny", "--runs-dir", runs_dir]) == 0
    assert '"status": "finished"' in capsys.readouterr().out
    assert main(["runs", "export", "tiny", "--format", "csv", "--runs-dir", runs_dir]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for column in ("train_acc", "train_loss", "test_acc", "test_loss"):
        assert all(r[column] not in ("", None) for r in rows), column
    out_file = tmp_path / "tiny.json"
    assert main(["runs", "export", "tiny", "--format", "json", "--out", str(out_file), "--runs-dir", runs_dir]) == 0
    assert json.loads(out_file.read_text())
    assert main(["runs", "delete", "tiny", "--runs-dir", runs_dir]) == 0
    assert RunStore(runs_dir).names() == []


def test_ctrl_c_stops_with_checkpoint_and_resume_continues(tmp_path):
    runs_dir = str(tmp_path)
    args = [sys.executable, "-m", "wrn_core", "train", *TINY, "--synthetic-train", "640", "--epochs", "3",
            "--runs-dir", runs_dir, "--name", "ctrlc"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = Path(runs_dir) / "ctrlc" / "metrics.jsonl"
    wait_until(lambda: metrics.exists() and metrics.read_text().count("\n") >= 3, "the run's first records", proc=proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    run = RunStore(runs_dir).get("ctrlc")
    status = run.read_status()
    assert status["status"] == "stopped", status
    assert run.has_checkpoint()
    stopped_step = run.load_checkpoint()["step"]
    assert stopped_step < 60  # 20 steps per epoch x 3 epochs: it stopped early

    result = run_cli("resume", "ctrlc", "--runs-dir", runs_dir)
    assert result.returncode == 0, result.stderr
    assert run.read_status()["status"] == "finished"
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == list(range(1, 61))  # the curve continues: every step once, none repeated
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2, 3]


def _wait_for_training(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the CLI's heartbeat says it trains (its stop handlers are installed before it loads anything)."""
    from wrn_core.store import Run

    deadline = time.monotonic() + timeout
    while (Run(run_dir).read_heartbeat() or {}).get("phase") != "training":
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never started training"
        time.sleep(0.02)


def test_sigterm_stops_a_cli_run_with_a_checkpoint(tmp_path):
    args = [sys.executable, "-m", "wrn_core", "train", *TINY, "--synthetic-train", "640", "--epochs", "50",
            "--runs-dir", str(tmp_path), "--name", "term"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_training(tmp_path / "term", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    run = RunStore(tmp_path).get("term")
    status = run.read_status()
    assert status["status"] == "stopped" and "owner" not in status, status
    assert err.strip().splitlines()[-1].startswith("stopped: stopped at epoch ")
    assert run.load_checkpoint()["step"] == status["step"] < 50 * 20


# The CLI, with a stop that never gets to its checkpoint: it says when the stop has begun.
STOP_SLOWLY = """
import os, sys, time
from wrn_core.cli import main
from wrn_core.engine import loop

def endless_stop(*args):
    open(os.environ["STOPPING_FILE"], "w").close()
    while True:
        time.sleep(0.01)

loop._stop = endless_stop
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_ends_the_run_at_once_and_it_reads_interrupted(tmp_path):
    stopping = tmp_path / "stopping"
    train = ["train", *TINY, "--synthetic-train", "640", "--epochs", "50", "--runs-dir", str(tmp_path / "runs"),
             "--name", "twice"]
    proc = subprocess.Popen([sys.executable, "-c", STOP_SLOWLY, *train], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=trainer_env(STOPPING_FILE=str(stopping)))
    try:
        _wait_for_training(tmp_path / "runs" / "twice", proc)
        proc.send_signal(signal.SIGINT)  # the first: a cooperative stop, which here never finishes
        deadline = time.monotonic() + 120
        while not stopping.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # the second: out at once
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "interrupted", err
    run = RunStore(tmp_path / "runs").get("twice")
    assert run.owner() is None
    assert run.read_status()["status"] == "interrupted"


def test_real_cifar10_jpegs_wrn_10_2_reaches_35_percent(tmp_path_factory, tmp_path):
    """Real images learn on the CPU: WRN-10-2, 5,000/1,000 balanced CIFAR-10 JPEGs, 4 epochs, one-cycle to 0.2."""
    from shared_data import cifar_jpeg_root

    root = cifar_jpeg_root(tmp_path_factory)
    runs_dir = str(tmp_path / "runs")
    result = run_cli(
        "train", "--blocks", "1", "--widen-factor", "2", "--dataset", "folder", "--data-dir", str(root),
        "--subset-train", "5000", "--subset-test", "1000", "--epochs", "4", "--optimizer", "sgd-nesterov",
        "--schedule", "onecycle", "--lr", "0.2", "--device", "cpu", "--runs-dir", runs_dir, "--name", "cifar",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    export = run_cli("runs", "export", "cifar", "--format", "csv", "--runs-dir", runs_dir)
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert len(rows) == 4
    for column in ("train_acc", "train_loss", "test_acc", "test_loss"):
        assert all(r[column] for r in rows)
    final = float(rows[-1]["test_acc"])
    print(f"WRN-10-2 on 5,000 CIFAR-10 JPEGs, 4 epochs: test accuracy {final:.1%}")
    assert final >= 0.35


def test_killed_process_leaves_an_interrupted_run_that_resumes(tmp_path):
    """SIGKILL mid-epoch (no chance to save): the run is found interrupted and resumes from its last epoch."""
    runs_dir = str(tmp_path)
    args = [sys.executable, "-m", "wrn_core", "train", *TINY, "--synthetic-train", "640", "--epochs", "3",
            "--runs-dir", runs_dir, "--name", "killed"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = Path(runs_dir) / "killed"

    def into_epoch_two() -> bool:
        records = RunStore(runs_dir).get("killed").read_metrics() if (run_dir / "config.json").exists() else []
        return any(r["kind"] == "epoch" for r in records) and max((r.get("step", 0) for r in records), default=0) >= 23

    wait_until(into_epoch_two, "epoch 1 checkpointed and epoch 2 a few steps in", interval=0.02, proc=proc)
    proc.kill()
    proc.wait(timeout=30)
    run = RunStore(runs_dir).get("killed")
    assert json.loads(run.status_path.read_text())["status"] == "running"  # what the dead process left behind

    # Every reader sees the truth at once: the lock died with the process.
    show = run_cli("runs", "show", "killed", "--runs-dir", runs_dir)
    assert show.returncode == 0 and shown(show)["status"]["status"] == "interrupted"
    listing = run_cli("runs", "list", "--runs-dir", runs_dir)
    assert "interrupted" in listing.stdout
    assert json.loads(run.status_path.read_text())["status"] == "interrupted"  # list persisted it
    result = run_cli("resume", "killed", "--runs-dir", runs_dir)
    assert result.returncode == 0, result.stderr
    assert run.read_status()["status"] == "finished"
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == list(range(1, 61))  # the lost part of epoch 2 is redone once, not duplicated
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1, 2, 3]


def test_unwritable_runs_dir_is_one_line_not_a_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("train", *TINY, "--runs-dir", str(blocker / "runs"), timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a directory" in lines[0].lower() and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# A run store you can trust: one writer per run, honest statuses, damaged files


def _cli_waiting_for(go: Path, *args: str) -> subprocess.Popen:
    """A CLI process that imports everything, says so by creating `<go>.ready-<pid>`, then waits for `go` to
    exist before running: a fair race."""
    code = (
        "import os, sys, time\n"
        "from wrn_core.cli import main\n"
        "import wrn_core.engine.loop\n"
        f"open({str(go)!r} + f'.ready-{{os.getpid()}}', 'w').close()\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.002)\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=trainer_env())


def _wait_until_ready(go: Path, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    """Until every process of _cli_waiting_for has created its ready file (or one has exited early)."""
    deadline = time.monotonic() + timeout
    while not all(Path(f"{go}.ready-{p.pid}").exists() for p in procs):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        assert time.monotonic() < deadline, "the racers never became ready"
        time.sleep(0.02)


def test_two_resumes_released_together_train_once(tmp_path):
    runs_dir = str(tmp_path / "runs")
    assert main(["train", *TINY, "--epochs", "1", "--runs-dir", runs_dir, "--name", "race"]) == 0
    go = tmp_path / "go"
    # 29 more epochs keep the winner training for seconds, so the loser meets the lock rather than a run
    # that already finished (a fast winner can finish a few epochs before the other process is scheduled).
    racers = [_cli_waiting_for(go, "resume", "race", "--epochs", "30", "--runs-dir", runs_dir) for _ in range(2)]
    _wait_until_ready(go, racers)  # both have imported torch and are polling
    go.touch()
    results = [(p.wait(timeout=300), *p.communicate()) for p in racers]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    winner_pid = next(p.pid for p, (code, _, _) in zip(racers, results) if code == 0)
    assert loser.strip().splitlines() == [f"error: run 'race' is being trained by pid {winner_pid} on {socket.gethostname()}"]
    run = RunStore(runs_dir).get("race")
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == list(range(1, 31))
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == sorted(set(steps)) and len(steps) == 120
    assert run.read_status()["status"] == "finished"


def test_a_queued_dashboard_job_reads_queued_elsewhere_and_cannot_be_taken(tmp_path):
    from wrn_core.jobs import JobManager

    runs_dir = tmp_path / "runs"
    manager = JobManager(runs_dir)
    try:
        manager.submit(_tiny_config(epochs=200), "ahead")  # keeps the device busy
        manager.submit(_tiny_config(epochs=1), "waiting")
        ahead = manager.store.get("ahead")
        deadline = time.monotonic() + 120
        while ahead.read_status()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)  # its process is starting
        listing = run_cli("runs", "list", "--runs-dir", str(runs_dir))
        rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
        assert " queued " in rows["waiting"] and " running " in rows["ahead"], listing.stdout
        show = shown(run_cli("runs", "show", "waiting", "--runs-dir", str(runs_dir)))
        assert show["status"]["status"] == "queued" and show["status"]["owner"]["pid"] == os.getpid()
        taken = run_cli("resume", "waiting", "--runs-dir", str(runs_dir))
        assert taken.returncode == 2
        assert taken.stderr.strip() == f"error: run 'waiting' is queued by pid {os.getpid()} on {socket.gethostname()}"
    finally:
        manager.shutdown()
    # The queue's owner is gone (shut down): the queued run was stopped, never trained twice.
    run = RunStore(runs_dir).get("waiting")
    assert run.read_status()["status"] == "stopped"
    assert not [r for r in run.read_metrics() if r["kind"] in ("step", "epoch")]


def _tiny_config(**changes):
    from wrn_core.config import TrainConfig, WRNConfig

    base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=128, synthetic_test=50,
                       batch_size=32, device="cpu", log_every=1)
    return base.replace(**changes)


def _stopped_run(runs_dir: str, name: str) -> None:
    assert main(["train", *TINY, "--epochs", "1", "--runs-dir", runs_dir, "--name", name]) == 0


@pytest.mark.parametrize("damage,fragment", [
    ("{garbage", "config.json of run 'broken' is unreadable"),
    ("{}", "config.json of run 'broken' lacks model, dataset, optimizer, epochs, batch_size"),
])
def test_a_corrupt_config_is_one_line_exit_2_and_the_run_stays_listed_and_deletable(tmp_path, damage, fragment):
    runs_dir = str(tmp_path)
    _stopped_run(runs_dir, "broken")
    _stopped_run(runs_dir, "fine")
    (tmp_path / "broken" / "config.json").write_text(damage)
    resumed = run_cli("resume", "broken", "--epochs", "3", "--runs-dir", runs_dir)
    lines = resumed.stderr.strip().splitlines()
    assert resumed.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {fragment}"), resumed.stderr
    show = run_cli("runs", "show", "broken", "--runs-dir", runs_dir)
    assert show.returncode == 2 and shown(show)["config"] is None and fragment in show.stderr
    assert "Traceback" not in show.stderr + resumed.stderr
    listing = run_cli("runs", "list", "--runs-dir", runs_dir)
    assert listing.returncode == 0 and "broken" in listing.stdout and "fine" in listing.stdout
    assert run_cli("runs", "delete", "broken", "--runs-dir", runs_dir).returncode == 0
    assert RunStore(runs_dir).names() == ["fine"]


def test_a_corrupt_checkpoint_is_one_line_exit_2_and_changes_nothing(tmp_path):
    runs_dir = str(tmp_path)
    _stopped_run(runs_dir, "ckpt")
    run = RunStore(runs_dir).get("ckpt")
    run.checkpoint_path.write_bytes(b"PK\x03\x04 truncated")
    before = run.status_path.read_bytes()
    result = run_cli("resume", "ckpt", "--epochs", "2", "--runs-dir", runs_dir)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: checkpoint.pt of run 'ckpt' is unreadable (")
    assert len(result.stderr.strip().splitlines()) == 1
    assert run.status_path.read_bytes() == before and run.read_config().epochs == 1


def test_a_corrupt_status_is_rebuilt_and_the_run_resumes(tmp_path):
    runs_dir = str(tmp_path)
    _stopped_run(runs_dir, "status")
    run = RunStore(runs_dir).get("status")
    run.status_path.write_text("{ not json")
    show = shown(run_cli("runs", "show", "status", "--runs-dir", runs_dir))
    assert show["status"]["status"] == "finished" and show["status"]["rebuilt"] is True
    assert "rebuilt from metrics.jsonl: 1/1 epochs" in show["status"]["message"]
    result = run_cli("resume", "status", "--epochs", "2", "--runs-dir", runs_dir)
    assert result.returncode == 0, result.stderr
    status = run.read_status()
    assert status["status"] == "finished" and status["epoch"] == 2 and status["created_at"] > 0


ENOSPC_TRAIN = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from disk_full import filling_open, install
from wrn_core.cli import main
# The disk fills up when the first checkpoint is written.
install(filling_open(lambda path: ".checkpoint.pt." in path, 0))
sys.exit(main(sys.argv[1:]))
"""


def test_a_full_disk_during_a_cli_run_fails_it_with_one_line_and_frees_it(tmp_path):
    from test_store import small_tmpfs, unmount

    mount = tmp_path / "disk"
    # WRN-10-1's checkpoint (~0.7 MB) does not fit 400 KiB; config, status and metrics do.
    mounted = small_tmpfs(mount, "400k")
    runs_dir = str(mount / "runs")
    try:
        train = ["train", *TINY, "--epochs", "2", "--runs-dir", runs_dir, "--name", "full"]
        if mounted:
            result = run_cli(*train)
        else:  # no tmpfs here: the same failure injected into the real CLI process
            result = subprocess.run([sys.executable, "-c", ENOSPC_TRAIN, *train], capture_output=True, text=True,
                                    timeout=300, cwd=REPO)
        assert result.returncode == 1, result.stderr
        assert "failed: no space left on device while writing the checkpoint" in result.stderr
        assert "Traceback" not in result.stderr
        run = RunStore(runs_dir).get("full")
        status = run.read_status()
        assert status["status"] == "failed" and status["message"] == "no space left on device while writing the checkpoint"
        # The lock at the moment of the failure is checked in-process (test_a_full_disk_while_metrics_are_appended_fails_the_run_as_io);
        # after the process has exited the kernel has dropped it anyway.
        assert not run.error_path.exists()
        assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
        # Kept: the first epoch's points, and those the second trained while the failed write ran in the background.
        steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
        assert steps[:4] == [1, 2, 3, 4] and steps == list(range(1, len(steps) + 1))
        listing = run_cli("runs", "list", "--runs-dir", runs_dir)
        assert listing.returncode == 0 and "failed" in listing.stdout
    finally:
        if mounted:
            unmount(mount)


def _fails_after(name: str, good_writes: int, failures: int | None):
    """An `on(path)` for filling_open: after the first good_writes writes of `name` (or its temporary file), the next
    `failures` fail (all of them when None)."""
    seen = [0]

    def on(path: str) -> bool:
        if not (path.endswith("/" + name) or f"/.{name}." in path):
            return False
        seen[0] += 1
        return seen[0] > good_writes and (failures is None or seen[0] <= good_writes + failures)

    return on


def _train_on_a_filling_disk(tmp_path, monkeypatch, name: str, good_writes: int, failures: int | None = None):
    """`train` in this process while writes of `name` fail after good_writes; returns (exit code, run, lock at the end).

    The lock is looked at when the engine handles the failure (loop._end), where it must still be held.
    """
    from disk_full import filling_open, install
    from wrn_core.engine import loop
    from wrn_core.store.lock import probe_owner

    on = _fails_after(name, good_writes, failures)
    install(filling_open(on, 0), monkeypatch)
    at_end: dict = {}
    real_end = loop._end

    def end(run, *args, **kwargs):
        at_end.update(held=run.lock.held, owner=probe_owner(run.lock.path))
        return real_end(run, *args, **kwargs)

    monkeypatch.setattr(loop, "_end", end)
    runs_dir = str(tmp_path / "runs")
    code = main(["train", *TINY, "--epochs", "2", "--quiet", "--runs-dir", runs_dir, "--name", "full"])
    return code, RunStore(runs_dir).get("full"), at_end


def _freed_with_points_kept(run, at_end: dict) -> None:
    assert at_end["held"] and at_end["owner"].pid == os.getpid()  # failing while it still holds the run
    assert run.owner() is None and not run.lock.held  # then released, in this very process
    assert not [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
    assert run.read_metrics_log().unreadable == 0
    steps = [r["step"] for r in run.read_metrics() if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))


def test_a_full_disk_while_metrics_are_appended_fails_the_run_as_io(tmp_path, monkeypatch, capsys):
    # metrics.jsonl gets created, system, 4 steps, epoch, system, then step 5 and step 6: the 10th write fails.
    code, run, at_end = _train_on_a_filling_disk(tmp_path, monkeypatch, "metrics.jsonl", 9)
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[0] == "failed: no space left on device while writing metrics.jsonl"
    status = run.read_status()
    assert (status["status"], status["error_kind"]) == ("failed", "io")
    assert status["message"] == "no space left on device while writing metrics.jsonl"
    _freed_with_points_kept(run, at_end)
    assert [r["step"] for r in run.read_metrics() if r["kind"] == "step"] == [1, 2, 3, 4, 5]
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1]


def test_a_status_json_write_failing_mid_training_fails_the_run_as_io(tmp_path, monkeypatch, capsys):
    # status.json: created, loading, training, then epoch 1's: the 4th write fails once; the failure is then recorded.
    code, run, at_end = _train_on_a_filling_disk(tmp_path, monkeypatch, "status.json", 3, failures=1)
    assert code == 1
    status = run.read_status()
    assert (status["status"], status["error_kind"]) == ("failed", "io")
    assert status["message"] == "no space left on device while writing status.json"
    _freed_with_points_kept(run, at_end)
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1]  # recorded before the status


def test_a_status_json_that_can_no_longer_be_written_reads_interrupted(tmp_path, monkeypatch, capsys):
    """As the README says: with no room even for the failure, the run reads interrupted once its lock is free."""
    code, run, at_end = _train_on_a_filling_disk(tmp_path, monkeypatch, "status.json", 3)
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "failed: status.json could not be written, so the run reads interrupted; resume to continue"]
    assert json.loads(run.status_path.read_text())["status"] == "running"  # the last status that could be written
    status = run.read_status()
    assert status["status"] == "interrupted" and status["message"].endswith("resume to continue")
    _freed_with_points_kept(run, at_end)
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == [1]
    assert run.has_checkpoint() and run.load_checkpoint()["step"] == 4  # so it can resume from epoch 1


FINISHED_SOAK = "error: cannot resume run 'soak': it already finished its 6 epochs; give a larger number of epochs to continue"


def test_soak_a_fast_reader_and_resume_attempts_around_a_stop(tmp_path):
    """`runs list` read in a loop all the while a run trains, stops and is taken over: no reader ever sees a false
    `interrupted` or an error. A resume attempt while it trains is refused in one line; after the user's Ctrl-C,
    of three attempts released together exactly one takes over and trains the rest once; one after the end is
    refused. The moments are made, not waited for: the trainer is frozen (SIGSTOP) while it is tried."""
    runs_dir = str(tmp_path / "runs")
    epochs = 6
    resume = ["resume", "soak", "--runs-dir", runs_dir, "--quiet"]
    trainer = subprocess.Popen(
        [sys.executable, "-m", "wrn_core", "train", *TINY, "--synthetic-train", "256", "--epochs", str(epochs),
         "--runs-dir", runs_dir, "--name", "soak"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    failures: list[str] = []
    statuses: set[str] = set()
    stop_reading = threading.Event()
    streams = threading.Lock()  # redirect_stdout swaps sys.stdout for every thread: one caller at a time

    def cli(argv: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with streams, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    def reader() -> None:
        while not stop_reading.is_set():
            try:
                code, out, err = cli(["runs", "list", "--runs-dir", runs_dir])
            except Exception as exc:  # noqa: BLE001 - the point is that none happens
                failures.append(repr(exc))
                continue
            if code != 0 or "Traceback" in err:
                failures.append(err)
            for line in out.splitlines()[1:]:
                statuses.add(line.split()[4])
            time.sleep(0.05)

    thread = threading.Thread(target=reader, daemon=True)
    store = RunStore(runs_dir)
    racers: list[subprocess.Popen] = []
    try:
        wait_until(lambda: store.exists("soak") and any(r["kind"] == "epoch" for r in store.get("soak").read_metrics()),
                   "the first epoch", proc=trainer)
        thread.start()
        os.kill(trainer.pid, signal.SIGSTOP)  # it keeps its lock and cannot finish while it is tried
        try:
            wait_until(lambda: "running" in statuses, "the reader to see the run training")
            code, _, err = cli(resume)
            assert (code, err) == (2, f"error: run 'soak' is being trained by pid {trainer.pid} on {socket.gethostname()}\n")
            trainer.send_signal(signal.SIGINT)  # the user stops it, mid-run for certain; an attempt below takes over
        finally:
            os.kill(trainer.pid, signal.SIGCONT)
        assert trainer.wait(timeout=60) == 0
        assert store.get("soak").read_status()["status"] == "stopped"
        wait_until(lambda: "stopped" in statuses, "the reader to see the run stopped")
        go = tmp_path / "go"
        racers = [_cli_waiting_for(go, *resume) for _ in range(3)]
        _wait_until_ready(go, racers)
        go.touch()
        results = [(p.wait(timeout=300), *p.communicate()) for p in racers]
        wait_until(lambda: "finished" in statuses, "the reader to see the run finished")
        code, _, err = cli(resume)
        assert (code, err.strip()) == (2, FINISHED_SOAK), err
    finally:
        stop_reading.set()
        if thread.is_alive():
            thread.join(timeout=30)
        for proc in [trainer, *racers]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert failures == []
    assert statuses == {"running", "stopped", "finished"}, statuses  # never a false `interrupted`
    assert sorted(code for code, _, _ in results) == [0, 2, 2], results
    winner = next(p.pid for p, (code, _, _) in zip(racers, results) if code == 0)
    for code, _, err in results:
        if code == 2:
            lines = err.strip().splitlines()
            assert lines in ([f"error: run 'soak' is being trained by pid {winner} on {socket.gethostname()}"],
                             [FINISHED_SOAK]), err
    run = RunStore(runs_dir).get("soak")
    assert run.read_status()["status"] == "finished"
    assert [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"] == list(range(1, epochs + 1))
    assert [r["step"] for r in run.read_metrics() if r["kind"] == "step"] == list(range(1, epochs * 8 + 1))


# ---------------------------------------------------------------------------------------------
# What `runs show` adds to a run


def test_runs_show_prints_the_command_and_the_findings(tmp_path, capsys):
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=3)
    run = RunStore(tmp_path).create(config, "chance")
    run.append_metrics([
        {"kind": "epoch", "epoch": e, "step": 200 * e, "images_seen": 6400 * e, "time": float(e),
         "train_loss": 2.0 / e, "train_acc": 0.3 * e, "test_loss": 2.3, "test_acc": 0.1} for e in (1, 2)
    ])
    assert main(["runs", "show", "chance", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    shown, _ = json.JSONDecoder().raw_decode(out)
    assert shown["command"] == command_for(config, runs_dir=str(tmp_path))
    assert parse_command(shown["command"]) == config
    assert [(f["rule"], f["severity"]) for f in shown["findings"]] == [("test-at-chance", "error")]
    assert set(shown["findings"][0]) == {"rule", "severity", "message", "advice"}
    assert "error: test accuracy 10.0% is at chance" in out and "advice: suspect a train/eval mismatch" in out

    RunStore(tmp_path).create(config, "fresh")
    assert main(["runs", "show", "fresh", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert [f["rule"] for f in json.JSONDecoder().raw_decode(out)[0]["findings"]] == ["too-early"]
    assert "no problems found" not in out and "info: too early to judge: no training step recorded yet" in out


def test_train_runs_on_a_bare_gpu_machine_without_dashboard_packages_or_tqdm(tmp_path):
    """The GPU machine has torch, torchvision, numpy, pandas and psutil only: train and runs must work there."""
    blocked = "import sys\nfor m in ('tqdm', 'streamlit', 'plotly', 'torchinfo'): sys.modules[m] = None\n"
    code = blocked + "from wrn_core.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    runs = str(tmp_path / "runs")
    trained = subprocess.run([sys.executable, "-c", code, "train", *TINY, "--epochs", "1", "--runs-dir", runs, "--name", "bare"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert "finished: finished 1 epochs" in trained.stderr
    listed = subprocess.run([sys.executable, "-c", code, "runs", "show", "bare", "--runs-dir", runs],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert shown(listed)["status"]["status"] == "finished"
