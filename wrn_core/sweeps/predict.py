"""The sweep's map where no run was made: a Gaussian process over the finished cells predicts every other cell's
test accuracy with a standard deviation, says how far off it is on cells it has seen, and names the next cell.

Features: N, log2 k and the other axes that vary (seed aside: seeds are repeats, which the GP's noise
term absorbs), each scaled to [0, 1] over the sweep's declared values. Target: the cells' best test
accuracy in points. The held-out error leaves out one model at a time (every seed of it), so it is
the error on a model the map has not trained.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from wrn_core.config import ConfigError
from wrn_core.store.records import FINISHED, PENDING
from wrn_core.sweeps.cell_tables import group_label
from wrn_core.sweeps.grid import AXES, Sweep
from wrn_core.sweeps.hypervolume import expected_gain, front_points, reference_point
from wrn_core.sweeps.search_plan import GRID, MACS

MIN_FINISHED = 3  # fewer finished cells than this: no map
METRIC = "best_test_acc"
LOG2_AXES = ("widen_factor", "batch_size")


@dataclass(frozen=True)
class AccuracyMap:
    """Predicted accuracy per cell (fractions; NaN where finished or where there is no map) and how good it is."""

    cells: pd.DataFrame  # run, predicted_acc, predicted_std: one row per cell, in the sweep's order
    finished: int  # cells the GP was fitted on
    heldout_error: float | None  # mean absolute error in points, each model left out in turn (None: cannot say)
    reason: str | None  # why there is no map (fewer than MIN_FINISHED finished cells), else None

    @property
    def error_text(self) -> str:
        if self.reason:
            return self.reason
        if self.heldout_error is None:
            return "the map's error cannot be measured yet: every finished cell is one model"
        return f"the map is off by about ±{self.heldout_error:.1f} points on cells it has seen"


def features(sweep: Sweep, cells: pd.DataFrame) -> np.ndarray:
    """One row per cell: each varied axis but the seed, scaled to [0, 1] over its declared values (log2 for k and
    batch, log10 for lr, one column per optimizer)."""
    columns = []
    for axis in (a for a in AXES if a in sweep.varied and a != "seed"):
        values = cells[axis]
        if axis == "optimizer":
            columns += [(values == name).astype(float).to_numpy() for name in sweep.axes[axis]]
            continue
        transform = np.log2 if axis in LOG2_AXES else np.log10 if axis == "lr" else (lambda v: v)
        declared = transform(np.asarray(sweep.axes[axis], dtype=float))
        low, high = float(declared.min()), float(declared.max())
        columns.append((transform(values.astype(float).to_numpy()) - low) / (high - low))
    return np.column_stack(columns) if columns else np.zeros((len(cells), 1))


def _gp(dims: int) -> Any:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    # Matern 5/2 with one length scale per feature (a smooth surface, some axes mattering more), plus noise
    # for what differs between seeds. Length scales from a twentieth of the grid to far beyond it.
    kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(length_scale=np.full(dims, 0.5), length_scale_bounds=(0.05, 20.0), nu=2.5)
              + WhiteKernel(0.05, (1e-5, 1.0)))
    return GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0)


def fit_gp(x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # a bound reached on a handful of points is expected, not news
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _gp(x.shape[1]).fit(x, y)


def _groups(sweep: Sweep, cells: pd.DataFrame) -> list[tuple[Any, ...]]:
    keys = sweep.group_axes
    return [tuple(row) for row in cells[keys].itertuples(index=False)]


def heldout_error(sweep: Sweep, finished: pd.DataFrame) -> float | None:
    """Mean absolute error in points over the finished cells, each model (all its seeds) predicted by a GP fitted
    without it; None when they are all one model."""
    groups = _groups(sweep, finished)
    if len(set(groups)) < 2:
        return None
    x, y = features(sweep, finished), 100.0 * finished[METRIC].astype(float).to_numpy()
    errors = []
    for group in dict.fromkeys(groups):
        out = np.array([g == group for g in groups])
        predicted = fit_gp(x[~out], y[~out]).predict(x[out])
        errors += list(np.abs(predicted - y[out]))
    return float(np.mean(errors))


def predict_accuracy(sweep: Sweep, cells: pd.DataFrame) -> AccuracyMap:
    """A GP fitted on the finished cells (a cells_frame), predicting every other cell's best test accuracy."""
    done = (cells["status"] == FINISHED) & pd.to_numeric(cells[METRIC], errors="coerce").notna()
    frame = pd.DataFrame({"run": cells["run"], "predicted_acc": np.nan, "predicted_std": np.nan})
    count = int(done.sum())
    if count < MIN_FINISHED:
        reason = (f"no prediction yet: {count} finished cell{'s' if count != 1 else ''}, and the map needs "
                  f"{MIN_FINISHED}")
        return AccuracyMap(frame, count, None, reason)
    finished = cells[done]
    gp = fit_gp(features(sweep, finished), 100.0 * finished[METRIC].astype(float).to_numpy())
    todo = ~done.to_numpy()
    if todo.any():
        mean, std = gp.predict(features(sweep, cells[todo]), return_std=True)
        frame.loc[todo, "predicted_acc"] = mean / 100.0
        frame.loc[todo, "predicted_std"] = std / 100.0
    return AccuracyMap(frame, count, heldout_error(sweep, finished), None)


