"""The cell order of a sweep with a SearchPlan: its Search hands out cells within the budget, its pruner stops cells.

Executors ask `SearchOrder.next_cells(store, openings)` as they ask a grid's order. It hands out, first,
the cells the search started that are left unfinished (stopped by Ctrl-C, interrupted: a resume
continues them, they count against the budget once), then as many new cells as the executor could start
now, asked of the search together (the bayes sampler does not wait for their results). `prune(store)`
judges every started cell's per-epoch test accuracy and asks those it gives up on to stop, to end
`pruned`. The store stays the source of truth: each call reads the cells' statuses from it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wrn_core.store import RunStore
from wrn_core.store.records import ACTIVE_STATUSES, PENDING
from wrn_core.sweeps.cell_order import Openings
from wrn_core.sweeps.cell_tables import cells_frame
from wrn_core.sweeps.grid import Cell, Sweep, is_done, next_cells
from wrn_core.sweeps.predict import study_copy
from wrn_core.sweeps.pruning import CellPruner, cells_to_prune, request_prunes
from wrn_core.sweeps.search import Search
from wrn_core.sweeps.search_plan import NO_PRUNING
from wrn_core.sweeps.sweep_file import load_predicted_seconds


class SearchOrder:
    """A CellOrder driven by the sweep's search plan; its study is the sweep's journal in `root`. Predicted seconds
    per cell (a minutes budget, the time objective) are those the last pre-flight kept (save_predicted_seconds)."""

    def __init__(self, sweep: Sweep, root: str | Path, read_only: bool = False) -> None:
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
        cells = cells_frame(store, self.sweep)
        again = self._unfinished(store, cells, openings.busy)
        room = max(0, openings.free - len(again))
        picks = self.search.ask(cells, room) if room else []
        return again + [pick.cell for pick in picks if pick.cell.run not in openings.busy]

    def prune(self, store: RunStore) -> list[str]:
        if self.pruner is None:
            return []
        decisions = cells_to_prune(store, self.sweep, self.pruner)
        request_prunes(store, decisions)
        return [decision.run for decision in decisions]

    def is_done(self, store: RunStore) -> bool:
        """Nothing trains, nothing started waits to be continued, and the search hands out no more cells."""
        cells = cells_frame(store, self.sweep)
        if cells["status"].isin(list(ACTIVE_STATUSES)).any() or self._unfinished(store, cells, frozenset()):
            return False
        return self.search.peek(cells) is None

    def stopped_because(self, store: RunStore) -> str | None:
        """Why the search starts no more cells (its budget spent, every cell started), or None."""
        return self.search.stopped_because(cells_frame(store, self.sweep))


def nothing_left(store: RunStore, sweep: Sweep) -> bool:
    """Whether the sweep has nothing left to train (a grid: every cell ended; a search: its budget spent or every
    cell started, and every started cell ended), read without writing its study."""
    if sweep.search.is_grid:
        return is_done(store, sweep)
    return SearchOrder(sweep, store.root, read_only=True).is_done(store)
