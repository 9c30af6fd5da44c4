"""Which of a sweep's cells an executor starts next, and which it stops early: the order it asks, never the grid itself.

An executor (wrn_core.jobs) asks `cell_order(sweep, root).next_cells(store, openings)` whenever it can take
cells, saying how many it could start at once (`Openings`), and calls `prune(store)` as often: a
search strategy answers with the cells it picks and stops the cells it gives up on through their stop
request; `GridOrder`, a plain grid, answers with every cell still to train, in grid order, and stops
none; `SearchOrder` follows a sweep's SearchPlan (its Search hands out cells within the budget, its
pruner stops cells; optuna and scikit-learn are imported only when one is made). The run store stays the
source of truth: an order reads the cells' statuses from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from wrn_core.store import RunStore
from wrn_core.store.records import ACTIVE_STATUSES, PENDING
from wrn_core.sweeps.grid import Cell, Sweep, is_done, next_cells
from wrn_core.sweeps.search_plan import NO_PRUNING


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


def cell_order(sweep: Sweep, root: str | Path) -> CellOrder:
    """The order a sweep's cells are trained in: the one place a sweep's strategy is chosen. A plain grid is
    GridOrder; any other plan (random or bayes, a budget, pruning) is a SearchOrder whose study lives in `root`,
    the runs directory (ConfigError, one line, when optuna is missing)."""
    if sweep.search.is_grid:
        return GridOrder(sweep)
    return SearchOrder(sweep, root)


class SearchOrder:
    """A CellOrder driven by the sweep's search plan; its study is the sweep's journal in `root`.

    It hands out, first, the cells the search started and left unfinished (stopped by Ctrl-C, interrupted: a
    resume continues them; they count against the budget once), then as many new cells as the executor could
    start now, asked of the search together (the bayes sampler does not wait for their results). `prune`
    judges every started cell's per-epoch test accuracy and asks those it gives up on to stop, to end
    `pruned`. Predicted seconds per cell (a minutes budget, the time objective) are those the last pre-flight
    kept (save_predicted_seconds).
    """

    def __init__(self, sweep: Sweep, root: str | Path, read_only: bool = False) -> None:
        from wrn_core.sweeps.predict import study_copy
        from wrn_core.sweeps.pruning import CellPruner
        from wrn_core.sweeps.search import Search
        from wrn_core.sweeps.sweep_file import load_predicted_seconds

        self.sweep = sweep
        predicted = load_predicted_seconds(root, sweep.name) if sweep.search.needs_time else None
        # read_only: a copy of the study in memory and no pruner, so a reader (a page asking whether anything is
        # left) never writes the journal.
        storage = study_copy(sweep, root) if read_only else None
        self.search = Search(sweep, None if read_only else root, predicted_s=predicted, storage=storage)
        self.pruner = CellPruner(sweep, root) if sweep.search.prune != NO_PRUNING and not read_only else None

    def _unfinished(self, store: RunStore, cells: pd.DataFrame, busy: frozenset[str]) -> list[Cell]:
        """Cells the search started that wait to be continued (stopped, interrupted), not held by the executor."""
        started = set(self.search.started(cells))
        status = dict(zip(cells["run"], cells["status"]))
        return [cell for cell in next_cells(store, self.sweep)
                if cell.run in started and status.get(cell.run) != PENDING and cell.run not in busy]

    def next_cells(self, store: RunStore, openings: Openings) -> list[Cell]:
        from wrn_core.sweeps.cell_tables import cells_frame

        cells = cells_frame(store, self.sweep)
        again = self._unfinished(store, cells, openings.busy)
        room = max(0, openings.free - len(again))
        picks = self.search.ask(cells, room) if room else []
        return again + [pick.cell for pick in picks if pick.cell.run not in openings.busy]

    def prune(self, store: RunStore) -> list[str]:
        if self.pruner is None:
            return []
        from wrn_core.sweeps.pruning import cells_to_prune, request_prunes

        decisions = cells_to_prune(store, self.sweep, self.pruner)
        request_prunes(store, decisions)
        return [decision.run for decision in decisions]

    def is_done(self, store: RunStore) -> bool:
        """Nothing trains, nothing started waits to be continued, and the search hands out no more cells."""
        from wrn_core.sweeps.cell_tables import cells_frame

        cells = cells_frame(store, self.sweep)
        if cells["status"].isin(list(ACTIVE_STATUSES)).any() or self._unfinished(store, cells, frozenset()):
            return False
        return self.search.peek(cells) is None

    def stopped_because(self, store: RunStore) -> str | None:
        """Why the search starts no more cells (its budget spent, every cell started), or None."""
        from wrn_core.sweeps.cell_tables import cells_frame

        return self.search.stopped_because(cells_frame(store, self.sweep))


def nothing_left(store: RunStore, sweep: Sweep) -> bool:
    """Whether the sweep has nothing left to train (a grid: every cell ended; a search: its budget spent or every
    cell started, and every started cell ended), read without writing its study."""
    if sweep.search.is_grid:
        return is_done(store, sweep)
    return SearchOrder(sweep, store.root, read_only=True).is_done(store)
