"""Tests for wrn_core.cli.flags: command_for re-creates a config field for field, the flag maps, no torch import."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from wrn_core.cli import build_parser
from wrn_core.cli.flags import MODEL_FLAGS, TRAIN_FLAGS, command_for, train_config_from_args
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.presets import PRESETS
from wrn_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]


def test_flags_import_without_torch():
    """The dashboard imports command_for from wrn_core.cli.flags; that must not pay for torch."""
    code = "import sys, wrn_core.cli.flags; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr


def parse_command(command: str):
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "wrn_core", "train"]
    return train_config_from_args(build_parser().parse_args(words[3:]))


def test_every_config_field_has_a_flag_or_is_set_by_the_engine():
    """A new TrainConfig/WRNConfig field fails here until command_for knows how to write it."""
    assert set(MODEL_FLAGS) == {f.name for f in dataclasses.fields(WRNConfig)}
    assert set(TRAIN_FLAGS) == {f.name for f in dataclasses.fields(TrainConfig)}
    # Every flag exists: the round trips below set every field, and the parser rejects unknown flags.


ROUND_TRIP = [
    *PRESETS.values(),
    TrainConfig(model=WRNConfig(depth=10, widen_factor=2, dropout=0.1)),
    TrainConfig(
        model=WRNConfig(depth=22, widen_factor=1), dataset="folder", data_dir="/tmp/my images/it's here",
        subset_train=500, subset_test=100, image_size=24, optimizer="adamw", lr=3e-4, momentum=0.85,
        weight_decay=0.0, schedule="cosine", warmup_epochs=0.5, epochs=3, batch_size=16, label_smoothing=0.1,
        augment=False, device="cpu", seed=7, log_every=3, compile=True, eval_batch_size=50,
    ),
    # A run extended twice by `resume --epochs`: the plan, then a continued and a restarted stretch.
    TrainConfig(model=WRNConfig(depth=10, widen_factor=1)).with_target(14, "continue").with_target(20, "restart"),
    # A target moved inside the plan (stopped, then resumed to fewer epochs than planned).
    TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=10).with_target(8),
    # lr and weight decay left to the optimizer's defaults (None) after a change of optimizer.
    TrainConfig(model=WRNConfig(depth=10, widen_factor=1), optimizer="adam", synthetic_train=64, synthetic_test=20),
]


@pytest.mark.parametrize("config", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_command_for_round_trips_field_for_field(config):
    command = command_for(config)
    assert parse_command(command) == config
    named = command_for(config, name="rerun-1", runs_dir="/tmp/runs dir")
    assert named.endswith("--runs-dir '/tmp/runs dir' --name rerun-1")
    assert parse_command(named) == config


def test_command_for_leaves_classes_and_channels_to_the_data():
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1, num_classes=100), dataset="cifar100")
    parsed = parse_command(command_for(config))
    assert parsed.model.num_classes == 10  # the engine writes the dataset's 100 when the run starts
    assert parsed.replace(model=config.model) == config


def test_the_command_re_creates_a_trained_runs_config_json(tmp_path):
    """Train a run, then run its command in a fresh process: config.json equal field for field."""
    import torch

    from wrn_core.engine.loop import train_run

    config = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=2, dropout=0.1), synthetic_train=64, synthetic_test=20,
        optimizer="adamw", lr=3e-3, weight_decay=0.01, schedule="cosine", warmup_epochs=0.5, epochs=1,
        batch_size=16, label_smoothing=0.1, augment=False, device="cpu", seed=3, log_every=2, eval_batch_size=10,
    )
    store = RunStore(tmp_path)
    original = store.create(config, "original")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_run(original) == "finished"
    finally:
        torch.set_num_threads(previous)
    command = command_for(original.read_config(), name="again", runs_dir=str(tmp_path))
    words = shlex.split(command)
    result = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert store.get("again").read_config_dict() == original.read_config_dict()
    assert store.get("again").read_status()["status"] == "finished"
