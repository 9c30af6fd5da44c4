"""A training session's state: what trains (`Session`, and the `Plan` reports read of it), where it stands
(`Position`), the running sums of a logging interval (`Interval`), and the checkpoint built from them and restored
into them (its keys are written and read here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from wrn_core.config import TrainConfig
from wrn_core.data import DeviceLoader
from wrn_core.engine import distributed
from wrn_core.engine.checkpoint import CheckpointWriter
from wrn_core.engine.distributed import Dist
from wrn_core.engine.monitor import SystemMonitor
from wrn_core.engine.optim import lr_factor

# Added to the seed per rank, so that each data-parallel rank draws its own dropout masks.
RANK_SEED_STRIDE = 7919


@dataclass(frozen=True)
class Plan:
    """What a progress report reads of a session: the run's target and the size of its steps."""

    epochs: int  # the target, in epochs
    batch_size: int  # images per step, over every rank
    steps_per_epoch: int
    device: str  # device type: cpu, cuda, mps

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class Session:
    """Everything one training session works with, built by engine.build.build_session()."""

    config: TrainConfig
    device: torch.device
    model: torch.nn.Module
    forward: torch.nn.Module  # what trains: the model, wrapped in DDP under torchrun, compiled with config.compile
    evaluator: torch.nn.Module  # what evaluates: the same without compiling (another batch shape is another graph)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    params: int
    monitor: SystemMonitor
    dist: Dist
    checkpoints: CheckpointWriter | None = None  # set by build_session(): writes checkpoints off the loop's thread
    recent_rate: float | None = None  # training images/s, smoothed over logging intervals (Reporter.rate)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    @property
    def plan(self) -> Plan:
        """What the progress reports read of the session."""
        return Plan(self.config.epochs, self.config.batch_size, self.steps_per_epoch, self.device.type)


@dataclass
class Position:
    """Where training stands and the running totals a resume needs: the checkpoint's plain part."""

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

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> "Position":
        fields = {f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state}
        sums = state.get("epoch_sums")  # checkpoints written before Position existed
        if isinstance(sums, dict):
            fields.update(epoch_loss=sums["loss"], epoch_correct=sums["correct"], epoch_images=sums["count"])
        return cls(**fields)

    def epoch_progress(self, steps_per_epoch: int) -> float:
        """Epochs done as a fraction: 2.5 is half-way through the third."""
        return self.epoch + self.batch_in_epoch / steps_per_epoch

    def add_step(self, images: int) -> None:
        """One optimizer step done on `images` images (over every rank)."""
        self.step += 1
        self.batch_in_epoch += 1
        self.images_seen += images

    def add_interval(self, loss_sum: float, correct: float, images: int) -> None:
        """Add a logging interval's sums to the epoch's."""
        self.epoch_loss += loss_sum
        self.epoch_correct += correct
        self.epoch_images += images

    def end_epoch(self, test_acc: float) -> tuple[float, float, int]:
        """Count the epoch done with this test accuracy; returns its (train loss, train accuracy, images trained)."""
        trained = self.epoch_images
        images = max(1, trained)
        train_loss, train_acc = self.epoch_loss / images, self.epoch_correct / images
        self.epoch += 1
        self.batch_in_epoch = 0
        self.best_test_acc = test_acc if self.best_test_acc is None else max(self.best_test_acc, test_acc)
        self.last_test_acc = test_acc
        self.epoch_loss, self.epoch_correct, self.epoch_images = 0.0, 0.0, 0
        return train_loss, train_acc, trained


class Interval:
    """The running sums of one logging interval, kept on the device; the host reads them once per logging point.

    The caller gives every time (its own clock), so one clock times the whole loop.
    """

    def __init__(self, device: torch.device, started: float) -> None:
        self.loss = torch.zeros((), device=device, dtype=torch.float64)  # sum over images of the train loss
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.bad_step = torch.zeros((), device=device, dtype=torch.int64)  # first step with a non-finite loss, or 0
        self.images = 0
        self.started = started  # seconds, the caller's clock

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """One step's loss (mean over the batch) and logits (B, classes), without a host sync."""
        detached = loss.detach()
        self.loss += detached.double() * labels.shape[0]
        self.correct += (logits.argmax(dim=1) == labels).sum()
        self.images += labels.shape[0]
        self.bad_step = torch.where((self.bad_step == 0) & ~torch.isfinite(detached), step, self.bad_step)

    def totals(self, stop: bool, dist: Dist) -> tuple[float, float, float, float, float]:
        """The logging point's one host sync: (loss sum, correct, images, first bad step, stop asked) over every rank.

        In one process the image count and the stop request are host values already, so no tensor is
        made from them (each would be a copy to the device); ranks sum and max them in one collective each.
        """
        if not dist.enabled:
            loss_sum, correct_sum, first_bad = torch.stack([self.loss, self.correct.double(), self.bad_step.double()]).tolist()
            return loss_sum, correct_sum, float(self.images), first_bad, float(stop)
        device = self.loss.device
        sums = distributed.all_sum(torch.stack([
            self.loss, self.correct.double(), torch.tensor(float(self.images), device=device, dtype=torch.float64),
        ]), dist)
        flags = distributed.all_max(torch.stack([
            self.bad_step.double(), torch.tensor(float(stop), device=device, dtype=torch.float64),
        ]), dist)
        loss_sum, correct_sum, images_total, first_bad, stop_asked = torch.cat([sums, flags]).tolist()
        return loss_sum, correct_sum, images_total, first_bad, stop_asked

    def restart(self, now: float) -> float:
        """Begin the next interval at `now`; returns the seconds this one lasted. The sums start again from zero."""
        seconds, self.started = now - self.started, now
        self.loss.zero_()
        self.correct.zero_()
        self.images = 0
        return seconds

    def local_sums(self) -> tuple[float, float, int]:
        """This process's (loss sum, correct, images) so far, read to the host."""
        return self.loss.item(), float(self.correct.item()), self.images


# ---------------------------------------------------------------------------------------------
# The checkpoint: the position plus model, optimizer, scheduler and every rank's RNG states


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


def checkpoint_state(session: Session, position: Position) -> dict[str, Any]:
    """The checkpoint of this moment. Called on every rank (the RNG states are gathered); rank 0 writes it."""
    state = dataclasses.asdict(position)
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


def restore(session: Session, state: dict[str, Any]) -> tuple[Position, str | None]:
    """Load a checkpoint's model, optimizer, scheduler and RNG states into the session.

    Returns its position, and a message when it was written by another number of processes (the data
    order is the same, the dropout masks are not), else None.
    """
    config, dist, device = session.config, session.dist, session.device
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    position = Position.from_checkpoint(state)
    rng_ranks = state.get("rng_ranks") or [state["rng"]]
    message = None
    if len(rng_ranks) == dist.world_size:
        set_rng_state(rng_ranks[dist.rank], device)
    else:
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * dist.rank + position.step)
        message = (f"resumed on {dist.world_size} process(es), the checkpoint was written by {len(rng_ranks)}: "
                   f"same data order from step {position.step}, new dropout masks")
    # The schedule decides the lr from the position, so an extended target never jumps it.
    factor = lr_factor(config, position.step, session.steps_per_epoch)
    for group, base in zip(session.optimizer.param_groups, session.scheduler.base_lrs):
        group["lr"] = base * factor
    session.scheduler._last_lr = [group["lr"] for group in session.optimizer.param_groups]  # what get_last_lr() reports
    return position, message
