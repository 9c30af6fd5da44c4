"""A run's checkpointed network, ready to use: the model in eval mode, its classes, normalisation and image size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import Dataset, load_dataset
from wrn_core.errors import one_line
from wrn_core.model import build_model
from wrn_core.store import Run, RunCorruptError, RunStoreError


class Normalized(nn.Module):
    """The network as others take it: float32 images in [0, 1], (N, 3, H, W), normalised inside; returns logits."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        # (1, C, 1, 1) buffers so they travel with the module to any device and into exported graphs.
        self.register_buffer("mean", torch.tensor([float(m) for m in mean], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


@dataclass
class Network:
    """One run's checkpoint as a usable model (CPU, fp32, eval mode) and what its input must look like."""

    run: str
    config: TrainConfig  # as the checkpoint recorded it (classes and input channels found by training)
    model: nn.Module
    epoch: int  # completed epochs when the checkpoint was written
    step: int
    batch_in_epoch: int  # > 0: the checkpoint was written mid-epoch (a stop)
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)

    def normalized(self) -> Normalized:
        return Normalized(self.model, self.mean, self.std).eval()

    def metadata(self) -> dict[str, str]:
        """What travels with an exported model: strings only (ONNX metadata_props, safetensors, pt2 extra files)."""
        import json

        c, h, w = self.image_shape
        return {
            "wrn_lab.run": self.run,
            "wrn_lab.classes": json.dumps(self.classes),
            "wrn_lab.config": json.dumps(self.config.to_dict()),
            "wrn_lab.mean": json.dumps(list(self.mean)),
            "wrn_lab.std": json.dumps(list(self.std)),
            "wrn_lab.input": json.dumps({"shape": ["N", c, h, w], "dtype": "float32", "range": [0, 1],
                                         "normalised_inside": True, "output": "logits"}),
            "wrn_lab.epoch": str(self.epoch),
            "wrn_lab.step": str(self.step),
        }


def checkpoint_step(run: Run) -> int:
    """The step of the run's checkpoint, read memory-mapped (no tensor data); errors as load_checkpoint's."""
    if not run.checkpoint_path.exists():
        raise RunStoreError(f"run {run.name!r} has no checkpoint yet; it writes one at the end of its first epoch")
    try:
        state = torch.load(run.checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise RunCorruptError(f"checkpoint.pt of run {run.name!r} is unreadable ({one_line(exc)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise RunCorruptError(f"checkpoint.pt of run {run.name!r} is not a WRN Lab checkpoint")
    return int(state["step"])


def _checkpoint_config(run: Run, state: dict[str, Any]) -> TrainConfig:
    """The config the checkpoint was trained with; config.json where the checkpoint carries none."""
    config = run.read_config()  # a corrupt config.json is an error even when the checkpoint has one
    saved = state.get("config")
    if not isinstance(saved, dict):
        return config
    try:
        return TrainConfig.from_dict(saved)
    except (ConfigError, TypeError, ValueError) as exc:
        raise RunCorruptError(f"the config inside checkpoint.pt of run {run.name!r} is invalid ({one_line(exc)})") from None


def load_network(run: Run, data: Dataset | None = None) -> tuple[Network, Dataset]:
    """The run's latest checkpoint as a Network, and the run's dataset (loaded unless given).

    Reads only config.json, checkpoint.pt and the data; never the lock. RunStoreError (one line) when
    there is no checkpoint, RunCorruptError when it or the config is unreadable, DataError for the data.
    """
    if not run.path.is_dir():
        raise RunStoreError(f"no run named {run.name!r}")
    if not run.checkpoint_path.exists():
        raise RunStoreError(f"run {run.name!r} has no checkpoint yet; it writes one at the end of its first epoch")
    state = run.load_checkpoint()
    config = _checkpoint_config(run, state)
    model = build_model(config.model, initialize=False)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise RunCorruptError(f"checkpoint.pt of run {run.name!r} does not fit its {config.model.name} ({one_line(exc)})") from None
    model.eval()
    if data is None:
        data = load_dataset(config)
    network = Network(
        run=run.name, config=config, model=model, epoch=int(state.get("epoch", 0)), step=int(state["step"]),
        batch_in_epoch=int(state.get("batch_in_epoch", 0)), classes=list(data.classes),
        mean=tuple(data.mean), std=tuple(data.std), image_shape=data.image_shape,
    )
    return network, data
