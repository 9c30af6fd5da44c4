"""The `sweep` command (train a grid of runs, with a live table of its cells) and `sweeps` (list, show, importance)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from wrn_core.cli.flags import FORMATS, Parser, UsageError, add_runs_dir, add_train_flags, csv_list, train_config_from_args
from wrn_core.config import ConfigError
from wrn_core.store import RunStore, RunStoreError
from wrn_core.store.records import ENDED_STATUSES, FINISHED, INTERRUPTED, QUEUED
from wrn_core.sweeps.search_plan import SearchPlan, require_optuna

STOP_WAIT_S = 120.0  # after Ctrl-C: how long the sweep waits for its cells to checkpoint and stop


def add_sweep(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser(
        "sweep", help="train a grid of N × k (and more) as ordinary runs, one device at a time or one per device",
        description="Every cell is a run named NAME-n<N>-k<k>[-...]-s<seed>. Ctrl-C stops the running cells and "
                    "leaves the rest pending; `sweep NAME --resume` continues. List-valued flags take commas: "
                    "--blocks 1,2 --widen-factor 1,2,4.",
    )
    sweep.add_argument("name", help="sweep name (its runs start with it)")
    sweep.add_argument("--resume", action="store_true", help="continue the saved sweep NAME (other flags are ignored)")
    sweep.add_argument("--seeds", type=csv_list(int), help="seeds, e.g. 0,1,2 (default: the base seed)")
    add_train_flags(sweep, lists=True)
    sweep.add_argument("--force", action="store_true", help="start even when cells are predicted not to fit in memory")
    sweep.add_argument("--no-probe", action="store_true", help="skip the timed probe steps (no predicted time)")
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: this machine's devices (default); ray: each cell a Ray actor on any node of a cluster")
    sweep.add_argument("--ray-address", help="the Ray cluster (HEAD:6379, ray://...; default RAY_ADDRESS, else a local "
                                             "Ray started for the sweep)")
    sweep.add_argument("--cpus-per-cell", type=float, default=1.0, help="Ray: CPUs each cell reserves (default 1)")
    sweep.add_argument("--gpus-per-cell", type=float, default=None,
                       help="Ray: GPUs each cell reserves, fractions allowed: 0.5 puts two cells on one GPU "
                            "(default 1 for a CUDA sweep, else 0)")
    sweep.add_argument("--max-retries", type=int, default=3,
                       help="Ray: how many times a cell lost with its node (or its worker killed) is started again "
                            "from its checkpoint before it ends interrupted (default 3)")
    add_search_flags(sweep)


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """Which cells a sweep trains and which it stops early (recorded in its sweep file, so --resume keeps them)."""
    from wrn_core.sweeps.search_plan import GRID, MACS, NO_PRUNING, OBJECTIVES, PRUNERS, STRATEGIES

    parser.add_argument("--search", choices=STRATEGIES, default=GRID,
                        help="grid: every cell in order (default); random: in a seeded random order; bayes: Optuna's "
                             "multi-objective sampler picks each next cell (test accuracy up, cost down)")
    parser.add_argument("--budget-cells", type=int, help="start at most this many cells")
    parser.add_argument("--budget-minutes", type=float,
                        help="start no cell predicted not to fit this many minutes (predicted plus measured training time)")
    parser.add_argument("--prune", choices=PRUNERS, default=NO_PRUNING,
                        help="stop cells early from their per-epoch test accuracy: Optuna's median or successive-halving "
                             "(asha) pruner; a pruned cell keeps its checkpoint and curve")
    parser.add_argument("--objective", choices=OBJECTIVES, default=MACS,
                        help="the cost the search minimises: MACs per image (default) or the pre-flight's predicted time")
    parser.add_argument("--search-seed", type=int, default=0, help="seed of the search's sampler and random order (default 0)")


def add_sweeps(sub: argparse._SubParsersAction) -> None:
    sweeps = sub.add_parser("sweeps", help="list saved sweeps, or show one's cells")
    sweeps_sub = sweeps.add_subparsers(dest="sweeps_command", required=True, parser_class=Parser)
    sweeps_list = sweeps_sub.add_parser("list")
    add_runs_dir(sweeps_list)
    sweeps_show = sweeps_sub.add_parser("show")
    sweeps_show.add_argument("name")
    sweeps_show.add_argument("--format", choices=FORMATS, default="table")
    add_runs_dir(sweeps_show)
    importance = sweeps_sub.add_parser("importance", help="which axis mattered: random-forest importance of the axes "
                                                          "for the finished cells' test accuracy")
    importance.add_argument("name")
    importance.add_argument("--target", choices=("best_test_acc", "final_test_acc"), default="best_test_acc")
    importance.add_argument("--format", choices=("table", "json"), default="table")
    add_runs_dir(importance)


def _process_age() -> float | None:
    """Seconds since this process started: the interpreter's start and the imports so far (None without psutil)."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - psutil missing or the process table unreadable: measure another way
        return None


