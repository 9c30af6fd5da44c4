"""The device-side batch loader: resident uint8 images, batched augmentation and normalisation on the device."""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator, Sequence

import torch

from wrn_core.errors import DataError


class DeviceLoader:
    """Batches from uint8 images already on the training device; augments and normalizes there.

    For training, the shuffle and all augmentation randomness of an epoch are drawn up front from a
    CPU generator seeded from (seed, epoch), so an epoch is reproducible and can resume mid-way.

    Data-parallel: with shard=(rank, world_size) a training loader yields this rank's equal part of
    every global batch (batch_size is the global batch), drawn from the same epoch plan on every
    rank, so the ranks' shards are disjoint and together are exactly the one-process batch. A test
    loader gives each rank a contiguous part of the test set.
    """

    PAD = 4  # pixels of reflect padding before the random crop (paper)

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        train: bool,
        augment: bool,
        seed: int = 0,
        drop_last: bool | None = None,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise DataError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if batch_size < 1:
            raise DataError(f"batch size must be >= 1, got {batch_size}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise DataError(f"mean/std need {channels} values (one per channel), got {len(mean)}/{len(std)}")
        rank, world_size = shard
        if not (0 <= rank < world_size):
            raise DataError(f"shard rank {rank} is not in [0, {world_size})")
        self.rank, self.world_size = int(rank), int(world_size)
        if not train and world_size > 1:
            # Evaluation: a contiguous part of the test set per rank (sizes differ by at most one).
            n = images.shape[0]
            lo, hi = n * rank // world_size, n * (rank + 1) // world_size
            images, labels = images[lo:hi], labels[lo:hi]
        self.images = images
        self.labels = labels
        self.batch_size = int(batch_size)
        self.train = bool(train)
        self.augment = bool(augment) and self.train
        self.seed = int(seed)
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.channels_last = channels_last
        self.dtype = dtype
        self.device = images.device
        _, _, self.height, self.width = images.shape
        self.pad = min(self.PAD, self.height - 1, self.width - 1)
        # x_norm = x_uint8 * scale + shift  ==  (x/255 - mean) / std; (1, C, 1, 1) float32
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std_t)).view(1, -1, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, -1, 1, 1).to(self.device)
        self._channel_index = torch.arange(channels, device=self.device).view(1, -1, 1, 1)
        # Epoch plans drawn ahead on a helper thread (prefetch), so an epoch boundary does not wait for them.
        self._plans: dict[int, Future] = {}
        self._planner: ThreadPoolExecutor | None = None

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    @property
    def effective_batch_size(self) -> int:
        # With drop_last and fewer samples than one batch, the single batch holds them all.
        return min(self.batch_size, self.num_samples) if self.num_samples else self.batch_size

    @property
    def local_batch_size(self) -> int:
        """Images of each training batch on this rank: the global batch over the world size."""
        size = self.effective_batch_size
        if self.train and size % self.world_size != 0:
            raise DataError(
                f"batch size {size} does not divide over {self.world_size} processes; "
                f"use a batch size that is a multiple of {self.world_size}"
            )
        return size // self.world_size if self.train else size

    def __len__(self) -> int:
        n = self.num_samples
        if n == 0:
            return 0
        if self.drop_last:
            return max(1, n // self.batch_size)
        return math.ceil(n / self.batch_size)

    def _generator(self, epoch: int) -> torch.Generator:
        # Distinct, reproducible stream per (seed, epoch).
        return torch.Generator().manual_seed((self.seed * 1_000_003 + int(epoch) * 7_919 + 12_345) % (2**63))

    def prefetch(self, epoch: int) -> None:
        """Start drawing `epoch`'s plan on a helper thread; `epoch(epoch)` then takes it without waiting."""
        if not self.train or epoch in self._plans:
            return
        if self._planner is None:
            self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wrn-plan")
        self._plans[epoch] = self._planner.submit(self._plan, epoch)

    def _plan_for(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The epoch's plan: the prefetched one when there is one (kept for epoch_indices), else drawn now."""
        future = self._plans.get(epoch)
        if future is None:
            future = Future()
            future.set_result(self._plan(epoch))
            self._plans[epoch] = future
        for old in [e for e in self._plans if e < epoch - 1]:  # at most this epoch's and the one before
            del self._plans[old]
        return future.result()

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        # From pinned host memory the copy to a GPU is asynchronous; it is ordered before any use on the stream.
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Sample order (N,) and, when augmenting, rows (N, H) and cols (N, W) source pixel indices, on the device.

        Drawn on the CPU from a generator seeded by (seed, epoch), so a plan is the same on every
        device and every rank, and an epoch can resume mid-way."""
        n = self.num_samples
        if not self.train:
            return torch.empty(0, dtype=torch.int64), None, None  # unused: test batches are slices
        generator = self._generator(epoch)
        order = torch.randperm(n, generator=generator)
        if not self.augment:
            return self._to_device(order), None, None
        pad, h, w = self.pad, self.height, self.width
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)  # crop corner in the padded image
        flips = torch.randint(0, 2, (n,), generator=generator).bool()
        # Output pixel y reads padded row offset_y + y, i.e. source row offset_y + y - pad,
        # reflected at the borders (reflect padding excludes the edge pixel itself).
        rows = offsets[:, :1] + torch.arange(h)[None, :] - pad
        cols_out = torch.arange(w)[None, :].expand(n, w)
        # A horizontal flip of the crop reads the crop's columns back to front.
        cols_out = torch.where(flips[:, None], w - 1 - cols_out, cols_out)
        cols = offsets[:, 1:] + cols_out - pad
        rows = _reflect(rows, h)
        cols = _reflect(cols, w)
        # Permute now so batch i is a contiguous slice of everything.
        return self._to_device(order), self._to_device(rows[order]), self._to_device(cols[order])

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images dtype (B, C, H, W) normalized, labels int64 (B,)) on the device, from start_batch on."""
        order, rows, cols = self._plan_for(epoch)
        count = len(self)
        size = self.effective_batch_size
        local = self.local_batch_size
        for batch in range(max(0, int(start_batch)), count):
            if not self.train:
                # In order: a slice (a view) instead of a gather.
                x = self.images[batch * size : (batch + 1) * size]
                out = self._normalize(x)
                yield out, self.labels[batch * size : (batch + 1) * size]
                continue
            lo = batch * size + self.rank * local  # this rank's part of global batch `batch`
            index = order[lo : lo + local]
            if rows is None:
                x = self.images[index]
            else:
                r = rows[lo : lo + local]
                c = cols[lo : lo + local]
                # One gather: (B,1,1,1), (1,C,1,1), (B,1,H,1), (B,1,1,W) -> (B, C, H, W) uint8
                x = self.images[index[:, None, None, None], self._channel_index, r[:, None, :, None], c[:, None, None, :]]
            yield self._normalize(x), self.labels[index]

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """The sample indices this rank trains on in `epoch`, in order (int64 on the device)."""
        order, _, _ = self._plan_for(epoch)
        size, local = self.effective_batch_size, self.local_batch_size
        parts = [order[b * size + self.rank * local : b * size + (self.rank + 1) * local] for b in range(len(self))]
        return torch.cat(parts) if parts else order[:0]

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> `dtype` (x/255 - mean)/std, computed in float32."""
        out = x.to(torch.float32).mul_(self._scale).add_(self._shift)
        if self.dtype != torch.float32:
            out = out.to(self.dtype)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [-(size-1), 2*size-2] into [0, size) as reflect padding does (edge not repeated)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)
