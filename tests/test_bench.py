"""Tests of bench/: the MAC counter, window rates, the folder helper, augmentation parity, and the --quick runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.accuracy_parity import GPU_EPOCHS, THRESHOLD, parity_setup, parse_model, parse_seeds, summarize
from bench.common import count_macs, prepare_image_folder, rates_from_points, wrn_macs
from bench.conventional import conventional_transform
from missing import require_module

REPO = Path(__file__).resolve().parent.parent
# Modules the GPU machine does not have; bench and the engine must run without them.
ABSENT = ("streamlit", "plotly", "torchinfo", "tqdm")
BLOCK = "import sys\nfor _m in %r: sys.modules[_m] = None\n" % (ABSENT,)


def test_macs_match_published_counts():
    assert wrn_macs(28, 10) == pytest.approx(5.24e9, rel=0.01)
    assert wrn_macs(16, 8) == pytest.approx(1.55e9, rel=0.01)


def test_macs_agree_with_torchinfo_summary():
    require_module("torchinfo")  # in requirements.txt: a skip here would hide a broken install
    from wrn_core.config import WRNConfig
    from wrn_core.model import build_model
    from wrn_core.model.tables import totals

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
    modules = "bench.throughput, bench.time_to_accuracy, bench.accuracy_parity, bench.conventional, bench.common, " \
              "bench.ddp_scaling, bench.sweep_overhead, bench.dashboard_overhead, bench.cli_runs, bench.epoch_gap, " \
              "wrn_core.engine.loop"
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


# ---------------------------------------------------------------------------------------------
# Accuracy parity


def _position_image(size: int = 32) -> np.ndarray:
    """uint8 (H, W, 3): channel 0 holds each pixel's row, channel 1 its column, so a crop tells where it came from."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)


def _decode_draws(batch: torch.Tensor, size: int = 32, pad: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row offsets, column offsets, flips) of augmented position images (N, 3, size, size) in pixel units.

    Every output must be one of the 9 reflect-padded crops of the source rows (and of the columns,
    read forwards or, flipped, backwards); anything else (edge repeated, zero padding) fails here.
    """
    def reflect(index: np.ndarray) -> np.ndarray:
        index = np.abs(index)
        return np.where(index > size - 1, 2 * (size - 1) - index, index)

    crops = {offset: tuple(int(i) for i in reflect(offset + np.arange(size) - pad)) for offset in range(2 * pad + 1)}
    row_code = {seq: offset for offset, seq in crops.items()}
    col_code = {**{seq: (offset, False) for offset, seq in crops.items()},
                **{seq[::-1]: (offset, True) for offset, seq in crops.items()}}
    assert len(col_code) == 2 * len(crops)  # every (offset, flip) reads a different column sequence
    values = batch.round().to(torch.int64).tolist()
    row_seqs = [tuple(image[0][y][0] for y in range(size)) for image in values]  # source row of each output row
    col_seqs = [tuple(image[1][0]) for image in values]  # source column of each output column
    unknown = next((seq for seq in row_seqs if seq not in row_code), None) or next((seq for seq in col_seqs if seq not in col_code), None)
    assert unknown is None, f"not a reflect-padded crop of the source: {unknown}"
    rows = [row_code[seq] for seq in row_seqs]
    cols = [col_code[seq] for seq in col_seqs]
    return np.array(rows), np.array([c[0] for c in cols]), np.array([c[1] for c in cols])


def _engine_draws(n: int) -> torch.Tensor:
    from wrn_core.data import DeviceLoader

    images = torch.from_numpy(_position_image()).permute(2, 0, 1).unsqueeze(0).repeat(n, 1, 1, 1).contiguous()
    # mean 0, std 1/255: the loader's output is the uint8 value itself.
    loader = DeviceLoader(images, torch.zeros(n, dtype=torch.int64), n, (0.0,) * 3, (1 / 255,) * 3,
                          train=True, augment=True, seed=0)
    (batch, _labels), = list(loader.epoch(0))
    return batch


def _conventional_draws(n: int) -> torch.Tensor:
    from PIL import Image

    torch.manual_seed(0)
    transform = conventional_transform((0.0,) * 3, (1 / 255,) * 3, augment=True)
    image = Image.fromarray(_position_image())
    return torch.stack([transform(image) for _ in range(n)])


@pytest.mark.parametrize("path", ["engine", "conventional"])
def test_one_augmentation_draw_is_distributed_the_same_way_on_both_paths(path):
    n = 10_000
    batch = _engine_draws(n) if path == "engine" else _conventional_draws(n)
    assert batch.shape == (n, 3, 32, 32)
    row_offsets, col_offsets, flips = _decode_draws(batch)
    # Crop offsets uniform over 0..8 in each direction: every count within 4 binomial sigmas of n/9.
    expected, sigma = n / 9, (n * (1 / 9) * (8 / 9)) ** 0.5
    for offsets in (row_offsets, col_offsets):
        counts = np.bincount(offsets, minlength=9)
        assert len(counts) == 9, counts
        assert np.all(np.abs(counts - expected) < 4 * sigma), counts
    # Flip rate 0.5 within 4 binomial sigmas (0.02 at 10,000 draws).
    assert abs(flips.mean() - 0.5) < 4 * (0.25 / n) ** 0.5, flips.mean()


def test_parity_setup_on_cuda_is_the_fast_gpu_preset_against_fp32_workers(tmp_path):
    from wrn_core.presets import FAST_GPU, PRESETS

    setup = parity_setup(tmp_path, "cuda")
    preset = PRESETS[FAST_GPU]
    config = setup.config
    assert config.model.name == "WRN-16-8" and config.compile and config.device == "cuda"
    assert (config.lr, config.batch_size, config.label_smoothing, config.schedule) == (
        preset.lr, preset.batch_size, preset.label_smoothing, preset.schedule)
    assert config.subset_train is None and config.subset_test is None  # the full set
    assert config.epochs == GPU_EPOCHS and setup.seeds == (0,)
    assert setup.pin_memory and setup.num_workers == min(8, os.cpu_count() or 1)
    assert setup.config_for(3).seed == 3


def test_parity_setup_defaults_and_overrides_on_cpu(tmp_path):
    setup = parity_setup(tmp_path, "cpu")
    config = setup.config
    assert (config.model.name, config.subset_train, config.subset_test, config.epochs) == ("WRN-10-2", 10_000, 2_000, 8)
    assert setup.seeds == (0, 1, 2) and not config.compile and config.label_smoothing == 0.0
    assert not setup.pin_memory and setup.num_workers == min(2, os.cpu_count() or 1)
    custom = parity_setup(tmp_path, "cpu", model=parse_model("wrn-16-4"), epochs=3, subset_train=0, seeds=parse_seeds("5,7"))
    assert custom.config.model.name == "WRN-16-4" and custom.config.epochs == 3 and custom.seeds == (5, 7)
    assert custom.config.subset_train is None and custom.config.subset_test == 2_000  # 0 = the whole split
    with pytest.raises(ValueError):
        parse_model("resnet-18")
    with pytest.raises(ValueError):
        parse_seeds("0,0")


def test_parity_summary_flags_an_engine_more_than_half_a_point_below():
    def seed(engine: float, conventional: float) -> dict:
        return {"engine": {"final_test_acc": engine, "best_test_acc": engine, "wall_seconds": 1.0},
                "conventional": {"final_test_acc": conventional, "best_test_acc": conventional, "wall_seconds": 2.0},
                "diff_final": engine - conventional, "diff_best": engine - conventional, "images_seen_equal": True}

    behind = summarize([seed(0.80, 0.81), seed(0.80, 0.80), seed(0.79, 0.80)])
    assert behind["diff_final"]["mean"] == pytest.approx(-0.02 / 3)
    assert behind["diff_final"]["std"] == pytest.approx(np.std([-0.01, 0.0, -0.01], ddof=1))
    assert behind["engine_within_threshold"] is False and behind["threshold"] == THRESHOLD
    level = summarize([seed(0.80, 0.803), seed(0.81, 0.81)])
    assert level["engine_within_threshold"] is True and level["images_seen_equal"] is True
    assert summarize([{"seed": 0}])["engine_within_threshold"] is None  # nothing finished yet


def test_accuracy_parity_quick_runs_end_to_end(tiny_folder, tmp_path):
    out = tmp_path / "parity.json"
    done = _run_blocked("bench.accuracy_parity", ["--quick", "--threads", "1", "--data-dir", str(tiny_folder), "--out", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["kind"] == "accuracy_parity" and result["partial"] is False and result["device"] == "cpu"
    assert len(result["seeds"]) == 1
    seed = result["seeds"][0]
    engine, conventional = seed["engine"], seed["conventional"]
    for r in (engine, conventional):
        assert 0.0 <= r["final_test_acc"] <= 1.0 and 0.0 <= r["best_test_acc"] <= 1.0
        assert r["best_test_acc"] >= r["final_test_acc"] and r["wall_seconds"] > 0
        assert [e["epoch"] for e in r["epochs"]] == [1]
    assert seed["diff_final"] == pytest.approx(engine["final_test_acc"] - conventional["final_test_acc"])
    # Both paths saw the same training images: 1 epoch of 384 // 64 full batches of 64.
    assert engine["images_seen"] == conventional["images_seen"] == 384 and seed["images_seen_equal"]
    assert engine["steps"] == conventional["steps"] == 6
    # The conventional loader's images were checked to be the engine's.
    assert conventional["images_check"]["train"] == {"images": 384, "labels_equal": True, "pixels_checked": 64}
    assert conventional["images_check"]["test"]["images"] == 128
    summary = result["summary"]
    for key in ("engine_final", "conventional_final", "diff_final", "engine_best", "conventional_best", "diff_best"):
        assert summary[key]["mean"] is not None, key
    assert "difference (engine - conventional)" in done.stdout


def test_epoch_gap_measures_the_boundaries_of_a_tiny_run(tmp_path):
    """The benchmark's own arithmetic on a small run: one gap per boundary, a fraction, the baseline beside it."""
    from bench import epoch_gap

    config = epoch_gap.cpu_config(epochs=3, steps=2, batch_size=8).replace(
        model=epoch_gap.WRNConfig(depth=10, widen_factor=1))
    result = epoch_gap.measure(config, tmp_path / "runs", "tiny")
    assert result["status"] == "finished" and result["epochs"] == 3 and result["steps_per_epoch"] == 2
    assert len(result["boundary_gaps_s"]) == 2 and all(g >= 0 for g in result["boundary_gaps_s"])
    assert 0 <= result["boundary_idle_fraction"] < 1
    assert len(result["checkpoint_blocking_s"]) == 3 and len(result["engine_boundary_s"]) == 3
    assert all(g >= e for g, e in zip(result["boundary_gaps_with_evaluation_s"], result["evaluation_s"]))
    baseline = epoch_gap.measure(config, tmp_path / "runs", "sync", synchronous_checkpoint=True)
    assert baseline["status"] == "finished" and len(baseline["boundary_gaps_s"]) == 2
