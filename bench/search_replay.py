"""Does the search earn its keep? Replays grid, random and bayes orders, and pruning, against a trained reference grid.

    python -m bench.search_replay export --runs-dir /work/refgrid/runs --sweep ref [--out bench/reference_grid.json]
    python -m bench.search_replay replay [--reference bench/reference_grid.json] [--seeds 20] [--at-once 1]
                                        [--out bench/results/search_replay.json]

export: a trained sweep's results, per cell: N, k, seed, params, MACs per image, the per-epoch test
accuracy curve, best and final test accuracy, training seconds and status (cells not finished are
kept with finished false, and left out of the replay). Small enough to commit.

replay: each "training" looks the cell up, so every figure is deterministic for a sampler seed:
- search: for `bayes` and `random` (one run per sampler seed) and `grid` (its one order), the cells
  started until the finished ones reach 95% of the full grid's hypervolume (accuracy in points
  against log10 MACs per image, from chance accuracy and 0.1 decade beyond the costliest cell), and
  until the grid's best cell (highest best test accuracy) has been trained; mean, std, min and max
  over the seeds. Cells are asked `--at-once` at a time and all of a batch finish before the next ask.
- map: the GP's error on the reference grid, leaving out one cell at a time (its other seeds stay)
  and one model at a time (all its seeds; against each seed, and against the model's mean), mean
  absolute error in points, beside the seeds' own spread (what no map can predict).
- pruning: `asha` and `median` over the grid order and over `--seeds` random orders, one cell at a
  time, each judged after every epoch of its curve: the epochs trained against the full grid's
  (a pruned cell counts the epochs up to its decision; the few steps a real trainer runs into the
  next epoch before it stops are not counted) and whether the grid's best cell was kept.
A reference with cells not finished (an export taken while the grid trains) replays the finished
cells only: the others are marked failed before the search starts, and the output says `partial`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from bench.common import REPO_ROOT, RESULTS_DIR, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import FAILED, FINISHED, PENDING, RUNNING
from wrn_core.sweeps import load_sweep, make_sweep
from wrn_core.sweeps.hypervolume import front_points, hypervolume, reference_point
from wrn_core.sweeps.pruning import CellPruner, accuracy_curve
from wrn_core.sweeps.search import Search
from wrn_core.sweeps.search_plan import SearchPlan

REFERENCE = REPO_ROOT / "bench" / "reference_grid.json"
HV_SHARE = 0.95


# ---------------------------------------------------------------------------------------------
# Export


def export_reference(runs_dir: str | Path, name: str) -> dict[str, Any]:
    """A trained sweep's cells as plain data: values, size, curve, accuracies, seconds, status."""
    from wrn_core.model.flops import input_size, macs_per_image
    from wrn_core.model.memory import parameter_count

    store = RunStore(runs_dir)
    sweep = load_sweep(store.root, name)
    size = input_size(sweep.base) or (32, 32)
    cells = []
    for cell in sweep.cells():
        row: dict[str, Any] = {"run": cell.run, "blocks": cell.values["blocks"], "widen_factor": cell.values["widen_factor"],
                               "seed": cell.values["seed"], "params": parameter_count(cell.config.model),
                               "macs": macs_per_image(cell.config.model, *size), "status": PENDING, "finished": False,
                               "curve": [], "best_test_acc": None, "final_test_acc": None, "train_seconds": None}
        if store.exists(cell.run):
            status = store.get(cell.run).status()
            row.update(status=status.status, finished=status.status == FINISHED, best_test_acc=status.best_test_acc,
                       final_test_acc=status.final_test_acc, train_seconds=status.train_seconds,
                       curve=[round(v, 6) for v in accuracy_curve(store.get(cell.run).read_metrics())])
        cells.append(row)
    base = sweep.base
    recipe = {"dataset": base.dataset, "subset_train": base.subset_train, "subset_test": base.subset_test,
              "epochs": base.epochs, "batch_size": base.batch_size, "optimizer": base.optimizer, "lr": base.lr,
              "schedule": base.schedule, "device": base.device, "num_classes": base.model.num_classes}
    return {"sweep": name, "exported_at": time.strftime("%Y-%m-%d %H:%M:%S"), "axes": {k: list(v) for k, v in sweep.axes.items()},
            "recipe": recipe, "finished": sum(c["finished"] for c in cells), "cells": cells}


# ---------------------------------------------------------------------------------------------
# The reference as a sweep the search can be asked about


