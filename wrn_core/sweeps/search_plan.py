"""How a sweep spends its compute: the search strategy, its budget, pruning and the cost objective (validated, no optuna).

A sweep's `<name>.sweep.json` keeps its SearchPlan, so `sweep NAME --resume` continues the same
search within the same budget. The default plan (grid order, no budget, no pruning) is a plain grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from wrn_core.config import ConfigError

GRID = "grid"  # every cell, in the sweep's order
RANDOM = "random"  # every cell, in an order drawn from the plan's seed
BAYES = "bayes"  # Optuna's multi-objective sampler: test accuracy up, cost down
STRATEGIES = (GRID, RANDOM, BAYES)
NO_PRUNING = "none"
MEDIAN = "median"  # Optuna's MedianPruner
ASHA = "asha"  # Optuna's SuccessiveHalvingPruner (asynchronous successive halving)
PRUNERS = (NO_PRUNING, MEDIAN, ASHA)
MACS = "macs"  # cost: multiply-accumulates per image
TIME = "time"  # cost: the pre-flight's predicted training seconds
OBJECTIVES = (MACS, TIME)
OPTUNA_REQUIREMENT = "optuna>=4"


@dataclass(frozen=True)
class SearchPlan:
    """Which cells a sweep trains, how many, and which it stops early."""

    strategy: str = GRID
    budget_cells: int | None = None  # cells started (each counts once, whatever its end)
    budget_minutes: float | None = None  # predicted plus measured training minutes
    prune: str = NO_PRUNING
    objective: str = MACS  # the cost the search minimises beside test accuracy
    seed: int = 0  # the sampler's (and the random order's) seed

    def check(self, epochs: int) -> None:
        """ConfigError (one line) for a plan that cannot run: an unknown choice, a budget of nothing, two budgets,
        or pruning with a single epoch (a cell is pruned at an epoch before its last)."""
        for value, choices, what in ((self.strategy, STRATEGIES, "--search"), (self.prune, PRUNERS, "--prune"),
                                     (self.objective, OBJECTIVES, "--objective")):
            if value not in choices:
                raise ConfigError(f"{what} {value!r} is not one of {', '.join(choices)}")
        if self.budget_cells is not None and self.budget_minutes is not None:
            raise ConfigError("give one budget, --budget-cells or --budget-minutes, not both")
        if self.budget_cells is not None and self.budget_cells < 1:
            raise ConfigError(f"a budget of {self.budget_cells} cells starts nothing; give --budget-cells 1 or more")
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ConfigError(f"a budget of {self.budget_minutes:g} minutes starts nothing; give --budget-minutes above 0")
        if self.prune != NO_PRUNING and epochs < 2:
            raise ConfigError(f"--prune {self.prune} stops a cell at an epoch before its last, and a sweep of {epochs} "
                              f"epoch has none; train 2 or more epochs, or --prune none")

    @property
    def is_grid(self) -> bool:
        """Today's sweep: every cell in order, to the end."""
        return self == SearchPlan(seed=self.seed)

    @property
    def needs_optuna(self) -> bool:
        return self.strategy != GRID or self.prune != NO_PRUNING

    @property
    def needs_time(self) -> bool:
        """Whether it counts or minimises predicted training time (so it needs the pre-flight's timed steps)."""
        return self.budget_minutes is not None or self.objective == TIME

    def check_predictable(self, can_predict_time: bool) -> None:
        """ConfigError when the plan counts or minimises training time and nothing predicts it (no probe)."""
        if self.needs_time and not can_predict_time:
            what = "--budget-minutes counts" if self.budget_minutes is not None else "--objective time minimises"
            raise ConfigError(f"{what} predicted training time, and nothing predicts it here (--no-probe skips the "
                              f"timed steps); drop --no-probe, or use --budget-cells / --objective macs")

    def budget_text(self) -> str:
        if self.budget_cells is not None:
            return f"{self.budget_cells} cell{'s' if self.budget_cells != 1 else ''}"
        if self.budget_minutes is not None:
            return f"{self.budget_minutes:g} minutes"
        return "no budget"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SearchPlan":
        """The plan a sweep file holds; a file written before sweeps had plans is a plain grid."""
        if not data:
            return cls()
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


def require_optuna(plan: SearchPlan) -> Any:
    """The optuna module; ConfigError naming what to install when it is missing."""
    try:
        import optuna
    except ImportError:
        what = f"--search {plan.strategy}" if plan.strategy != GRID else f"--prune {plan.prune}"
        raise ConfigError(f"{what} needs Optuna, which is not installed: pip install '{OPTUNA_REQUIREMENT}'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna
