"""Width use: forward hooks on every ReLU that count dead channels and the effective width (participation ratio).

The training loop measures it on each epoch's evaluation pass (engine.step) and `evaluate` on a checkpoint's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wrn_core.model.names import group_of, width_by_group

DEAD_ZERO_FRACTION = 0.99  # a channel is dead when it is zero at >= 99% of positions over the evaluated images
EXACT_COUNT_ROWS = 1 << 24  # float32 sums of 0/1 are exact up to 2**24 terms: longer batches go in parts
CPU_PART_FLOATS = 1 << 19  # 2 MB of float32 per part on the CPU: the temporaries stay in cache


def _channel_sums(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per channel of a ReLU's output (B, C, H, W) or (B, C): zero positions (int64), sum of squares (float64), positions.

    As (positions, C) rows reduced by products with a ones vector. On the CPU in cache-sized parts:
    measured on WRN-16-4's activations (250 images, one thread) the hooks took 0.075 s per forward of
    2.7 s, against 0.41 s for whole-tensor temporaries and 0.84 s for eq(0)/square() sums over (0, 2, 3).
    """
    channels = output.shape[1]
    rows = output.permute(0, 2, 3, 1).reshape(-1, channels) if output.dim() == 4 else output  # a view when channels_last
    if rows.dtype != torch.float32:
        rows = rows.float()  # bf16 under CUDA autocast: counts and sums need float32's 24 bits
    positions = int(rows.shape[0])
    part_rows = max(256, CPU_PART_FLOATS // channels) if rows.device.type == "cpu" else EXACT_COUNT_ROWS
    ones = torch.ones(min(positions, part_rows), dtype=torch.float32, device=rows.device)
    nonzero = torch.zeros(channels, dtype=torch.int64, device=rows.device)
    squares = torch.zeros(channels, dtype=torch.float64, device=rows.device)
    for start in range(0, positions, part_rows):
        part = rows[start : start + part_rows]
        weights = ones[: part.shape[0]]
        # ReLU outputs are >= 0, so sign() is the nonzero indicator.
        nonzero += (weights @ torch.sign(part)).round().to(torch.int64)  # exact: a part is < 2**24 rows
        squares += (weights @ (part * part)).double()
    return positions - nonzero, squares, positions


class WidthMeter:
    """Hooks every nn.ReLU of a model (in model order) and sums, per channel, zeros and squared activations.

    The sums stay on the activations' device: `rows` reads them to the host once for every layer together
    (under data-parallel training after summing them over the ranks), so no layer waits on the device.
    `paused` skips batches, e.g. TTA mirrors.
    """

    def __init__(self, model: nn.Module) -> None:
        self.paused = False
        self.layers = [name for name, module in model.named_modules() if isinstance(module, nn.ReLU)]
        self._zeros: dict[str, torch.Tensor] = {}  # int64 (C,): positions where the channel was exactly 0
        self._squares: dict[str, torch.Tensor] = {}  # float64 (C,): sum of squared activations
        self._positions: dict[str, int] = {}  # images x H x W seen per layer
        self._handles = [module.register_forward_hook(self._hook(name))
                         for name, module in model.named_modules() if isinstance(module, nn.ReLU)]

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            if self.paused:
                return
            zeros, squares, positions = _channel_sums(output)
            if name in self._zeros:
                self._zeros[name] += zeros
                self._squares[name] += squares
            else:
                self._zeros[name], self._squares[name] = zeros, squares
            self._positions[name] = self._positions.get(name, 0) + positions
        return record

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def measured(self) -> list[str]:
        """The layers that have seen a batch, in model order."""
        return [name for name in self.layers if name in self._zeros]

    def totals(self) -> torch.Tensor:
        """Every measured layer's sums in one float64 tensor on the device, in `measured()` order:
        per layer its zeros (C,) then its squares (C,), then one position count per layer.

        Summing it over data-parallel ranks gives the sums over the whole split (counts stay exact below 2**53).
        """
        names = self.measured()
        if not names:
            return torch.zeros(0, dtype=torch.float64)
        device = self._squares[names[0]].device
        parts = [t for name in names for t in (self._zeros[name].double(), self._squares[name])]
        parts.append(torch.tensor([float(self._positions[name]) for name in names], dtype=torch.float64, device=device))
        return torch.cat(parts)

    def rows(self, totals: torch.Tensor | None = None) -> list[dict[str, Any]]:
        """One row per ReLU in model order: layer, group, channels, dead_channels, active_fraction, effective_width,
        dead_indices; from `totals` when given (e.g. summed over ranks), else from this meter's own sums."""
        names = self.measured()
        flat = (self.totals() if totals is None else totals).cpu()  # the one host read
        sizes = [int(self._squares[name].numel()) for name in names]
        positions = flat[2 * sum(sizes):]
        rows, offset = [], 0
        for name, channels, count in zip(names, sizes, positions.tolist()):
            zeros, squares = flat[offset:offset + channels], flat[offset + channels:offset + 2 * channels]
            offset += 2 * channels
            rows.append(_width_row(name, zeros / max(1.0, count), squares / max(1.0, count)))
        return rows


def _width_row(name: str, zero_fraction: torch.Tensor, energy: torch.Tensor) -> dict[str, Any]:
    """A layer's row from its per-channel zero fraction and mean squared activation e (float64 on the CPU)."""
    channels = int(energy.numel())
    dead_mask = zero_fraction >= DEAD_ZERO_FRACTION
    dead = int(dead_mask.sum())
    total = float(energy.sum())
    effective = total * total / float(energy.square().sum()) if total > 0 else 0.0
    return {
        "layer": name, "group": group_of(name), "channels": channels, "dead_channels": dead,
        "active_fraction": (channels - dead) / channels, "effective_width": effective,
        "dead_indices": [int(i) for i in torch.nonzero(dead_mask).flatten()],
    }


def group_totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group, in model order, of WidthMeter rows: ReLUs, channels and dead channels summed, active fraction, mean
    effective share: model.names.width_by_group, as a width record is summed, in evaluate's names."""
    layers = [{"layer": row["layer"], "channels": row["channels"], "dead": row["dead_channels"],
               "effective": row["effective_width"]} for row in rows]
    return [{"group": group["group"], "relus": group["relus"], "channels": group["channels"],
             "dead_channels": group["dead"], "effective_width": group["effective"],
             "active_fraction": (group["channels"] - group["dead"]) / group["channels"],
             "effective_fraction": group["effective_fraction"]} for group in width_by_group(layers)]