"""Which running cells of a sweep to stop early: Optuna's median or asynchronous successive-halving pruner over each
cell's per-epoch test accuracy, and the stop request that ends a cell `pruned`.

The pruner's study is `<sweep>:epochs` in the sweep's Optuna journal (search.study_path): one
single-objective trial per cell (Optuna prunes only single-objective studies), whose intermediate values
are the cell's test accuracy at each epoch, so optuna-dashboard draws the curves. `CellPruner.judge`
reports the epochs a cell has added since it was last judged, asking the pruner after each one, as a
trainer calling `trial.should_prune()` would; `cells_to_prune(store, sweep, pruner)` does it for every cell
from the run store, and `request_prunes` asks the chosen cells' trainers to stop (Run.request_stop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from wrn_core.store import RunStore
from wrn_core.store.records import ACTIVE_STATUSES, DIVERGED, EPOCH, FAILED, FINISHED, PRUNED, RUNNING, of_kind
from wrn_core.sweeps.grid import Sweep
from wrn_core.sweeps.search import study_storage
from wrn_core.sweeps.search_plan import ASHA, MEDIAN, NO_PRUNING, SearchPlan, require_optuna

# No cell is judged before half its epochs: while the learning rate is high, test accuracy does not rank the
# cells (on the first 12 finished cells of bench/reference_grid.json, 6 one-cycle epochs, the rank correlation of
# each epoch's accuracy with the final one was 0.1, -0.24, 0.57, 0.48, 0.92). Successive halving's first rung is there, and a third of the cells
# that reach a rung go on (Hyperband's η = 3); the median pruner judges from there on, once MEDIAN_STARTUP cells
# have finished (Optuna's default).
JUDGED_FROM = 0.5  # of the planned epochs
ASHA_REDUCTION = 3
MEDIAN_STARTUP = 5


@dataclass(frozen=True)
class PruneDecision:
    """A running cell the pruner stops: at which epoch, its test accuracy there, and why (its status message)."""

    run: str
    epoch: int
    test_acc: float
    message: str


def first_judged_epoch(epochs: int) -> int:
    """The first epoch at which a cell of `epochs` epochs may be pruned."""
    return max(1, int(epochs * JUDGED_FROM))


def optuna_pruner(kind: str, first_epoch: int) -> Any:
    """The Optuna pruner a plan's --prune names, judging from `first_epoch` on (steps are epoch numbers, from 1;
    Optuna judges a step from n_warmup_steps on, and successive halving's first rung is min_resource)."""
    optuna = require_optuna(SearchPlan(prune=kind))
    if kind == MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=first_epoch)
    if kind == ASHA:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first_epoch, reduction_factor=ASHA_REDUCTION)
    raise ValueError(f"no pruner for --prune {kind}")


def _why(kind: str, epoch: int, acc: float) -> str:
    if kind == MEDIAN:
        return (f"its test accuracy {acc:.1%} at epoch {epoch} is below the median of the finished cells there "
                f"(median pruner)")
    return (f"its test accuracy {acc:.1%} at epoch {epoch} is not in the top 1/{ASHA_REDUCTION} of the cells that "
            f"reached that epoch (successive halving)")


class CellPruner:
    """Judges a sweep's cells epoch by epoch with the pruner its plan names; root None keeps the study in memory;
    first_epoch: the first epoch judged (default first_judged_epoch: half the epochs)."""

    def __init__(self, sweep: Sweep, root: str | Path | None = None, first_epoch: int | None = None) -> None:
        if sweep.search.prune == NO_PRUNING:
            raise ValueError(f"sweep {sweep.name} prunes nothing (--prune none)")
        self.sweep, self.kind, self.epochs = sweep, sweep.search.prune, sweep.base.epochs
        self.optuna = require_optuna(sweep.search)
        self.study = self.optuna.create_study(
            study_name=f"{sweep.name}:epochs", storage=study_storage(root, sweep.name), load_if_exists=True,
            direction="maximize", pruner=optuna_pruner(self.kind, first_epoch or first_judged_epoch(self.epochs)))
        self._trials = {t.user_attrs.get("run"): t.number for t in self.study.get_trials(deepcopy=False)}

    def settled(self, run: str) -> bool:
        """Whether the study has told this cell's end (nothing more to judge)."""
        number = self._trials.get(run)
        return number is not None and self._frozen(number).state.is_finished()

    def _frozen(self, number: int) -> Any:
        return self.study.get_trials(deepcopy=False)[number]  # trial numbers count from 0 in the order they were made

    def judge(self, run: str, curve: Sequence[float], status: str) -> PruneDecision | None:
        """Report the epochs of `curve` (test accuracy per epoch, the first epoch first) not reported yet, asking the
        pruner after each; a decision when the cell is running and should stop (again on later calls, until it
        ends). A cell that has ended is told to the study (finished, pruned, or failed)."""
        from optuna.trial import Trial

        number = self._trials.get(run)
        if number is None:
            trial = self.study.ask()
            trial.set_user_attr("run", run)
            number = self._trials[run] = trial.number
        frozen = self._frozen(number)
        if frozen.state.is_finished():
            return None
        trial = Trial(self.study, frozen._trial_id)
        decided = frozen.user_attrs.get("pruned_at")
        for epoch in range((frozen.last_step or 0) + 1, len(curve) + 1):
            if decided is not None:
                break  # what came after the decision is the trainer finishing its epoch, not a new judgement
            trial.report(float(curve[epoch - 1]), epoch)
            # Every cell is asked after every epoch, as trial.should_prune() would be: successive halving records
            # each cell's rungs as it passes them, and the cells judged later compete with those records.
            if trial.should_prune() and status == RUNNING and epoch < self.epochs:
                decided = {"epoch": epoch, "test_acc": float(curve[epoch - 1])}
                trial.set_user_attr("pruned_at", decided)
        if status in (FINISHED, PRUNED, FAILED, DIVERGED):
            self._tell(number, status, curve)
            return None
        if decided is None or status not in ACTIVE_STATUSES:
            return None
        return PruneDecision(run, decided["epoch"], decided["test_acc"], _why(self.kind, decided["epoch"], decided["test_acc"]))

    def _tell(self, number: int, status: str, curve: Sequence[float]) -> None:
        from optuna.trial import TrialState

        if status == FINISHED and len(curve):
            self.study.tell(number, max(float(v) for v in curve))
        else:
            self.study.tell(number, state=TrialState.PRUNED if status == PRUNED else TrialState.FAIL)


def accuracy_curve(records: Sequence[dict[str, Any]]) -> list[float]:
    """A run's test accuracy per completed epoch, the first epoch first."""
    return [float(r["test_acc"]) for r in of_kind(records, EPOCH) if isinstance(r.get("test_acc"), (int, float))]


def cells_to_prune(store: RunStore, sweep: Sweep, pruner: CellPruner) -> list[PruneDecision]:
    """The running cells to stop now, judged from the store (every started cell's curve is reported first)."""
    decisions = []
    for cell in sweep.cells():
        if not store.exists(cell.run) or pruner.settled(cell.run):
            continue
        status = store.summary(cell.run).status
        decision = pruner.judge(cell.run, accuracy_curve(store.get(cell.run).read_metrics()), status)
        if decision is not None:
            decisions.append(decision)
    return decisions


def request_prunes(store: RunStore, decisions: Sequence[PruneDecision]) -> None:
    """Ask each chosen cell's trainer, wherever it runs, to checkpoint and end `pruned` with the decision's reason."""
    for decision in decisions:
        store.get(decision.run).request_stop(by="pruner", ends=PRUNED, message=decision.message)
