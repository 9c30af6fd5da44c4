"""The checkpoint: its format (`Position`, the running totals, plus model, optimizer, scheduler and every rank's
RNG states; its keys are written and read here only) and its writer, which keeps disk time off the loop."""

from __future__ import annotations

import dataclasses
import threading
import time
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


def snapshot(state: Any, pinned: dict[tuple, torch.Tensor] | None = None, path: tuple = ()) -> Any:
    """A copy of a checkpoint's tensors that training may not change under the writer.

    On the CPU a clone; from a GPU an asynchronous copy into pinned host memory (reused across
    epochs through `pinned`, keyed by position in the state), ordered on the current stream before
    any later update of the weights. The writer waits for the copies with `CheckpointWriter`'s event.
    """
    if isinstance(state, torch.Tensor):
        tensor = state.detach()
        if tensor.device.type != "cuda":
            return tensor.clone()
        buffer = None if pinned is None else pinned.get(path)
        if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
            buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            if pinned is not None:
                pinned[path] = buffer
        return buffer.copy_(tensor, non_blocking=True)
    if isinstance(state, dict):
        return {k: snapshot(v, pinned, path + (k,)) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v, pinned, path + (i,)) for i, v in enumerate(state))
    return state


class CheckpointWriter:
    """Writes one checkpoint at a time on a background thread, so an epoch boundary does not wait for disk.

    The loop hands it a snapshot and goes on; the next `submit` (or `wait`) first waits for the
    previous write, and re-raises its error (e.g. RunWriteError for a full disk) in the loop's thread.
    A kill while a write is under way loses only that checkpoint: the file is replaced atomically, so
    the last completed checkpoint stays, and a resume from it replays the epochs after it once.
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        self.pinned: dict[tuple, torch.Tensor] = {}  # host buffers of GPU tensors, reused every epoch
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, state: dict[str, Any]) -> float:
        """Start writing `state` (already a snapshot) in the background; returns the seconds spent waiting
        for the previous write to finish."""
        waited = self.wait()
        ready = None
        if torch.cuda.is_available() and any(b.is_pinned() for b in self.pinned.values()):
            ready = torch.cuda.Event()
            ready.record()  # after the snapshot's copies on the current stream
        self._thread = threading.Thread(target=self._write, args=(state, ready), name="wrn-checkpoint", daemon=True)
        self._thread.start()
        return waited

    def _write(self, state: dict[str, Any], ready: Any) -> None:
        try:
            if ready is not None:
                ready.synchronize()
            self.run.save_checkpoint(state)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop's thread by wait()
            self._error = exc

    def wait(self) -> float:
        """Block until no write is under way; returns the seconds waited. Raises the last write's error."""
        start = time.perf_counter()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        waited = time.perf_counter() - start
        error, self._error = self._error, None
        if error is not None:
            raise error
        return waited

    def raise_if_failed(self) -> None:
        """Without waiting: re-raise the error of a write that has already failed (the loop asks at each
        logging point, so a full disk ends the run soon after, not an epoch later)."""
        if self._thread is not None and not self._thread.is_alive() and self._error is not None:
            self.wait()
