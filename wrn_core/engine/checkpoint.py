"""The checkpoint's format: `Position` (where training stands, the running totals) plus model, optimizer,
scheduler and every rank's RNG states. Its keys are written and read here only; the store writes the file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from wrn_core.engine import distributed

if TYPE_CHECKING:
    from wrn_core.engine.loop import Session


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's generators: the CPU's and, on CUDA, the device's."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@dataclass
class Position:
    """Where training stands and the running totals a resume needs: the checkpoint's plain part.

    The checkpoint is these fields plus the model, optimizer, scheduler and RNG states; its keys are
    written and read here only.
    """

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches done in the current epoch
    step: int = 0  # optimizer steps done, over all epochs
    images_seen: int = 0
    train_seconds: float = 0.0  # training and evaluation seconds, summed over resumes
    best_test_acc: float | None = None
    last_test_acc: float | None = None
    epoch_loss: float = 0.0  # this epoch so far: sum over images of the train loss
    epoch_correct: float = 0.0  # ... correct predictions
    epoch_images: int = 0  # ... images

    def to_checkpoint(self, session: "Session") -> dict[str, Any]:
        """Called on every rank (the RNG states are gathered); rank 0 writes the result."""
        state = dataclasses.asdict(self)
        rng = distributed.gather(rng_state(session.device), session.dist)
        state.update({
            "model": session.model.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "scheduler": session.scheduler.state_dict(),
            "rng": rng[0],
            "rng_ranks": rng,  # every rank's generators, so a resume with the same world size is exact
            "world_size": session.dist.world_size,
            "config": session.config.to_dict(),
        })
        return state

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> "Position":
        fields = {f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state}
        sums = state.get("epoch_sums")  # checkpoints written before Position existed
        if isinstance(sums, dict):
            fields.update(epoch_loss=sums["loss"], epoch_correct=sums["correct"], epoch_images=sums["count"])
        return cls(**fields)

    def fold(self, loss_sum: float, correct: float, images: int) -> None:
        """Add a logging interval's sums to the epoch's."""
        self.epoch_loss += loss_sum
        self.epoch_correct += correct
        self.epoch_images += images
