"""Tests of bench/: the MAC counter, window rates, the folder helper, and the --quick runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from bench.common import count_macs, prepare_image_folder, rates_from_points, wrn_macs

REPO = Path(__file__).resolve().parent.parent
# Modules the GPU machine does not have; bench and the engine must run without them.
ABSENT = ("streamlit", "plotly", "torchinfo", "tqdm")
BLOCK = "import sys\nfor _m in %r: sys.modules[_m] = None\n" % (ABSENT,)


def test_macs_match_published_counts():
    assert wrn_macs(28, 10) == pytest.approx(5.24e9, rel=0.01)
    assert wrn_macs(16, 8) == pytest.approx(1.55e9, rel=0.01)


def test_macs_agree_with_torchinfo_summary():
    pytest.importorskip("torchinfo")
    from wrn_core.config import WRNConfig
    from wrn_core.model import build_model
    from wrn_core.summary import totals

    config = WRNConfig(depth=10, widen_factor=2)
    # torchinfo also counts BatchNorm's 2C per image, a few thousand of ~44 million.
    assert count_macs(build_model(config)) == pytest.approx(totals(config).total_macs, rel=1e-3)


def test_rates_skip_warmup_and_epoch_boundaries():
    # (step, images_seen, seconds): 10 steps per epoch, logged every 5 steps, batch 100.
    points = [(5, 500, 1.0), (10, 1000, 2.0), (15, 1500, 4.0), (20, 2000, 4.5)]
    # The 10 -> 15 interval crosses into epoch 2 (its time includes the evaluation): dropped.
    assert rates_from_points(points, steps_per_epoch=10, warmup_steps=5) == [500.0, 1000.0]
    assert rates_from_points(points, steps_per_epoch=10, warmup_steps=10) == [1000.0]


def _tiny_folder(root: Path, classes: int = 4, train: int = 130, test: int = 65) -> Path:
    """An ImageFolder of random 32x32 PNGs: enough for the --quick subsets (512 train / 256 test)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for k in range(classes):
            folder = root / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                pixels[..., k % 3] //= 2  # a little class signal
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    return _tiny_folder(tmp_path_factory.mktemp("tiny") / "images")


def test_prepare_image_folder_unpacks_once(tmp_path):
    source = _tiny_folder(tmp_path / "src", classes=2, train=3, test=2)
    tarball = tmp_path / "tiny.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(source / "train", arcname="train")
        archive.add(source / "test", arcname="test")
    cache = tmp_path / "cache"
    root = prepare_image_folder(tarball, cache_root=cache)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["class0", "class1"]
    assert prepare_image_folder(tarball, cache_root=cache) == root  # reused, not unpacked again
    assert prepare_image_folder(root) == root  # an unpacked folder is used as is


def _run_blocked(module: str, args: list[str]) -> subprocess.CompletedProcess:
    """Run `python -m module args` with streamlit, plotly, torchinfo and tqdm made unimportable."""
    code = BLOCK + f"import runpy\nsys.argv = [{module!r}] + {args!r}\nrunpy.run_module({module!r}, run_name='__main__')\n"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def test_bench_imports_without_dashboard_packages():
    modules = "bench.throughput, bench.time_to_accuracy, bench.common, bench.ddp_scaling, bench.sweep_overhead, " \
              "bench.dashboard_overhead, wrn_core.train"
    code = BLOCK + f"import {modules}\nprint('ok')\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_dashboard_overhead_says_in_one_line_what_it_lacks():
    # On the GPU machine (no streamlit, plotly): one line and exit 2, not a traceback.
    done = _run_blocked("bench.dashboard_overhead", ["--device", "cuda"])
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench.dashboard_overhead needs streamlit, plotly"), done.stderr


