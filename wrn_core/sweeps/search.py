"""Which of a sweep's cells to start next: grid order, a seeded random order, or Optuna's multi-objective GP sampler.

`Search(sweep, root).ask(cells, count)` hands out up to `count` cells without waiting for any result,
so several can train at once: a cell handed out counts as running for every later ask (Optuna's
GPSampler then maximises the q-batch expected hypervolume improvement over the running ones). The
sweep's SearchPlan sets the strategy, the budget (cells started, or predicted plus measured minutes:
no cell is started that is predicted not to fit) and the cost objective. `cells` is the sweep's
`cells_frame` (run, status, best_test_acc, train_seconds): the run store stays the source of truth.

The study lives in the runs directory as an Optuna journal, `<sweep>.optuna.log` (JournalStorage on a
JournalFileBackend: one file, safe on a shared file system), one trial per cell started, holding its
run name; `optuna.load_study(study_name=<sweep>, storage=...)` and `optuna-dashboard` open it. A lost
file is rebuilt from the store at the next ask. The bayes sampler is seeded afresh for every cell from
the plan's seed and the number of cells started, so the same history always gives the same cell,
whether the driver ran throughout or was resumed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from wrn_core.config import ConfigError
from wrn_core.store import validate_run_name
from wrn_core.store.records import DIVERGED, ENDED_STATUSES, FAILED, FINISHED, PENDING, PRUNED
from wrn_core.sweeps.grid import GROUP_AXES, Cell, Sweep
from wrn_core.sweeps.search_plan import BAYES, GRID, MACS, RANDOM, SearchPlan, require_optuna

STUDY_SUFFIX = ".optuna.log"
METRIC = "best_test_acc"  # the accuracy the search maximises (a cells_frame column, a fraction)
LOG_AXES = ("widen_factor", "lr", "batch_size")  # searched on a log scale: doubling k is one step, as in the grid
INT_AXES = ("blocks", "widen_factor", "batch_size")
# Cells the GP sampler draws at random before it fits its model: a quarter of the distinct models, 2 to 10.
STARTUP_FRACTION, STARTUP_MIN, STARTUP_MAX = 0.25, 2, 10


@dataclass(frozen=True)
class Pick:
    """A cell the search hands out, and why."""

    cell: Cell
    reason: str


def study_path(root: str | Path, name: str) -> Path:
    """The sweep's Optuna journal in the runs directory."""
    return Path(root) / f"{validate_run_name(name)}{STUDY_SUFFIX}"


def study_storage(root: str | Path | None, name: str) -> Any:
    """The JournalStorage of a sweep's study (None: in memory, as the replay benchmark uses)."""
    optuna = require_optuna(SearchPlan(strategy=BAYES))
    if root is None:
        return optuna.storages.InMemoryStorage()
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(study_path(root, name))))


def group_of(cell: Cell) -> tuple[Any, ...]:
    """A cell's model and recipe: its values on every axis but the seed (seeds of a group are repeats)."""
    return tuple(cell.values[axis] for axis in GROUP_AXES if axis in cell.values)


