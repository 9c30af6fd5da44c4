"""Writing checkpoints: a snapshot of the state that training may go on changing, and a writer that keeps disk time
off the loop. What a checkpoint holds is built and restored in engine.session; the file is the store's (Run)."""

from __future__ import annotations

import threading
import time
from typing import Any

import torch


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

    def wait_quietly(self) -> None:
        """Let a write under way finish (the run ends while this process still holds the lock); its error, if any,
        came after the run had already ended another way, so it is dropped."""
        try:
            self.wait()
        except Exception:  # noqa: BLE001 - the run's status already says how it ended
            pass

    def raise_if_failed(self) -> None:
        """Without waiting: re-raise the error of a write that has already failed (the loop asks at each
        logging point, so a full disk ends the run soon after, not an epoch later)."""
        if self._thread is not None and not self._thread.is_alive() and self._error is not None:
            self.wait()