def test_sweep_overhead_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "sweep.json"
    done = _run_blocked("bench.sweep_overhead", ["--quick", "--threads", "1", "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["kind"] == "sweep_overhead" and result["quick"] is True and result["device"] == "cpu"
    for field in ("ratio", "prediction_error", "alone_total_s", "predicted_s", "rounds", "ratio_target", "date", "device_name"):
        assert field in result, field
    (round_,) = result["rounds"]
    swept = round_["sweep-no-probe"]
    assert round_["alone_total_s"] > 0 and swept["wall_s"] > 0 and swept["cells_s"] > 0
    assert result["ratio"] == pytest.approx(round_["alone_total_s"] / swept["wall_s"])
    assert round_["prediction"]["predicted_s"] > 0 and result["prediction_error"] is not None
    assert 0 < result["sweep-no-probe"]["ratio_accounted"] and swept["fixed_overhead_s"] == pytest.approx(
        swept["before_first_cell_s"] + sum(swept["gaps_s"]) + swept["after_last_cell_s"] - sum(round_["alone_exit_s"].values()))
    assert "sum alone / sweep wall" in done.stdout


def test_ddp_scaling_quick_runs_end_to_end(tmp_path):
    out = tmp_path / "ddp.json"
    done = _run_blocked("bench.ddp_scaling", ["--quick", "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["kind"] == "ddp_scaling" and result["device"] == "cpu" and result["processes"] == 2
    assert result["threads_per_process"] == 1
    assert [(r["mode"], r["processes"]) for r in result["runs"]] == [("single", 1), ("ddp", 2)]
    assert all(r["rates"] for r in result["runs"])
    assert result["ratio"] == pytest.approx(result["ddp_img_s"] / result["single_img_s"])
    assert result["efficiency"] == pytest.approx(result["ratio"] / 2)


def test_throughput_quick_runs_end_to_end(tiny_folder, tmp_path):
    out = tmp_path / "throughput.json"
    done = _run_blocked("bench.throughput", ["--device", "cpu", "--quick", "--threads", "1", "--data-dir", str(tiny_folder), "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    records = json.loads(out.read_text())
    speed = [r for r in records if r["kind"] == "throughput"]
    watch = [r for r in records if r["kind"] == "watch_overhead"]
    assert len(speed) == 1 and len(watch) == 1
    record = speed[0]
    for field in ("model", "device", "batch_size", "engine_img_s", "baseline_img_s", "ratio", "mfu", "peak_flops",
                  "peak_name", "windows", "torch", "device_name", "macs_per_image"):
        assert field in record, field
    assert record["model"] == "WRN-10-1" and record["device"] == "cpu" and record["mfu"] is None
    assert record["engine_img_s"] > 0 and record["baseline_img_s"] > 0
    assert record["ratio"] == pytest.approx(record["engine_img_s"] / record["baseline_img_s"])
    assert len(record["windows"]["engine"]) == 3 and len(record["windows"]["baseline"]) == 3
    assert watch[0]["watch_ratio"] > 0
    assert [r["mode"] for r in watch[0]["runs"]] == ["unwatched", "watched"]
    assert "watching overhead" in done.stdout


def test_time_to_accuracy_quick_runs_end_to_end(tiny_folder, tmp_path):
    out = tmp_path / "tta.json"
    done = _run_blocked("bench.time_to_accuracy", ["--quick", "--threads", "1", "--target", "0.01", "--data-dir", str(tiny_folder), "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "finished" and result["device"] == "cpu" and result["quick"] is True
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    for e in result["epochs"]:
        assert e["time"] > 0 and e["wall_s"] > 0 and 0.0 <= e["test_acc"] <= 1.0
    # A 1% target is met at the first epoch; train time and wall-clock come from that epoch.
    assert result["reached"] and result["epoch_to_target"] == 1
    assert result["seconds_to_target"] == result["epochs"][0]["time"]
    assert result["wall_seconds_to_target"] >= result["seconds_to_target"]
    assert result["final_test_acc"] == result["epochs"][-1]["test_acc"]
    assert result["config"]["dataset"] == "folder" and result["config"]["optimizer"] == "sgd-nesterov"