@dataclass(frozen=True)
class NextCell:
    """The cell to train next (None when there is none) and why, in one line."""

    run: str | None
    reason: str


def _cost_text(cost: float, objective: str) -> str:
    return f"{cost / 1e9:.2f} GMAC per image" if objective == MACS else f"about {cost:.0f} s of training"


def best_gain_per_cost(sweep: Sweep, cells: pd.DataFrame, prediction: AccuracyMap,
                       costs: Mapping[str, float]) -> NextCell:
    """Among the cells not started, the one whose expected gain of the accuracy-against-log-cost front (the finished
    cells') is largest per unit of its cost."""
    if prediction.reason:
        return NextCell(None, prediction.reason)
    merged = cells.merge(prediction.cells, on="run")
    front = front_points([costs[r] for r in merged["run"]],
                         [a if s == FINISHED else None for a, s in zip(merged[METRIC], merged["status"])])
    ref = reference_point(costs.values(), sweep.base.model.num_classes)
    best: tuple[float, Any] | None = None
    for row in merged[merged["status"] == PENDING].itertuples(index=False):
        cost = costs[row.run]
        gain = expected_gain(100.0 * row.predicted_acc, 100.0 * row.predicted_std, math.log10(cost), front, ref)
        if best is None or gain / cost > best[0]:
            best = (gain / cost, row, gain)
    if best is None:
        return NextCell(None, "every cell has been started")
    _, row, gain = best
    objective = sweep.search.objective
    label = group_label(row._asdict())
    return NextCell(row.run, f"{label} seed {row.seed}: predicted {100 * row.predicted_acc:.0f} ± "
                             f"{100 * row.predicted_std:.0f}%, expected to grow the front (accuracy against log10 cost) "
                             f"by {gain:.2f} points·decades for {_cost_text(costs[row.run], objective)}: the most per "
                             f"unit of cost of the cells not started")


@dataclass(frozen=True)
class SweepMap:
    """What `sweeps show` and the Sweep page draw: per cell status, predicted accuracy and std, next (bool)."""

    cells: pd.DataFrame  # run, status, predicted_acc, predicted_std (None where finished or no map), next
    prediction: AccuracyMap
    next: NextCell


def sweep_map(sweep: Sweep, cells: pd.DataFrame, root: str | Path | None = None) -> SweepMap:
    """The predicted map of a sweep's cells_frame, and its next cell: for a random or bayes sweep the one its search
    hands out next (read from its study, recording nothing); for a grid sweep the one a search would pick, the
    largest expected front gain per unit of cost."""
    from wrn_core.sweeps.search import cell_costs

    prediction = predict_accuracy(sweep, cells)
    try:
        costs = cell_costs(sweep, sweep.search.objective, None)
    except ConfigError:  # --objective time: no pre-flight here, so rank by MACs
        costs = cell_costs(sweep, MACS, None)
    chosen = _search_next(sweep, cells, root) if sweep.search.strategy != GRID else None
    if chosen is None:
        chosen = best_gain_per_cost(sweep, cells, prediction, costs)
    elif chosen.run is not None and not prediction.reason:  # the search's own reason, and what the map expects
        row = prediction.cells.set_index("run").loc[chosen.run]
        chosen = NextCell(chosen.run, f"{chosen.reason}; the map predicts {100 * row.predicted_acc:.0f} ± "
                                      f"{100 * row.predicted_std:.0f}%")
    frame = cells[["run", "status"]].merge(prediction.cells, on="run", how="left")
    frame["next"] = frame["run"] == chosen.run
    return SweepMap(frame, prediction, chosen)


