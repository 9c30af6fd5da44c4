"""Which of a sweep's cells an executor starts next, and which it stops early: the order it asks, never the grid itself.

An executor (wrn_core.jobs) asks `cell_order(sweep).next_cells(store, openings)` whenever it can take
cells, saying how many it could start at once (`Openings`), and calls `prune(store)` as often: a
search strategy answers with the cells it picks and stops the cells it gives up on through their stop
request; `GridOrder`, today's sweep, answers with every cell still to train, in grid order, and stops
none. The run store stays the source of truth: an order reads the cells' statuses from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wrn_core.store import RunStore
from wrn_core.sweeps.grid import Cell, Sweep, is_done, next_cells


@dataclass(frozen=True)
class Openings:
    """What an executor can take when it asks for cells."""

    free: int  # cells it could start training at once now (idle job slots, or free room on the Ray cluster)
    queues: bool = False  # it also holds any number of cells waiting for room (Ray's queue) that count as queued
    busy: frozenset[str] = frozenset()  # cells it still holds (their process is ending): never handed out again


class CellOrder(Protocol):
    """How a sweep spends its cells: which to start next, which to stop early, when nothing is left."""

    def next_cells(self, store: RunStore, openings: Openings) -> list[Cell]:
        """Cells to start now, in the order to start them; each handed out is the caller's to start."""
        ...

    def prune(self, store: RunStore) -> list[str]:
        """Ask the cells this order gives up on to stop (Run.request_stop, wherever they train); returns them."""
        ...

    def is_done(self, store: RunStore) -> bool:
        """Whether the order will hand out no more cells and none of its cells trains (the executor lets go)."""
        ...


class GridOrder:
    """Every cell still to train (pending, stopped, interrupted), in the grid's order; nothing stopped early.

    With an executor that queues, every such cell is handed out at once (its own queue keeps the order);
    otherwise as many as it could start now.
    """

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep

    def next_cells(self, store: RunStore, openings: Openings) -> list[Cell]:
        ready = [cell for cell in next_cells(store, self.sweep) if cell.run not in openings.busy]
        return ready if openings.queues else ready[:max(0, openings.free)]

    def prune(self, store: RunStore) -> list[str]:  # noqa: ARG002 - a grid trains every cell to its end
        return []

    def is_done(self, store: RunStore) -> bool:
        return is_done(store, self.sweep)


def cell_order(sweep: Sweep) -> CellOrder:
    """The order a sweep's cells are trained in: the one place a sweep's strategy is chosen."""
    return GridOrder(sweep)
