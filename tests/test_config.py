"""Tests for wrn_core.config: validation messages, derived values and dict round trips."""

from __future__ import annotations

import dataclasses

import json

import pytest

from wrn_core.config import (
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    ConfigError,
    TrainConfig,
    WRNConfig,
    blocks_from_depth,
    depth_from_blocks,
)


def test_depth_not_6n_plus_4_names_nearest() -> None:
    with pytest.raises(ConfigError) as error:
        WRNConfig(depth=15)
    assert "depth 15 is not 6N+4; the nearest valid depths are 10 and 16" in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"depth": 4}, "smallest valid depth is 10"),
        ({"depth": 16.0}, "depth must be an integer"),
        ({"depth": "16"}, "depth must be an integer"),
        ({"depth": True}, "depth must be an integer"),
        ({"widen_factor": 0}, "widen factor k must be >= 1"),
        ({"widen_factor": 1.5}, "widen factor k must be an integer"),
        ({"dropout": -0.1}, "dropout must be in [0, 1)"),
        ({"dropout": 1.0}, "dropout must be in [0, 1)"),
        ({"dropout": "0.3"}, "dropout must be a number"),
        ({"num_classes": 1}, "number of classes must be >= 2"),
        ({"in_channels": 0}, "input channels must be >= 1"),
    ],
)
def test_wrn_config_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        WRNConfig(**kwargs)
    message = str(error.value)
    assert fragment in message
    assert "\n" not in message  # one line


def test_from_blocks_zero_raises() -> None:
    with pytest.raises(ConfigError, match="blocks per group N must be >= 1"):
        WRNConfig.from_blocks(0, 4)


def test_name_and_widths() -> None:
    config = WRNConfig(depth=16, widen_factor=8)
    assert config.name == "WRN-16-8"
    assert config.widths == (16, 128, 256, 512)
    assert WRNConfig(depth=28, widen_factor=10).name == "WRN-28-10"


@pytest.mark.parametrize(("blocks", "depth"), [(1, 10), (2, 16), (3, 22), (4, 28), (6, 40)])
def test_blocks_depth_both_ways(blocks: int, depth: int) -> None:
    assert depth_from_blocks(blocks) == depth
    assert blocks_from_depth(depth) == blocks
    assert WRNConfig(depth=depth).blocks == blocks
    assert WRNConfig.from_blocks(blocks, 2).depth == depth


def test_dropout_stored_as_float() -> None:
    config = WRNConfig(dropout=0)
    assert isinstance(config.dropout, float) and config.dropout == 0.0


def test_wrn_config_dict_round_trip() -> None:
    config = WRNConfig(depth=22, widen_factor=3, dropout=0.3, num_classes=100, in_channels=1)
    data = config.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert WRNConfig.from_dict(data) == config


def test_wrn_config_unknown_field() -> None:
    with pytest.raises(ConfigError, match="unknown model field"):
        WRNConfig.from_dict({"depth": 16, "width": 8})


def test_configs_are_frozen_and_hashable() -> None:
    config = WRNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.depth = 22  # type: ignore[misc]
    assert hash(config) == hash(WRNConfig())


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"schedule": "linear"}, "unknown schedule 'linear'"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"dataset": "folder"}, "needs a data directory"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 0}, "batch size must be >= 1"),
        ({"lr": 0.0}, "learning rate must be > 0"),
        ({"lr": -0.1}, "learning rate must be > 0"),
        ({"lr": float("nan")}, "learning rate must be a finite number"),
        ({"weight_decay": -1e-4}, "weight decay must be >= 0"),
        ({"warmup_epochs": 10, "epochs": 10}, "must be fewer than epochs"),
        ({"warmup_epochs": 12.5, "epochs": 10}, "must be fewer than epochs"),
        ({"image_size": 4}, "image size must be >= 8"),
        ({"momentum": 1.0}, "momentum must be in [0, 1)"),
        ({"model": "WRN-16-8"}, "model must be a WRNConfig"),
    ],
)
def test_train_config_errors(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as error:
        TrainConfig(**kwargs)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_choice_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="choose one of sgd-nesterov, adam, adamw, sgd"):
        TrainConfig(optimizer="lamb")


def test_folder_with_data_dir_is_fine() -> None:
    assert TrainConfig(dataset="folder", data_dir="/tmp/images").data_dir == "/tmp/images"


@pytest.mark.parametrize("optimizer", ["sgd-nesterov", "sgd", "adam", "adamw"])
def test_effective_defaults(optimizer: str) -> None:
    config = TrainConfig(optimizer=optimizer)
    assert config.effective_lr == DEFAULT_LR[optimizer]
    assert config.effective_weight_decay == DEFAULT_WEIGHT_DECAY[optimizer]
    explicit = TrainConfig(optimizer=optimizer, lr=0.05, weight_decay=0.0)
    assert explicit.effective_lr == 0.05
    assert explicit.effective_weight_decay == 0.0


def test_paper_defaults() -> None:
    config = TrainConfig()
    assert config.effective_lr == 0.1
    assert config.effective_weight_decay == 5e-4
    assert TrainConfig(optimizer="adamw").effective_weight_decay == 5e-2


def test_train_config_dict_round_trip() -> None:
    config = TrainConfig(
        model=WRNConfig(depth=10, widen_factor=2, dropout=0.3, num_classes=100),
        dataset="cifar100",
        data_dir="/data",
        subset_train=1000,
        optimizer="adamw",
        lr=3e-3,
        schedule="cosine",
        warmup_epochs=1.5,
        epochs=5,
        batch_size=64,
        label_smoothing=0.1,
        compile=True,
    )
    data = config.to_dict()
    assert isinstance(data["model"], dict)
    restored = TrainConfig.from_dict(json.loads(json.dumps(data)))
    assert restored == config
    assert isinstance(restored.model, WRNConfig)


def test_train_config_model_dict_is_converted() -> None:
    config = TrainConfig(model={"depth": 10, "widen_factor": 1})  # type: ignore[arg-type]
    assert config.model == WRNConfig(depth=10, widen_factor=1)


def test_train_config_unknown_field() -> None:
    with pytest.raises(ConfigError, match="unknown training field"):
        TrainConfig.from_dict({"epochs": 3, "learning_rate": 0.1})


def test_replace_revalidates() -> None:
    config = TrainConfig()
    assert config.replace(epochs=3).epochs == 3
    with pytest.raises(ConfigError):
        config.replace(epochs=0)


def test_the_nearest_valid_depth_of_a_typed_one() -> None:
    from wrn_core.config import nearest_depth

    assert [nearest_depth(d) for d in (1, 10, 12, 13, 15, 16, 27, 28, 100)] == [10, 10, 10, 16, 16, 16, 28, 28, 100]