def _sweep_from_args(args: argparse.Namespace):
    """The Sweep a `sweep` command line asks for: single-valued list flags go into the base config."""
    from wrn_core.sweeps import make_sweep

    if not args.blocks or not args.widen_factor:
        raise UsageError("python -m wrn_core sweep: --blocks and --widen-factor are required (or --resume)")
    scalar = argparse.Namespace(**vars(args))
    axes = {}
    for flag in ("dropout", "optimizer", "lr", "batch_size"):
        values = getattr(args, flag)
        setattr(scalar, flag, values[0] if values else None)
        if values and len(values) > 1:
            axes[flag] = values
    scalar.blocks, scalar.widen_factor, scalar.depth = args.blocks[0], args.widen_factor[0], None
    base = train_config_from_args(scalar)
    plan = SearchPlan(strategy=args.search, budget_cells=args.budget_cells, budget_minutes=args.budget_minutes,
                      prune=args.prune, objective=args.objective, seed=args.search_seed)
    return make_sweep(args.name, base, args.blocks, args.widen_factor, seeds=args.seeds or [base.seed], search=plan, **axes)


def check_search(sweep, can_predict_time: bool) -> None:
    """One line (exit 2) for a search this machine cannot run: optuna missing, or time counted or minimised with
    nothing to predict it."""
    plan = sweep.search
    if plan.needs_optuna:
        require_optuna(plan)
    plan.check_predictable(can_predict_time)


def _cells_text(frame, waiting: Sequence[str] = ()) -> str:
    """The live table of a sweep's cells, with where each runs; `waiting`: cells a Ray queue holds (not yet started)."""
    frame = frame.copy()
    # Unlocked while Ray queues them, so read as interrupted: they are queued.
    frame.loc[frame["run"].isin(list(waiting)) & (frame["status"] == INTERRUPTED), "status"] = QUEUED
    frame["where"] = [f"{e} {h}".strip() + (f" node {n[:8]}" if isinstance(n, str) else "") if isinstance(e, str) else "—"
                      for e, h, n in zip(frame["executor"], frame["host"].fillna(""), frame["node"])]
    shown = frame[["run", "status", "where", "epoch", "epochs", "best_test_acc", "train_seconds", "retried"]].copy()
    shown["epoch"] = [f"{e}/{n}" for e, n in zip(frame["epoch"], frame["epochs"])]
    shown["best_test_acc"] = [f"{100 * v:.1f}%" if v == v and v is not None else "—" for v in frame["best_test_acc"]]
    shown["train_seconds"] = [f"{v:.0f}s" if v == v and v is not None else "—" for v in frame["train_seconds"]]
    return shown.drop(columns=["epochs"]).rename(columns={"best_test_acc": "best test", "train_seconds": "time"}).to_string(index=False)


