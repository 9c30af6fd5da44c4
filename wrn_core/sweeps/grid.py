"""Sweeps: a named grid over a base training config (N × k, and optionally dropout, optimizer, lr, batch, seed).

A sweep is one small file in the runs directory, `<name>.sweep.json`; its cells are ordinary runs
named `<name>-n<N>-k<k>[-d<dropout>][-<optimizer>][-lr<lr>][-b<batch>]-s<seed>` whose status.json
carries `sweep`. A cell with no run directory yet is pending. An executor (wrn_core.jobs) starts pending cells
as its cell order hands them out and slots free up, so a sweep never floods the queue and a stop leaves the rest
pending.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from wrn_core.config import OPTIMIZERS, ConfigError, TrainConfig, WRNConfig
from wrn_core.store import RunStore, RunStoreError, validate_run_name
from wrn_core.store.records import ACTIVE_STATUSES, ENDED_STATUSES, PENDING
from wrn_core.sweeps.search_plan import SearchPlan

# The axes a sweep may vary, in the order they appear in run names and tables.
AXES = ("blocks", "widen_factor", "dropout", "optimizer", "lr", "batch_size", "seed")
# Every axis but the seed: what makes a cell's model and recipe (cells that differ only in seed are repeats of one).
GROUP_AXES = tuple(axis for axis in AXES if axis != "seed")
# How the axes are named to the user (the Sweep page's fields say N and k).
AXIS_LABELS = {"blocks": "N (blocks per group)", "widen_factor": "k (widen factor)", "dropout": "dropout",
               "optimizer": "optimizer", "lr": "learning rate", "batch_size": "batch size", "seed": "seed"}


def validate_sweep_name(name: str) -> str:
    """The name if it can name a sweep (and start its cells' run names); RunStoreError in one line otherwise,
    in the words of the field it came from."""
    try:
        return validate_run_name(name)
    except RunStoreError as exc:
        raise RunStoreError(str(exc).replace("invalid run name", "invalid sweep name", 1)) from None


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its run name, its values on every axis and the config it trains."""

    run: str
    values: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class Sweep:
    """A named grid over a base config; only the axes given vary, the rest come from the base."""

    name: str
    base: TrainConfig
    axes: dict[str, tuple[Any, ...]]  # axis -> values; blocks, widen_factor and seed are always present
    created_at: float = field(default_factory=time.time)
    search: SearchPlan = SearchPlan()  # which cells it trains, within what budget, which it prunes

    def __post_init__(self) -> None:
        validate_sweep_name(self.name)
        unknown = set(self.axes) - set(AXES)
        if unknown:
            raise ConfigError(f"unknown sweep axis {', '.join(sorted(unknown))}; choose from {', '.join(AXES)}")
        for axis in ("blocks", "widen_factor", "seed"):
            if not self.axes.get(axis):
                raise ConfigError(f"a sweep needs at least one value of {AXIS_LABELS[axis]}")
        for axis, values in self.axes.items():
            if len(set(values)) != len(values):
                raise ConfigError(f"sweep axis {axis} lists a value twice: {', '.join(map(str, values))}")
        for cell in self.cells():  # every cell is a valid config and a valid run name
            try:
                validate_run_name(cell.run)
            except RunStoreError:
                raise RunStoreError(f"sweep name {self.name!r} is too long: its cells' run names (such as "
                                    f"{cell.run!r}) would be over 100 characters") from None
        self.search.check(self.base.epochs)

    @property
    def group_axes(self) -> list[str]:
        """The sweep's axes but the seed (GROUP_AXES it has), in AXES order."""
        return [axis for axis in GROUP_AXES if axis in self.axes]

    @property
    def varied(self) -> list[str]:
        """The axes with more than one value (the ones plots split by)."""
        return [axis for axis in AXES if len(self.axes.get(axis, ())) > 1]

    def cells(self) -> list[Cell]:
        """Every combination, in run order: N, then k, then the other axes, seed last."""
        names = [axis for axis in AXES if axis in self.axes]
        cells = []
        for combo in itertools.product(*(self.axes[axis] for axis in names)):
            values = dict(zip(names, combo))
            cells.append(Cell(run=self._run_name(values), values=values, config=self._config(values)))
        return cells

    def _run_name(self, values: dict[str, Any]) -> str:
        parts = [self.name, f"n{values['blocks']}", f"k{values['widen_factor']}"]
        if "dropout" in self.axes:
            parts.append(f"d{values['dropout']:g}")
        if "optimizer" in self.axes:
            parts.append(str(values["optimizer"]))
        if "lr" in self.axes:
            parts.append(f"lr{values['lr']:g}")
        if "batch_size" in self.axes:
            parts.append(f"b{values['batch_size']}")
        parts.append(f"s{values['seed']}")
        return "-".join(parts)

    def _config(self, values: dict[str, Any]) -> TrainConfig:
        model = WRNConfig.from_blocks(
            int(values["blocks"]), int(values["widen_factor"]),
            dropout=float(values.get("dropout", self.base.model.dropout)),
            num_classes=self.base.model.num_classes, in_channels=self.base.model.in_channels,
        )
        changes: dict[str, Any] = {"model": model, "seed": int(values["seed"])}
        if "optimizer" in values:
            changes["optimizer"] = values["optimizer"]
            if values["optimizer"] != self.base.optimizer and "lr" not in values:
                changes.update(lr=None, weight_decay=None)  # that optimizer's usual values
        if "lr" in values:
            changes["lr"] = float(values["lr"])
        if "batch_size" in values:
            changes["batch_size"] = int(values["batch_size"])
        return self.base.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "axes": {k: list(v) for k, v in self.axes.items()}, "base": self.base.to_dict(),
                "created_at": self.created_at, "search": self.search.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sweep":
        axes = {str(k): tuple(v) for k, v in dict(data["axes"]).items()}
        return cls(name=str(data["name"]), base=TrainConfig.from_dict(data["base"]), axes=axes,
                   created_at=float(data.get("created_at") or 0.0), search=SearchPlan.from_dict(data.get("search")))


def make_sweep(name: str, base: TrainConfig, blocks: Sequence[int], widen_factors: Sequence[int],
               seeds: Sequence[int] = (0,), search: SearchPlan | None = None, **other_axes: Sequence[Any] | None) -> Sweep:
    """A sweep over N × k × seeds, plus any of dropout, optimizer, lr, batch_size given as value lists; `search`:
    how it picks, budgets and prunes its cells (default a plain grid)."""
    axes: dict[str, tuple[Any, ...]] = {
        "blocks": tuple(int(v) for v in blocks),
        "widen_factor": tuple(int(v) for v in widen_factors),
        "seed": tuple(int(v) for v in seeds),
    }
    for axis, values in other_axes.items():
        if values:
            if axis == "optimizer":
                for value in values:
                    if value not in OPTIMIZERS:
                        raise ConfigError(f"unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)}")
            axes[axis] = tuple(values)
    return Sweep(name=name, base=base, axes=axes, search=search or SearchPlan())



# ---------------------------------------------------------------------------------------------
# Progress of a sweep


def cell_statuses(store: RunStore, sweep: Sweep) -> dict[str, str]:
    """Each cell's run status; pending where no run exists yet."""
    statuses = {}
    for cell in sweep.cells():
        if store.exists(cell.run):
            statuses[cell.run] = store.summary(cell.run).status
        else:
            statuses[cell.run] = PENDING
    return statuses


def next_cells(store: RunStore, sweep: Sweep) -> list[Cell]:
    """Cells still to train, in order: pending ones and stopped or interrupted ones (which resume)."""
    statuses = cell_statuses(store, sweep)
    return [cell for cell in sweep.cells() if statuses[cell.run] not in ENDED_STATUSES + ACTIVE_STATUSES]


def is_done(store: RunStore, sweep: Sweep) -> bool:
    return all(status in ENDED_STATUSES for status in cell_statuses(store, sweep).values())

