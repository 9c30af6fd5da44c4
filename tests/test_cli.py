"""Tests for `python -m wrn_core`: summary, train, resume, runs, and one-line errors with exit 2."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrn_core.cli import main
from wrn_core.runstore import RunStore

REPO = Path(__file__).resolve().parents[1]
TINY = ["--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic", "--synthetic-train", "128",
        "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu", "--log-every", "1"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_summary_json_for_wrn_28_10():
    result = run_cli("summary", "--depth", "28", "--widen-factor", "10", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["total_params"] == 36479194
    assert (data["name"], data["depth"], data["blocks"], data["widen_factor"]) == ("WRN-28-10", 28, 4, 10)
    assert abs(data["total_macs"] - 5.24e9) / 5.24e9 < 0.01
    assert sum(layer["params"] for layer in data["layers"]) == 36479194
    assert {"out_channels", "output_shape", "params", "macs"} <= set(data["layers"][0])


def test_summary_table_and_csv(capsys):
    assert main(["summary", "--blocks", "1", "--widen-factor", "8"]) == 0
    out = capsys.readouterr().out
    assert "WRN-10-8" in out and "Total params: 4,764,634" in out
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
    statuses = [run.read_status()["status"] for run in map(RunStore(runs_dir).get, RunStore(runs_dir).names())]
    assert "running" not in statuses


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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.05)
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


def test_real_cifar10_jpegs_wrn_10_2_reaches_35_percent(tmp_path_factory, tmp_path):
    """The issue's acceptance run: WRN-10-2, 5,000/1,000 balanced CIFAR-10 JPEGs, 4 epochs, one-cycle to 0.2."""
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
    deadline = time.monotonic() + 120
    # Wait until epoch 1 is checkpointed and epoch 2 has logged a few steps.
    while time.monotonic() < deadline:
        records = RunStore(runs_dir).get("killed").read_metrics() if (run_dir / "config.json").exists() else []
        if any(r["kind"] == "epoch" for r in records) and max((r["step"] for r in records), default=0) >= 23:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=30)
    run = RunStore(runs_dir).get("killed")
    assert run.read_status()["status"] == "running"  # what the dead process left behind

    listing = run_cli("runs", "list", "--runs-dir", runs_dir)
    assert "interrupted" in listing.stdout
    assert run.read_status()["status"] == "interrupted"
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
    assert len(lines) == 1 and "Not a directory" in lines[0] and "Traceback" not in result.stderr