def _preflight_plan(sweep, remaining, measured, force: bool, gpu_share: float = 1.0) -> None:
    """Print every cell's size, memory and predicted time; ConfigError when cells would not fit (unless forced).
    gpu_share: the GPU each cell reserves on Ray (0.5: two cells share one GPU's free memory)."""
    from wrn_core import sweeps

    plan = sweeps.preflight_frame(sweep, measured, gpu_share)
    columns = ["run", "params", "macs", "memory_mb", "fits"] + (["predicted_s"] if measured else [])
    print(plan[columns].to_string(index=False, float_format=lambda v: f"{v:,.0f}"))
    todo = plan[plan["run"].isin([c.run for c in remaining])]
    if measured is not None:
        print(f"predicted time for the {len(todo)} cell(s) left: {todo['predicted_s'].sum():,.0f} s "
              f"(measured {len(measured.seconds_per_step)} model(s) on {sweep.base.device}; cells run one after another per device)")
    forecast = sweeps.budget_forecast(plan, sweep.search)
    if forecast:
        print(forecast)
    misfits = todo[~todo["fits"]]  # a finished cell that would not fit now (a busy GPU) is not trained again
    if len(misfits) and not force:
        raise ConfigError(f"{len(misfits)} cell(s) are predicted not to fit in memory ({', '.join(misfits['run'][:3])}"
                          f"{', ...' if len(misfits) > 3 else ''}); use smaller models or batches, or --force")


def _redraw(store: RunStore, sweep, shown: str, waiting: Sequence[str] = ()) -> str:
    """Print the cells table when it has changed (in place on a terminal); returns what is shown."""
    from wrn_core import sweeps

    text = _cells_text(sweeps.cells_frame(store, sweep), waiting)
    if text != shown:
        if sys.stdout.isatty() and shown:
            print(f"\x1b[{shown.count(chr(10)) + 1}F\x1b[J", end="")  # redraw the table in place
        print(text, flush=True)
    return text


@contextmanager
def _ctrl_c_sets() -> Iterator[threading.Event]:
    """An event the first Ctrl-C sets (a second one interrupts at once); the previous handler is restored after."""
    stop = threading.Event()

    def on_sigint(signum, frame) -> None:  # noqa: ARG001
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _follow(store: RunStore, sweep, executor, stop: threading.Event) -> None:
    """Redraw the cells table as it changes while the executor drives the sweep and `stop` is not set;
    RunStoreError when the executor stopped driving it for a reason."""
    shown = ""
    while executor.running(sweep.name) and not stop.is_set():
        shown = _redraw(store, sweep, shown, executor.waiting(sweep.name))
        time.sleep(0.5)
    error = executor.error(sweep.name)
    if error:
        raise RunStoreError(f"sweep {sweep.name} stopped: {error}")
    _redraw(store, sweep, shown)


def _run_cells(store: RunStore, sweep, placement) -> bool:
    """Train the sweep's cells that are left on the placement's executor until done or Ctrl-C (which stops the cells
    held, each with a checkpoint, and says how to continue); True when stopped by Ctrl-C."""
    from wrn_core import sweeps
    from wrn_core.jobs.sweep_executors import open_executor

    with _ctrl_c_sets() as stop, open_executor(store, sweep, placement) as executor:
        executor.start(sweep, placement)  # saves the sweep once the executor is ready (Ray: the runs dir checked)
        _follow(store, sweep, executor, stop)
        if stop.is_set():
            executor.stop(sweep.name)
            executor.wait(sweep.name, STOP_WAIT_S)
            _redraw(store, sweep, "")
    if stop.is_set():
        pending = sum(s not in ENDED_STATUSES for s in sweeps.cell_statuses(store, sweep).values())
        print(f"stopped: {pending} cell(s) left; continue with `{placement.resume_command(sweep.name, store.root)}`",
              file=sys.stderr)
        return True
    return False