@dataclass(frozen=True)
class Reference:
    data: dict[str, Any]

    @property
    def epochs(self) -> int:
        return int(self.data["recipe"]["epochs"])

    @property
    def partial(self) -> bool:
        return self.data["finished"] < len(self.data["cells"])

    def sweep(self, plan: SearchPlan):
        """The reference's grid as a sweep (synthetic 32x32 base: the same MACs, no data needed to replay)."""
        axes = self.data["axes"]
        base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1, num_classes=self.data["recipe"]["num_classes"]),
                           dataset="synthetic", epochs=self.epochs, device="cpu")
        return make_sweep("ref", base, axes["blocks"], axes["widen_factor"], seeds=axes["seed"], search=plan)

    def finished_cells(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.data["cells"])
        return frame[frame["finished"]].reset_index(drop=True)

    def start_frame(self) -> pd.DataFrame:
        """Every cell pending, except those the reference lacks, marked failed so that nothing asks for them."""
        frame = pd.DataFrame(self.data["cells"])
        frame["status"] = [PENDING if done else FAILED for done in frame["finished"]]
        frame["best_test_acc"] = None
        frame["train_seconds"] = None
        return frame

    def goals(self) -> dict[str, Any]:
        """The targets: the full grid's hypervolume over cells and over models, its best cell and its best model's
        cells, and the reference point they are measured from."""
        done = self.finished_cells()
        ref = reference_point(pd.DataFrame(self.data["cells"])["macs"], self.data["recipe"]["num_classes"])
        means = done.groupby(["blocks", "widen_factor"])["best_test_acc"].mean()
        blocks, widen = means.idxmax()
        return {"ref": ref, "cells_hv": hypervolume(front_points(done["macs"], done["best_test_acc"]), ref),
                "models_hv": hypervolume(model_points(done), ref),
                "best_cell": str(done.loc[done["best_test_acc"].idxmax(), "run"]),
                "best_model": set(done.loc[(done["blocks"] == blocks) & (done["widen_factor"] == widen), "run"])}


def model_points(cells: pd.DataFrame) -> list[tuple[float, float]]:
    """(log10 MACs, accuracy in points) per model: its seeds' mean best accuracy (of the seeds in `cells`)."""
    models = cells.groupby(["blocks", "widen_factor"]).agg(macs=("macs", "first"), acc=("best_test_acc", "mean"))
    return front_points(models["macs"], models["acc"])


GOALS = ("to_95_hypervolume", "to_95_model_hypervolume", "to_best_cell", "to_best_model")


def cells_to_goals(reference: Reference, order: Sequence[str]) -> dict[str, int | None]:
    """Cells started until the trained cells reach 95% of the full grid's hypervolume, until the models' front (each
    the mean of its trained seeds) reaches 95% of the full models' hypervolume, until the best cell, and until a cell
    of the best model (the best mean over seeds); None where the order never gets there."""
    goals = reference.goals()
    done = reference.finished_cells().set_index("run")
    reached: dict[str, int | None] = dict.fromkeys(GOALS)
    for n in range(1, len(order) + 1):
        seen = done.loc[list(order[:n])]
        checks = {"to_95_hypervolume": lambda: hypervolume(front_points(seen["macs"], seen["best_test_acc"]), goals["ref"])
                  >= HV_SHARE * goals["cells_hv"],
                  "to_95_model_hypervolume": lambda: hypervolume(model_points(seen), goals["ref"])
                  >= HV_SHARE * goals["models_hv"],
                  "to_best_cell": lambda: goals["best_cell"] in order[:n],
                  "to_best_model": lambda: order[n - 1] in goals["best_model"]}
        for goal, check in checks.items():
            if reached[goal] is None and check():
                reached[goal] = n
    return reached


# ---------------------------------------------------------------------------------------------
# Replays


def replay_search(reference: Reference, strategy: str, seed: int, at_once: int = 1) -> list[str]:
    """The order in which a strategy starts the reference's cells, each finishing with its recorded results; it stops
    once both goals are reached (the rest of the order changes no figure)."""
    sweep = reference.sweep(SearchPlan(strategy=strategy, seed=seed))
    frame = reference.start_frame()
    results = reference.finished_cells().set_index("run")
    search = Search(sweep)
    order: list[str] = []
    while picks := search.ask(frame, at_once):
        for pick in picks:
            run = pick.cell.run
            frame.loc[frame["run"] == run, ["status", "best_test_acc", "train_seconds"]] = \
                [FINISHED, results.loc[run, "best_test_acc"], results.loc[run, "train_seconds"]]
            order.append(run)
        if None not in cells_to_goals(reference, order).values():  # every goal reached
            break
    return order