def search_space(sweep: Sweep) -> dict[str, Any]:
    """Optuna distributions over the axes that vary, seed aside: N linear, k/lr/batch on a log scale, optimizer
    categorical. The sampler may propose a value between the declared ones; it is snapped to the nearest."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    for axis in sweep.varied:
        values = sweep.axes[axis]
        if axis == "seed":
            continue
        if axis == "optimizer":
            space[axis] = CategoricalDistribution(list(values))
            continue
        low, high = min(values), max(values)
        log = axis in LOG_AXES and low > 0
        space[axis] = IntDistribution(int(low), int(high), log=log) if axis in INT_AXES else \
            FloatDistribution(float(low), float(high), log=log)
    return space


def cell_costs(sweep: Sweep, objective: str, predicted_s: Mapping[str, float] | None) -> dict[str, float]:
    """Each cell's cost: MACs per image, or the pre-flight's predicted training seconds."""
    if objective != MACS:
        missing = [cell.run for cell in sweep.cells() if not (predicted_s or {}).get(cell.run)]
        if missing:
            raise ConfigError(f"--objective time needs a predicted time for every cell ({missing[0]} has none)")
        return {cell.run: float(predicted_s[cell.run]) for cell in sweep.cells()}  # type: ignore[index]
    from wrn_core.model.flops import input_size, macs_per_image

    size = input_size(sweep.base) or (32, 32)
    return {cell.run: float(macs_per_image(cell.config.model, *size)) for cell in sweep.cells()}


def _scaled(value: Any, distribution: Any) -> float:
    """A value's position in its distribution's range, 0 to 1 (on the log scale where the distribution has one)."""
    low, high = float(distribution.low), float(distribution.high)
    if high == low:
        return 0.0
    if distribution.log:
        return (math.log(float(value)) - math.log(low)) / (math.log(high) - math.log(low))
    return (float(value) - low) / (high - low)


def nearest_group(params: Mapping[str, Any], groups: Sequence[tuple[Any, ...]], space: Mapping[str, Any],
                  axes: Sequence[str]) -> tuple[Any, ...]:
    """The group closest to a proposal in the scaled search space (a categorical that differs counts 1); ties go to
    the earlier group."""
    def distance(group: tuple[Any, ...]) -> float:
        total = 0.0
        for axis, value in zip(axes, group):
            if axis not in params:
                continue
            dist = space[axis]
            if not hasattr(dist, "low"):
                total += 0.0 if value == params[axis] else 1.0
            else:
                total += (_scaled(value, dist) - _scaled(params[axis], dist)) ** 2
        return total

    return min(groups, key=distance)


class Search:
    """Hands out a sweep's cells by its SearchPlan. `predicted_s`: the pre-flight's seconds per cell (needed by a
    minutes budget and the time objective); `root`: the runs directory (None: the study lives in memory);
    `storage`: an Optuna storage to use instead (a copy of the study, to read what it would do)."""

    def __init__(self, sweep: Sweep, root: str | Path | None = None,
                 predicted_s: Mapping[str, float] | None = None, storage: Any = None) -> None:
        self.sweep, self.plan = sweep, sweep.search
        self.plan.check_predictable(predicted_s is not None)
        self.predicted_s = dict(predicted_s or {})
        self.cells = sweep.cells()
        self.by_run = {cell.run: cell for cell in self.cells}
        self.axes = sweep.group_axes
        self.groups: dict[tuple[Any, ...], list[Cell]] = {}
        for cell in self.cells:
            self.groups.setdefault(group_of(cell), []).append(cell)
        self.costs = cell_costs(sweep, self.plan.objective, predicted_s)
        self.study = None
        self.space: dict[str, Any] = {}
        if self.plan.strategy != GRID:
            self.optuna = require_optuna(self.plan)
            self.space = search_space(sweep)
            self.study = self._open_study(storage if storage is not None else study_storage(root, sweep.name))
        self._handed: list[str] = []  # cells this object handed out, in order

    # -- the study ---------------------------------------------------------------------------------------
    def _open_study(self, storage: Any) -> Any:
        study = self.optuna.create_study(study_name=self.sweep.name, storage=storage, load_if_exists=True,
                                         directions=["maximize", "minimize"])
        if study.metric_names is None:
            cost = "log10 MACs per image" if self.plan.objective == MACS else "log10 predicted seconds"
            with warnings.catch_warnings():  # set_metric_names is marked experimental; dashboards read the names
                warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(["best test accuracy", cost])
            for key, value in {"sweep": self.sweep.name, **self.plan.to_dict()}.items():
                study.set_user_attr(key, value)
        return study

    def _trial_runs(self) -> dict[str, Any]:
        """run -> its trial in the persisted study (first one, should a run appear twice)."""
        if self.study is None:
            return {}
        runs: dict[str, Any] = {}
        for trial in self.study.get_trials(deepcopy=False):
            runs.setdefault(trial.user_attrs.get("run"), trial)
        return runs

    def _params(self, cell: Cell) -> dict[str, Any]:
        return {axis: cell.values[axis] for axis in self.space}

    def _values(self, run: str, acc: float) -> list[float]:
        return [float(acc), math.log10(max(self.costs[run], 1e-12))]

    def _frozen(self, run: str, state: str, acc: float | None, asked_state: Any = None, **attrs: Any) -> Any:
        """The trial a cell is in the study: complete with (accuracy, log10 cost), pruned, failed or running."""
        from optuna.trial import TrialState, create_trial

        cell = self.by_run[run]
        kind = asked_state
        if kind is None:
            kind = (TrialState.COMPLETE if state == FINISHED and acc is not None else TrialState.PRUNED if state == PRUNED
                    else TrialState.FAIL if state in (FAILED, DIVERGED) else TrialState.RUNNING)
        values = self._values(run, acc) if kind == TrialState.COMPLETE else None
        return create_trial(state=kind, params=self._params(cell), distributions=self.space, values=values,
                            user_attrs={"run": run, "seed": cell.values["seed"], **attrs})

    def record_results(self, cells: pd.DataFrame) -> None:
        """Bring the persisted study up to date with the store: tell the trials whose cell has ended, and add a trial
        for a started cell it lacks (the file was lost, or the cell was started by hand)."""
        if self.study is None:
            return
        from optuna.trial import TrialState

        states = _states(cells)
        trials = self._trial_runs()
        for run in (cell.run for cell in self.cells):
            status, acc, _ = states.get(run, (PENDING, None, None))
            trial = trials.get(run)
            if trial is None and status != PENDING:
                self.study.add_trial(self._frozen(run, status, acc, reason="started before the study knew it"))
            elif trial is not None and trial.state == TrialState.RUNNING and status in ENDED_STATUSES:
                if status == FINISHED and acc is not None:
                    self.study.tell(trial.number, self._values(run, acc))
                else:
                    self.study.tell(trial.number, state=TrialState.PRUNED if status == PRUNED else TrialState.FAIL)

    # -- asking ------------------------------------------------------------------------------------------
    def ask(self, cells: pd.DataFrame, count: int = 1) -> list[Pick]:
        """Up to `count` cells to start now (fewer when the budget or the grid runs out), recorded as started."""
        self.record_results(cells)
        picks: list[Pick] = []
        for _ in range(count):
            pick = self._choose(cells)
            if pick is None:
                break
            if self.study is not None and pick.cell.run not in self._trial_runs():
                self.study.add_trial(self._frozen(pick.cell.run, PENDING, None, self.optuna.trial.TrialState.RUNNING,
                                                  reason=pick.reason))
            self._handed.append(pick.cell.run)
            picks.append(pick)
        return picks

    def peek(self, cells: pd.DataFrame) -> Pick | None:
        """The cell `ask` would hand out next, recording nothing."""
        return self._choose(cells)

    def started(self, cells: pd.DataFrame) -> list[str]:
        """Cells that count against the budget: any with a run, any the study holds, any handed out."""
        states = _states(cells)
        trials = self._trial_runs()
        return [cell.run for cell in self.cells
                if states.get(cell.run, (PENDING,))[0] != PENDING or cell.run in trials or cell.run in self._handed]

    def spent_seconds(self, cells: pd.DataFrame) -> float:
        """Training seconds the budget counts: measured for ended cells, else the larger of predicted and measured."""
        states = _states(cells)
        total = 0.0
        for run in self.started(cells):
            status, _, seconds = states.get(run, (PENDING, None, None))
            predicted = self.predicted_s.get(run, 0.0)
            total += seconds if status in ENDED_STATUSES and seconds is not None else max(predicted, seconds or 0.0)
        return total

    def stopped_because(self, cells: pd.DataFrame) -> str | None:
        """Why the search starts no more cells (the budget is spent, nothing fits, every cell started), or None."""
        started = self.started(cells)
        if self.plan.budget_cells is not None and len(started) >= self.plan.budget_cells:
            return f"the budget of {self.plan.budget_text()} is spent ({len(started)} started)"
        free = [cell for cell in self.cells if cell.run not in started]
        if not free:
            return "every cell has been started"
        if self.plan.budget_minutes is not None and not self._fitting(cells, free):
            left = self.plan.budget_minutes * 60.0 - self.spent_seconds(cells)
            return f"no cell left is predicted to fit the {max(left, 0.0) / 60.0:.1f} minutes left of {self.plan.budget_text()}"
        return None

    def _fitting(self, cells: pd.DataFrame, free: Iterable[Cell]) -> list[Cell]:
        if self.plan.budget_minutes is None:
            return list(free)
        left = self.plan.budget_minutes * 60.0 - self.spent_seconds(cells)
        return [cell for cell in free if self.predicted_s.get(cell.run, math.inf) <= left]

    def _choose(self, cells: pd.DataFrame) -> Pick | None:
        states = _states(cells)
        trials = self._trial_runs()
        for run, trial in trials.items():  # asked by an earlier driver and never started: hand it out again
            if run in self.by_run and run not in self._handed and states.get(run, (PENDING,))[0] == PENDING:
                return Pick(self.by_run[run], "asked for before and not started yet")
        if self.stopped_because(cells) is not None:
            return None
        started = set(self.started(cells))
        free = self._fitting(cells, [cell for cell in self.cells if cell.run not in started])
        if self.plan.strategy == GRID:
            return Pick(free[0], "next in grid order")
        if self.plan.strategy == RANDOM:
            order = np.random.default_rng(self.plan.seed).permutation(len(self.cells))
            rank = {self.cells[i].run: position for position, i in enumerate(order)}
            return Pick(min(free, key=lambda cell: rank[cell.run]), f"next in the sweep's random order (seed {self.plan.seed})")
        return self._propose(states, started, free)

    def _propose(self, states: Mapping[str, tuple[str, float | None, float | None]], started: set[str],
                 free: list[Cell]) -> Pick:
        """Ask Optuna's GP sampler on a copy of the study as the store has it (a pruned cell counts with the accuracy
        it reached), then take the proposed group's next seed, or the nearest group with a cell free. Seeds are
        repeats: while some model has no cell started, the cell is the first seed of the model nearest the proposal
        that has none (a model not seen tells the map more than another seed of one seen)."""
        optuna = self.optuna
        seed = int(np.random.SeedSequence([self.plan.seed, len(started)]).generate_state(1)[0])
        startup = int(min(STARTUP_MAX, max(STARTUP_MIN, round(STARTUP_FRACTION * len(self.groups)))))
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False,
                                            independent_sampler=optuna.samplers.RandomSampler(seed=seed))
        scratch = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        complete = optuna.trial.TrialState.COMPLETE
        for run in (cell.run for cell in self.cells if cell.run in started):
            status, acc, _ = states.get(run, (PENDING, None, None))
            if status == PRUNED and acc is not None:  # what the pruner saw is what the search should learn
                scratch.add_trial(self._frozen(run, status, acc, complete))
            else:
                scratch.add_trial(self._frozen(run, status, acc))
        proposed = scratch.ask(self.space).params
        free_groups = list(dict.fromkeys(group_of(cell) for cell in free))
        unseen = [g for g in free_groups if not any(c.run in started for c in self.groups[g])]
        group = nearest_group(proposed, unseen or free_groups, self.space, self.axes)
        cell = next(c for c in self.groups[group] if c in free)
        how = "random start" if sum(t.state == complete for t in scratch.get_trials(deepcopy=False)) < startup \
            else "GP sampler, most expected hypervolume gain"
        exact = all(proposed.get(axis) == value for axis, value in zip(self.axes, group) if axis in proposed)
        nearest = "model not trained yet" if unseen else "cell still free"
        return Pick(cell, f"bayes ({how})" + ("" if exact else f"; the nearest {nearest} to its proposal"))


def _states(cells: pd.DataFrame) -> dict[str, tuple[str, float | None, float | None]]:
    """run -> (status, accuracy or None, training seconds or None) from a cells_frame."""
    out = {}
    for row in cells[["run", "status", METRIC, "train_seconds"]].itertuples(index=False):
        acc = row[2] if row[2] is not None and row[2] == row[2] else None
        seconds = row[3] if row[3] is not None and row[3] == row[3] else None
        out[row[0]] = (row[1], None if acc is None else float(acc), None if seconds is None else float(seconds))
    return out