def _placement(args: argparse.Namespace):
    """Where the cells train: --executor, --ray-address, --cpus-per-cell and --gpus-per-cell (default: one GPU per
    cell of a CUDA sweep, CellResources.default_for)."""
    from wrn_core.jobs.executor import Placement

    return Placement(executor=args.executor, address=args.ray_address, cpus=args.cpus_per_cell, gpus=args.gpus_per_cell,
                     max_retries=args.max_retries)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Check and save a new sweep (or load one with --resume), then train its cells that are left, in the order its
    search plan hands them out."""
    fresh = "torch" not in sys.modules  # a `python -m wrn_core sweep` process, not a caller that imported torch long ago
    from wrn_core import sweeps
    from wrn_core.engine.resume import preflight
    from wrn_core.jobs.sweep_executors import check_placement

    import_seconds = _process_age() if fresh else None  # what each cell's process pays before its data loads
    placement = _placement(args)
    check_placement(placement)  # e.g. one line saying what to install, before the probe's seconds
    store = RunStore(args.runs_dir)
    sweep = sweeps.load_sweep(store.root, args.name) if args.resume else _sweep_from_args(args)
    # A resumed sweep may count time by the predicted seconds its first pre-flight kept (the page's Ray process runs
    # `--resume --no-probe`).
    kept = sweeps.load_predicted_seconds(store.root, sweep.name) if args.resume else None
    check_search(sweep, can_predict_time=not args.no_probe or bool(kept))
    resources = placement.resources(sweep)  # a bad --cpus-per-cell, --gpus-per-cell or Ray device, before the probe
    preflight(sweep.base)
    sweeps.check_same_sweep(store.root, sweep)  # another sweep of that name: before its study is opened
    measured = None
    if args.resume and sweep.search.needs_time and not kept and not args.no_probe:
        # The predicted seconds its budget counts are lost (or were never kept): measured again before the search reads them.
        measured = sweeps.probe(sweep, import_seconds=import_seconds)
        sweeps.save_predicted_seconds(store.root, sweep, sweeps.predicted_seconds(sweep, sweeps.preflight_frame(sweep, measured)))
    if _is_done(store, sweep):
        print(f"sweep {sweep.name} is complete: every cell it trains has ended (see `sweeps show {sweep.name}`)",
              file=sys.stderr)
        return _report_end(store, sweep)  # 1 where a cell failed, as when the sweep itself ended
    remaining = sweeps.next_cells(store, sweep)
    if measured is None and not args.no_probe:
        measured = sweeps.probe(sweep, import_seconds=import_seconds)
    _preflight_plan(sweep, remaining, measured, args.force, resources.gpus if placement.executor == "ray" else 1.0)
    if measured is not None and sweep.search.needs_time:
        seconds = sweeps.predicted_seconds(sweep, sweeps.preflight_frame(sweep, measured))
        sweeps.save_predicted_seconds(store.root, sweep, seconds)
    if _run_cells(store, sweep, placement):
        return 0
    return _report_end(store, sweep)


def _is_done(store: RunStore, sweep) -> bool:
    """Whether a saved sweep has nothing left to train; a sweep not saved yet never is (nothing of it is opened)."""
    from wrn_core import sweeps
    from wrn_core.sweeps.cell_order import nothing_left

    return sweeps.sweep_path(store.root, sweep.name).exists() and nothing_left(store, sweep)


def _report_end(store: RunStore, sweep) -> int:
    """Say how the cells ended (and why a search stopped); 0 when every cell the sweep trained finished (or was
    pruned, as its plan asks), else 1."""
    from wrn_core import sweeps
    from wrn_core.store.records import PENDING, PRUNED

    counts = sweeps.cells_frame(store, sweep)["status"].value_counts().to_dict()
    print(f"sweep {sweep.name}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())), file=sys.stderr)
    if sweep.search.is_grid:
        return 0 if set(counts) <= {FINISHED} else 1
    from wrn_core.sweeps.cell_order import SearchOrder

    why = SearchOrder(sweep, store.root, read_only=True).stopped_because(store)  # says why; writes no study
    print(f"search {sweep.search.strategy}: {why or 'stopped'}", file=sys.stderr)
    return 0 if set(counts) <= {FINISHED, PRUNED, PENDING} else 1


def _sweeps_list(store: RunStore) -> int:
    from wrn_core import sweeps

    names = sweeps.sweep_names(store.root)
    if not names:
        print(f"no sweeps in {store.root}")
    for name in names:
        try:
            statuses = sweeps.cell_statuses(store, sweeps.load_sweep(store.root, name))
        except RunStoreError as exc:
            print(f"{name}: {exc}")
            continue
        done = sum(s == FINISHED for s in statuses.values())
        print(f"{name}: {done}/{len(statuses)} cells finished")
    return 0


def _sweeps_show(store: RunStore, name: str, fmt: str) -> int:
    """One sweep's cells as a table, CSV, or JSON with its axes, search plan and predicted map: each cell's
    predicted_acc and predicted_std (null where finished or the map has too few points) and whether it is next."""
    from wrn_core import sweeps
    from wrn_core.sweeps.predict import sweep_map

    sweep = sweeps.load_sweep(store.root, name)
    cells = sweeps.cells_frame(store, sweep)
    shown = sweep_map(sweep, cells, store.root)
    frame = cells.merge(shown.cells.drop(columns=["status"]), on="run", how="left")
    if fmt == "json":
        rows = json.loads(frame.to_json(orient="records"))
        summary = {"finished": shown.prediction.finished, "heldout_error_points": shown.prediction.heldout_error,
                   "error": shown.prediction.error_text, "next": {"run": shown.next.run, "reason": shown.next.reason}}
        out = {"name": sweep.name, "axes": {k: list(v) for k, v in sweep.axes.items()},
               "search": sweep.search.to_dict(), "map": summary, "cells": rows}
        try:
            nodes = sweeps.read_nodes(store.root, name)  # a Ray sweep's: its driver's view of the cluster
        except RunStoreError as exc:  # the cells are still worth showing
            print(f"warning: {exc}", file=sys.stderr)
            nodes = None
        if nodes is not None:
            out.update(nodes_written_at=nodes.written_at,
                       nodes=json.loads(sweeps.cluster_frame(nodes, frame).to_json(orient="records")))
        print(json.dumps(out, indent=2))
    elif fmt == "csv":
        print(frame.to_csv(index=False), end="")
    else:
        print(frame.to_string(index=False))
        print(f"map: {shown.prediction.error_text}")
        print(f"next: {shown.next.run or '—'} ({shown.next.reason})")
    return 0


def _sweeps_importance(store: RunStore, name: str, target: str, fmt: str) -> int:
    """Which of the sweep's axes (seed aside) mattered for the finished cells' accuracy; ImportanceError
    (one line, exit 2) when it cannot say."""
    from wrn_core import analysis, sweeps

    sweep = sweeps.load_sweep(store.root, name)
    cells = sweeps.cells_frame(store, sweep)
    params = [axis for axis in sweep.axes if axis != "seed"]
    table = analysis.importance_frame(cells, params, target)
    finished = int(((cells["status"] == FINISHED) & cells[target].notna()).sum())
    if fmt == "json":
        rows = json.loads(table.to_json(orient="records"))  # NaN -> null
        print(json.dumps({"name": sweep.name, "target": target, "finished_cells": finished, "cells": len(cells),
                          "importance": rows}, indent=2))
    else:
        print(f"sweep {sweep.name}: importance of its axes for {target} over {finished} finished cell(s) of {len(cells)}")
        print(table.to_string(index=False, na_rep="—", float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_sweeps(args: argparse.Namespace) -> int:
    """`sweeps list`, `sweeps show NAME` or `sweeps importance NAME`."""
    store = RunStore(args.runs_dir)
    if args.sweeps_command == "list":
        return _sweeps_list(store)
    if args.sweeps_command == "importance":
        return _sweeps_importance(store, args.name, args.target, args.format)
    return _sweeps_show(store, args.name, args.format)