def replay_pruning(reference: Reference, kind: str, order: Sequence[str], first_epoch: int | None = None) -> dict[str, Any]:
    """Cells trained one at a time in `order`, judged after every epoch: epochs trained, and the best cell kept?"""
    sweep = reference.sweep(SearchPlan(prune=kind))
    pruner = CellPruner(sweep, first_epoch=first_epoch)
    curves = reference.finished_cells().set_index("run")["curve"]
    trained, pruned = 0, []
    for run in order:
        curve = list(curves[run])
        for epoch in range(1, len(curve) + 1):
            if pruner.judge(run, curve[:epoch], RUNNING) is not None:
                pruner.judge(run, curve[:epoch], "pruned")
                pruned.append(run)
                break
        else:
            pruner.judge(run, curve, FINISHED)
        trained += epoch
    best = reference.goals()["best_cell"]
    full = len(order) * reference.epochs
    return {"epochs_trained": trained, "epochs_full": full, "saved": 1.0 - trained / full,
            "best_kept": best not in pruned, "pruned": len(pruned)}


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, std, min and max of the values that are not None, and how many were None (never reached)."""
    seen = [float(v) for v in values if v is not None]
    if not seen:
        return {"mean": None, "std": None, "min": None, "max": None, "never": len(values)}
    return {"mean": statistics.fmean(seen), "std": statistics.pstdev(seen), "min": min(seen), "max": max(seen),
            "never": len(values) - len(seen)}


def map_error(reference: Reference) -> dict[str, Any]:
    """The GP's mean absolute error in points on the reference grid: one cell left out at a time (its other seeds
    stay in), and one model left out at a time (all its seeds), as `sweeps show` reports it."""
    import numpy as np

    from wrn_core.sweeps.predict import features, fit_gp, heldout_error

    done = reference.finished_cells()
    sweep = reference.sweep(SearchPlan())
    x, y = features(sweep, done), 100.0 * done["best_test_acc"].astype(float).to_numpy()
    errors = []
    for i in range(len(done)):
        keep = np.arange(len(done)) != i
        errors.append(abs(float(fit_gp(x[keep], y[keep]).predict(x[i:i + 1])[0]) - y[i]))
    models = [tuple(m) for m in done[["blocks", "widen_factor"]].to_numpy()]
    to_mean = []  # each model left out, its prediction against the mean of its seeds: the seed noise taken out
    for model in dict.fromkeys(models):
        out = np.array([m == model for m in models])
        to_mean.append(abs(float(fit_gp(x[~out], y[~out]).predict(x[out][:1])[0]) - float(y[out].mean())))
    noise = done.groupby(["blocks", "widen_factor"])["best_test_acc"].std().dropna()
    return {"cells": len(done), "leave_one_cell_out": float(np.mean(errors)),
            "leave_one_model_out": heldout_error(sweep, done), "leave_one_model_out_vs_its_mean": float(np.mean(to_mean)),
            "seed_std_points": float(100.0 * noise.mean()) if len(noise) else None}


def search_figures(reference: Reference, seeds: int, at_once: int) -> dict[str, Any]:
    """Cells to 95% hypervolume and to the best cell, per strategy, over the sampler seeds."""
    out: dict[str, Any] = {}
    for strategy, runs in (("grid", [0]), ("random", range(seeds)), ("bayes", range(seeds))):
        reached = []
        start = time.perf_counter()
        for seed in runs:
            reached.append(cells_to_goals(reference, replay_search(reference, strategy, seed, at_once)))
            print(f"  {strategy} seed {seed}: " + ", ".join(f"{goal} {n}" for goal, n in reached[-1].items()), flush=True)
        out[strategy] = {goal: spread([r[goal] for r in reached]) for goal in GOALS}
        out[strategy].update(runs=reached, seconds=time.perf_counter() - start)
    return out


def pruning_figures(reference: Reference, seeds: int) -> dict[str, Any]:
    """Epochs saved and the best cell kept, per pruner, over the grid order and random orders; then successive
    halving with its first rung at each epoch in turn (the defaults judge from half the epochs on)."""
    import numpy as np

    runs = list(reference.finished_cells()["run"])
    orders = {"grid": [runs]}
    orders["random"] = [[runs[i] for i in np.random.default_rng(seed).permutation(len(runs))] for seed in range(seeds)]
    out: dict[str, Any] = {}
    for kind in ("asha", "median"):
        for name, group in orders.items():
            out[f"{kind} {name} order"] = _pruned_orders(reference, kind, group)
    for epoch in range(1, reference.epochs):
        out[f"asha first rung at epoch {epoch}, all orders"] = _pruned_orders(reference, "asha", orders["grid"] + orders["random"],
                                                                              epoch)
    return out


def _pruned_orders(reference: Reference, kind: str, orders: Sequence[Sequence[str]],
                   first_epoch: int | None = None) -> dict[str, Any]:
    results = [replay_pruning(reference, kind, order, first_epoch) for order in orders]
    return {"saved": spread([r["saved"] for r in results]), "best_kept": sum(r["best_kept"] for r in results),
            "orders": len(results), "pruned": spread([r["pruned"] for r in results]), "epochs_full": results[0]["epochs_full"]}


def _row(name: str, s: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    if s["mean"] is None:
        return f"| {name} | never reached | | |"
    never = f" ({s['never']} never)" if s["never"] else ""
    return (f"| {name} | {s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}{never} | "
            f"{s['min'] * scale:.{digits}f} | {s['max'] * scale:.{digits}f} |")


def report(result: dict[str, Any]) -> str:
    """The figures as Markdown tables (mean ± std over the sampler seeds, min, max)."""
    ref = result["reference"]
    lines = [f"reference: {ref['finished']} of {ref['cells']} cells finished"
             + (" (PARTIAL: the grid was still training)" if ref["partial"] else ""), "",
             "| cells started until | mean ± std | min | max |", "| --- | --- | --- | --- |"]
    names = {"to_95_hypervolume": "95% hypervolume (cells)", "to_95_model_hypervolume": "95% hypervolume (models)",
             "to_best_cell": "best cell", "to_best_model": "a cell of the best model"}
    for goal, name in names.items():
        for strategy, figures in result["search"].items():
            lines.append(_row(f"{strategy}: {name}", figures[goal]))
    error = result["map"]
    model_out = error["leave_one_model_out"]
    lines += ["", f"GP error on the reference grid ({error['cells']} cells), mean absolute, points: leave one cell out "
              f"{error['leave_one_cell_out']:.2f}; leave one model out {'n/a' if model_out is None else f'{model_out:.2f}'} "
              f"against each seed, {error['leave_one_model_out_vs_its_mean']:.2f} against the model's mean; "
              f"the seeds' own spread (std within a model) {error['seed_std_points'] or 0:.2f}", "",
              "| pruning | epochs saved (%) | min | max | best cell kept |", "| --- | --- | --- | --- | --- |"]
    for name, figures in result["pruning"].items():
        lines.append(f"{_row(name, figures['saved'], 100.0)} {figures['best_kept']}/{figures['orders']} |")
    return "\n".join(lines)


def replay(reference_path: Path, seeds: int, at_once: int) -> dict[str, Any]:
    reference = Reference(json.loads(reference_path.read_text()))
    if len(reference.finished_cells()) < 3:
        raise SystemExit(f"{reference_path} has {len(reference.finished_cells())} finished cells; the replay needs 3")
    started = time.perf_counter()
    result = {"reference": {"path": str(reference_path), "exported_at": reference.data["exported_at"],
                            "cells": len(reference.data["cells"]), "finished": reference.data["finished"],
                            "partial": reference.partial, "recipe": reference.data["recipe"]},
              "seeds": seeds, "at_once": at_once, "search": search_figures(reference, seeds, at_once),
              "map": map_error(reference), "pruning": pruning_figures(reference, seeds)}
    result["seconds"] = time.perf_counter() - started
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write a trained sweep's results as the reference grid JSON")
    export.add_argument("--runs-dir", required=True)
    export.add_argument("--sweep", default="ref")
    export.add_argument("--out", type=Path, default=REFERENCE)
    run = sub.add_parser("replay", help="replay the strategies and the pruners against the reference grid")
    run.add_argument("--reference", type=Path, default=REFERENCE)
    run.add_argument("--seeds", type=int, default=20, help="sampler seeds per strategy, and random orders for pruning")
    run.add_argument("--at-once", type=int, default=1, help="cells asked for at a time (all finish before the next ask)")
    run.add_argument("--out", type=Path, default=RESULTS_DIR / "search_replay.json")
    args = parser.parse_args(argv)
    if args.command == "export":
        data = export_reference(args.runs_dir, args.sweep)
        write_json(args.out, data)
        print(f"{args.out}: {data['finished']} of {len(data['cells'])} cells finished")
        return 0
    result = replay(args.reference, args.seeds, args.at_once)
    write_json(args.out, result)
    print(report(result))
    print(f"\n{args.out} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