def _search_next(sweep: Sweep, cells: pd.DataFrame, root: str | Path | None) -> NextCell | None:
    """What the sweep's own search hands out next, from a copy of its study in memory; None when it cannot say here
    (optuna missing, or a minutes budget without the pre-flight's times)."""
    from wrn_core.sweeps.search import Search

    try:
        search = Search(sweep, None, storage=study_copy(sweep, root))
    except ConfigError:
        return None
    pick = search.peek(cells)
    if pick is None:
        return NextCell(None, f"the search starts no more cells: {search.stopped_because(cells)}")
    return NextCell(pick.cell.run, f"{group_label(pick.cell.values)} seed {pick.cell.values['seed']}: {pick.reason}")


def study_copy(sweep: Sweep, root: str | Path | None) -> Any:
    """The sweep's study copied into memory (reading never writes the journal); None when there is no journal yet."""
    from wrn_core.sweeps.search import study_path
    from wrn_core.sweeps.search_plan import require_optuna

    optuna = require_optuna(sweep.search)
    if root is None or not study_path(root, sweep.name).exists():
        return None
    from optuna.storages.journal import JournalFileBackend

    source = optuna.storages.JournalStorage(JournalFileBackend(str(study_path(root, sweep.name))))
    if sweep.name not in optuna.get_all_study_names(source):
        return None
    memory = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=sweep.name, from_storage=source, to_storage=memory)
    return memory


def predicted_grid(cells: pd.DataFrame, shown: SweepMap) -> pd.DataFrame:
    """N (rows) × k (columns) of the map where a square has no result: columns mean and std (fractions, the average
    over its cells not finished), and next (whether the next cell is in it); NaN mean where there is no prediction."""
    merged = cells[["run", "blocks", "widen_factor", "status"]].merge(shown.cells.drop(columns=["status"]), on="run")
    rows = []
    for (n, k), members in merged.groupby(["blocks", "widen_factor"]):
        waiting = members[members["status"] != FINISHED]
        rows.append({"blocks": n, "widen_factor": k,
                     "mean": waiting["predicted_acc"].mean() if len(waiting) else np.nan,
                     "std": waiting["predicted_std"].mean() if len(waiting) else np.nan,
                     "next": bool(members["next"].any())})
    return pd.DataFrame(rows, columns=["blocks", "widen_factor", "mean", "std", "next"])


def predicted_points(cells: pd.DataFrame, shown: SweepMap, x: str = "params") -> pd.DataFrame:
    """The trade-off's predicted points: one per model with a cell not finished and a prediction (x, mean, std as
    fractions, label, next), beside the measured ones; sorted by x."""
    from wrn_core.sweeps.cell_tables import group_columns

    keys = group_columns(cells)
    merged = cells.merge(shown.cells.drop(columns=["status"]), on="run")
    waiting = merged[(merged["status"] != FINISHED) & merged["predicted_acc"].notna()]
    rows = []
    for group, members in waiting.groupby(keys, sort=False):
        row = members.iloc[0].to_dict()
        rows.append({"x": float(pd.to_numeric(members[x], errors="coerce").mean()),
                     "mean": float(members["predicted_acc"].mean()), "std": float(members["predicted_std"].mean()),
                     "label": group_label(row), "next": bool(members["next"].any())})
    frame = pd.DataFrame(rows, columns=["x", "mean", "std", "label", "next"]).dropna(subset=["x"])
    return frame.sort_values("x", kind="stable").reset_index(drop=True)
