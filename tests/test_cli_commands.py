"""Tests for the CLI commands that test_cli.py leaves out: devices, presets, download, ddp --check-only, the memory
pre-flight, extending a schedule, and what `runs export --format json` and the unreadable-lines notice say."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from wrn_core.cli import main
from wrn_core.engine import devices
from wrn_core.engine.devices import DeviceInfo
from wrn_core.store import RunStore
from wrn_core.store.records import FINISHED

TINY = ["--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic", "--synthetic-train", "128",
        "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu", "--log-every", "1", "--quiet"]


def one_line(text: str) -> str:
    """The only line of `text`; fails when there are more."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------------------------------------
# devices, presets


def test_devices_as_a_table_and_as_json(capsys):
    assert main(["devices"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert main(["devices", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in found][0] == "cpu"
    assert {"name", "kind", "description", "total_memory_mb", "free_memory_mb", "compute_capability"} == set(found[0])
    assert [line.split(" — ")[0] for line in table] == [row["name"] for row in found]  # one line per device
    cpu = found[0]
    assert cpu["kind"] == "cpu" and 0 < cpu["free_memory_mb"] <= cpu["total_memory_mb"]
    assert table[0].startswith(f"cpu — {cpu['description']} (") and "GiB free of" in table[0]


def test_presets_lists_every_recipe_with_what_it_trains(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["paper", "seed-article", "quick-cpu", "fast-gpu"]
    paper = lines[0]
    for fact in ("WRN-16-8", "cifar10", "sgd-nesterov", "step", "200 epochs", "batch 128"):
        assert fact in paper, fact


# ---------------------------------------------------------------------------------------------
# download (torchvision's code path, with the network cut off)


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every name lookup fails as it does offline; returns the hosts that were asked for."""
    asked: list = []

    def offline(host, *args, **kwargs):
        asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    return asked


def _fake_extracted_cifar10(data_dir: Path, monkeypatch) -> None:
    """Tiny CIFAR-10 batch files (2 images each) where torchvision looks, and torchvision told their md5s."""
    from torchvision.datasets import CIFAR10

    folder = data_dir / CIFAR10.base_folder
    folder.mkdir(parents=True)

    def write(name: str, content: dict) -> list[str]:
        (folder / name).write_bytes(pickle.dumps(content))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    batch = {"data": np.zeros((2, 3 * 32 * 32), dtype=np.uint8), "labels": [0, 1]}
    monkeypatch.setattr(CIFAR10, "train_list", [write(f"data_batch_{i}", batch) for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [write("test_batch", batch)])
    name, md5 = write("batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    monkeypatch.setattr(CIFAR10, "meta", {"filename": name, "key": "label_names", "md5": md5})


def test_download_with_the_files_present_reports_the_path_without_the_network(tmp_path, monkeypatch, capsys, no_network):
    _fake_extracted_cifar10(tmp_path / "data", monkeypatch)
    assert main(["download", "cifar10", "--data-dir", str(tmp_path / "data")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "data")
    assert no_network == []


def test_download_without_a_network_is_one_line(tmp_path, capsys, no_network):
    assert main(["download", "cifar10", "--data-dir", str(tmp_path / "data")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: could not download CIFAR-10 into {tmp_path / 'data'} (")
    assert "check the internet connection" in line
    assert no_network  # it did try


# ---------------------------------------------------------------------------------------------
# ddp --check-only


def test_ddp_check_only_prints_the_torchrun_command(tmp_path, capsys):
    inner = ["train", *TINY, "--runs-dir", str(tmp_path)]
    assert main(["ddp", "--nproc-per-node", "2", "--check-only", *inner]) == 0
    expected = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone", "-m", "wrn_core", *inner]
    assert capsys.readouterr().out.strip() == " ".join(expected)
    assert RunStore(tmp_path).names() == []  # checking creates nothing


def test_ddp_with_a_batch_that_does_not_divide_is_one_line_exit_2(tmp_path, capsys):
    inner = ["train", *TINY, "--batch-size", "33", "--runs-dir", str(tmp_path)]
    assert main(["ddp", "--nproc-per-node", "2", "--check-only", *inner]) == 2
    captured = capsys.readouterr()
    assert "33" in one_line(captured.err) and captured.out == ""
    assert RunStore(tmp_path).names() == []


# ---------------------------------------------------------------------------------------------
# The memory pre-flight


@pytest.fixture
def little_free_ram(monkeypatch) -> None:
    """The CPU reports 1 MiB free: any run is predicted not to fit (nothing is really allocated)."""
    cpu = DeviceInfo("cpu", "cpu", "test CPU", 64_000.0, 1.0, None)
    monkeypatch.setattr(devices, "list_devices", lambda: [cpu])


def test_train_refuses_a_run_predicted_not_to_fit_and_force_trains_it(tmp_path, capsys, little_free_ram):
    runs_dir = str(tmp_path)
    assert main(["train", *TINY, "--epochs", "1", "--runs-dir", runs_dir, "--name", "big"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: predicted training memory ") and "against 1 MiB free on RAM" in line
    assert line.endswith("it would not fit; use a smaller batch or model, another device, or --force")
    assert RunStore(runs_dir).names() == []

    assert main(["train", *TINY, "--epochs", "1", "--runs-dir", runs_dir, "--name", "big", "--force"]) == 0
    run = RunStore(runs_dir).get("big")
    assert run.read_status()["status"] == FINISHED
    capsys.readouterr()

    # resume checks too, under the run's lock, and leaves the run as it was
    before = run.status_path.read_bytes()
    assert main(["resume", "big", "--epochs", "2", "--runs-dir", runs_dir]) == 2
    assert "it would not fit" in one_line(capsys.readouterr().err)
    assert run.owner() is None and run.status_path.read_bytes() == before and run.read_config().epochs == 1


# ---------------------------------------------------------------------------------------------
# Extending a one-cycle run, and what export and show say about it


@pytest.fixture(scope="module")
def onecycle_run(tmp_path_factory) -> Path:
    """A finished 2-epoch one-cycle run (its lr ends at 0), trained once; tests copy it."""
    runs_dir = tmp_path_factory.mktemp("onecycle")
    assert main(["train", *TINY, "--epochs", "2", "--schedule", "onecycle", "--runs-dir", str(runs_dir), "--name", "base"]) == 0
    return runs_dir / "base"


def copy_of(run_dir: Path, tmp_path: Path) -> RunStore:
    shutil.copytree(run_dir, tmp_path / run_dir.name)
    return RunStore(tmp_path)


def lrs_of_epoch(run, epoch: int) -> list[float]:
    """The per-step lr of the steps inside the 1-based epoch."""
    return [r["lr"] for r in run.read_metrics() if r["kind"] == "step" and epoch - 1 < r["epoch"] <= epoch]


def test_continuing_a_schedule_that_ended_at_lr_0_warns(onecycle_run, tmp_path, capsys):
    """Asked for explicitly (the default restarts such a plan: tests/test_engine_extend.py)."""
    store = copy_of(onecycle_run, tmp_path)
    assert main(["resume", "base", "--epochs", "3", "--extend-schedule", "continue", "--runs-dir", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: the onecycle schedule ended at learning rate 0, so continuing it trains nothing; "
                        "use the 'restart' extension to run the schedule again over the added epochs"]
    assert set(lrs_of_epoch(store.get("base"), 3)) == {0.0}


def test_restarting_the_schedule_runs_it_again_without_a_warning(onecycle_run, tmp_path, capsys):
    store = copy_of(onecycle_run, tmp_path)
    first = lrs_of_epoch(store.get("base"), 1) + lrs_of_epoch(store.get("base"), 2)
    assert main(["resume", "base", "--epochs", "4", "--extend-schedule", "restart", "--runs-dir", str(tmp_path), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    again = lrs_of_epoch(store.get("base"), 3) + lrs_of_epoch(store.get("base"), 4)
    assert again == pytest.approx(first)  # the same two-epoch cycle over the two added epochs
    assert max(again) > 0


# The fields README/DEVELOPERS.md promise for each record kind.
STEP_FIELDS = {"kind", "step", "epoch", "images_seen", "time", "train_loss", "train_acc", "lr"}
EPOCH_FIELDS = STEP_FIELDS | {"test_loss", "test_acc", "epoch_seconds", "images_per_s", "peak_mem_mb", "boundary_s",
                              "checkpoint_wait_s"}
SYSTEM_FIELDS = {"kind", "step", "epoch", "time", "wall_time", "cpu_percent", "rss_mb", "cuda_allocated_mb",
                 "cuda_reserved_mb", "cuda_peak_mb", "gpu_util", "gpu_memory_util", "gpu_memory_used_mb", "gpu_temp_c",
                 "gpu_power_w"}
RESUME_FIELDS = {"kind", "from_step", "from_epoch", "time", "wall_time", "epochs"}
WIDTH_FIELDS = {"kind", "epoch", "step", "time", "images", "layers"}
WIDTH_LAYER_FIELDS = {"layer", "channels", "dead", "effective"}


def test_runs_export_json_holds_every_record_with_the_documented_fields(onecycle_run, tmp_path, capsys):
    store = copy_of(onecycle_run, tmp_path)
    assert main(["resume", "base", "--epochs", "3", "--runs-dir", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "export", "base", "--format", "json", "--runs-dir", str(tmp_path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["name"], document["tags"], document["note"]) == ("base", [], "")
    exported = document["records"]
    assert exported == store.get("base").read_metrics()  # the reader's history, as JSON
    by_kind: dict[str, list[dict]] = {}
    for record in exported:
        by_kind.setdefault(record["kind"], []).append(record)
    assert set(by_kind) == {"created", "step", "epoch", "system", "resume", "width"}
    assert exported[0] == {"kind": "created", "wall_time": exported[0]["wall_time"]}
    assert all(set(r) == STEP_FIELDS for r in by_kind["step"])
    assert all(set(r) == EPOCH_FIELDS for r in by_kind["epoch"])
    assert all(set(r) == SYSTEM_FIELDS for r in by_kind["system"])
    assert [set(r) for r in by_kind["resume"]] == [RESUME_FIELDS]
    # Width use is measured at every evaluation by default: one record per epoch, at the epoch's step.
    assert all(set(r) == WIDTH_FIELDS for r in by_kind["width"])
    assert all(set(layer) == WIDTH_LAYER_FIELDS for r in by_kind["width"] for layer in r["layers"])
    assert [(r["epoch"], r["step"]) for r in by_kind["width"]] == [(r["epoch"], r["step"]) for r in by_kind["epoch"]]
    # Values: 4 steps an epoch, 3 epochs, accuracies as fractions, training time only growing.
    assert [r["step"] for r in by_kind["step"]] == list(range(1, 13))
    assert [r["images_seen"] for r in by_kind["step"]] == [32 * s for s in range(1, 13)]
    assert [(r["epoch"], r["step"]) for r in by_kind["epoch"]] == [(1, 4), (2, 8), (3, 12)]
    assert all(0 <= r[key] <= 1 for r in by_kind["epoch"] for key in ("train_acc", "test_acc"))
    times = [r["time"] for r in exported if r["kind"] in ("step", "epoch")]
    assert times == sorted(times) and times[0] > 0
    resume = by_kind["resume"][0]
    assert (resume["from_step"], resume["from_epoch"], resume["epochs"]) == (8, 2.0, 3)


def test_runs_show_and_export_warn_about_unreadable_lines(onecycle_run, tmp_path, capsys):
    store = copy_of(onecycle_run, tmp_path)
    with open(store.get("base").metrics_path, "a", encoding="utf-8") as f:
        f.write("{torn\n[1, 2]\n")
    for command in (["runs", "show", "base"], ["runs", "export", "base", "--format", "json"]):
        assert main([*command, "--runs-dir", str(tmp_path)]) == 0
        captured = capsys.readouterr()
        assert one_line(captured.err) == "warning: 2 unreadable lines in metrics.jsonl (skipped)"
    assert len(json.loads(captured.out)["records"]) == len(store.get("base").read_metrics())  # the readable records still come out


def _tiny_run(root: Path, name: str):
    from wrn_core.config import TrainConfig, WRNConfig

    return RunStore(root).create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), dataset="synthetic"), name)


def test_the_cli_reads_runs_from_wrn_runs_dir_as_the_dashboard_does(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    _tiny_run(elsewhere, "from-env")
    _tiny_run(tmp_path / "cwd" / "runs", "from-cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("WRN_RUNS_DIR", str(elsewhere))
    assert main(["runs", "list"]) == 0
    listed = capsys.readouterr().out
    assert "from-env" in listed and "from-cwd" not in listed
    assert main(["runs", "show", "from-env"]) == 0
    shown, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    assert shown["path"] == str(elsewhere / "from-env")
    assert main(["runs", "list", "--runs-dir", "runs"]) == 0  # the flag wins over the variable
    listed = capsys.readouterr().out
    assert "from-cwd" in listed and "from-env" not in listed
    from dashboard import jobs  # the dashboard's default is the same directory

    assert jobs.runs_dir() == elsewhere.resolve()


def test_without_wrn_runs_dir_the_cli_reads_runs_in_the_current_directory(tmp_path, monkeypatch, capsys):
    _tiny_run(tmp_path / "runs", "here")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WRN_RUNS_DIR", raising=False)
    assert main(["runs", "list"]) == 0
    assert "here" in capsys.readouterr().out
    from dashboard import jobs

    assert jobs.runs_dir() == (tmp_path / "runs").resolve()
