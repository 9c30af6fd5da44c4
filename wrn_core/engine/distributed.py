"""Data-parallel training with torch.distributed, as launched by torchrun (NCCL on CUDA, gloo on the CPU).

torchrun starts one process per device and sets RANK, LOCAL_RANK and WORLD_SIZE; without them a
run is one process (world size 1) and every helper here is a no-op. Rank 0 alone holds the run's
lock and writes the run directory; the other ranks see the run through a RankView, whose writes do
nothing.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as torch_dist

from wrn_core.config import ConfigError

# How long a collective may wait for the other ranks before the process group gives up, seconds:
# long enough for a torch.compile warm-up or a slow evaluation on one rank, short of a hang.
COLLECTIVE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The job torchrun set up for this process (RANK, LOCAL_RANK, WORLD_SIZE), else one process."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError("RANK, LOCAL_RANK and WORLD_SIZE must be integers (they are set by torchrun)") from None
    return Dist(rank=rank, local_rank=local_rank, world_size=max(1, world_size))


def init(dist: Dist, device_type: str) -> None:
    """Join the process group: NCCL for CUDA devices, gloo for the CPU."""
    if not dist.enabled or torch_dist.is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {}
    if device_type == "cuda":
        torch.cuda.set_device(dist.local_rank)
        kwargs["device_id"] = torch.device("cuda", dist.local_rank)
    torch_dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S), **kwargs)


def close(dist: Dist) -> None:
    if dist.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Sum over ranks, in place (no-op in one process)."""
    if dist.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def all_max(tensor: torch.Tensor, dist: Dist) -> torch.Tensor:
    if dist.enabled:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
    return tensor


def broadcast(value: Any, dist: Dist) -> Any:
    """Rank 0's value on every rank (picklable objects)."""
    if not dist.enabled:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, dist: Dist) -> list[Any]:
    """Every rank's value, in rank order, on every rank."""
    if not dist.enabled:
        return [value]
    out: list[Any] = [None] * dist.world_size
    torch_dist.all_gather_object(out, value)
    return out


def device_for(choice: str, dist: Dist) -> torch.device:
    """The device of this rank: cuda:<local rank> for a CUDA job, the CPU for a gloo job."""
    from wrn_core.engine.devices import resolve_device

    if not dist.enabled:
        return resolve_device(choice)
    if choice.startswith("cuda:"):
        raise ConfigError(f"under torchrun each process uses cuda:<local rank>; use --device cuda or auto, not {choice}")
    device = resolve_device(choice)
    if device.type == "cuda":
        if dist.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {dist.local_rank} has no GPU: this machine has {torch.cuda.device_count()}; "
                f"start at most that many processes per node (--nproc_per_node)"
            )
        return torch.device("cuda", dist.local_rank)
    if device.type == "mps":
        raise ConfigError("data-parallel training runs on CUDA GPUs (NCCL) or the CPU (gloo), not on mps")
    return device


class RankView:
    """A run as a rank other than 0 sees it: reads pass through, writes do nothing (rank 0 writes)."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self.name = run.name
        self.path = run.path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def _nothing(self, *args: Any, **kwargs: Any) -> None:
        return None

    append_metrics = write_status = write_config = save_checkpoint = write_heartbeat = clear_stop_request = _nothing
    acquire = release = remove_temporary_files = _nothing
