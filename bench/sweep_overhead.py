"""A sweep's overhead (the 2 x 2 sweep's wall time against its four runs alone) and the pre-flight's predicted time.

    python -m bench.sweep_overhead [--device cpu|cuda] [--threads 1] [--rounds 2] [--out FILE.json] [--quick]
    python -m bench.sweep_overhead --executor ray [--epochs 4] [--cpus-per-cell N] [--rounds 2]

Targets: sum of the four runs alone / the sweep's wall time >= 0.95; the pre-flight's
predicted total time within +-30% of the measured time, on the CPU.

- Alone: each cell's config trained by itself as a user would, `python -m wrn_core train ...`
  (the flags from wrn_core.cli.command_for, so field for field the cell's config), one after
  another; wall-clock from launch to exit of each process, summed.
- Sweep: `python -m wrn_core sweep NAME --blocks 1,2 --widen-factor 1,2 ...` with the same base
  flags; wall-clock from launch to exit. That includes what a user waits for before the first
  cell: the pre-flight with its timed probe (a few steps per model, a child interpreter's start,
  one dataset load) and the table. The same sweep with `--no-probe` (no predicted time) is timed
  too, to separate the probe's fixed cost from the job manager's per-cell cost.
- ratio = sum(alone) / sweep wall. Rounds alternate the order (alone first, then the sweeps first)
  so a load change on a shared machine does not fall on one side only; pooled ratios sum over rounds.
  On a shared machine the load moves between the runs alone and the sweep, so also: the accounted
  ratio = sum(alone) / (sum(alone) + the seconds only the sweep spends): before its first cell, the
  gaps between cells, after its last cell, less each run alone's finished-to-exit time (which the
  sweep spends inside its gaps). A cell's own time, process start included, counts on both sides.
- Prediction: `preflight_frame(sweep, probe(sweep))` in this process (torch threads = --threads,
  as the children get), summed over the cells; also the total the sweep command itself printed.
  It is compared with the measured time of the cells (first cell created to last cell finished,
  from the runs' status.json), which is what the prediction predicts, and with the sweep's wall.
- --executor ray: the same 2 x 2 grid as `sweep --executor ray` (no address: a local
  Ray started by the sweep and shut down after it, so Ray's start-up and shut-down are inside its
  wall) against the local executor's `sweep`, both --no-probe, in the same run, order alternating;
  ratio = local wall / ray wall (target >= 0.9). --cpus-per-cell defaults to this machine's CPUs, so
  Ray, like the local executor's one CPU queue, trains one cell at a time with every core.
- Each cell takes ~5-15 s on a 2-core CPU (tiny synthetic runs, 1 epoch), so one sweep takes ~40 s;
  --epochs E makes each cell E epochs, spreading the sweep's fixed cost (its own start, the probe,
  its end) over more work, as in sweeps users run.
  --quick: one WRN-10-1 cell on 256 images, the --no-probe sweep only, and a 1-step probe without
  the startup measurement: it checks the path, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.cli_runs import run_timed, subprocess_env, train_args, wrn_command
from bench.common import RESULTS_DIR, add_threads_argument, environment, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.engine.devices import resolve_device
from wrn_core.store import RunStore
from wrn_core.sweeps import Sweep, load_sweep, make_sweep, preflight_frame, probe

RATIO_TARGET = 0.95  # sum of the runs alone / sweep wall time
RAY_RATIO_TARGET = 0.9  # local executor's sweep wall / Ray executor's sweep wall, Ray's start-up included
PREDICTION_TOLERANCE = 0.30  # |predicted - measured| / measured: the pre-flight's predicted sweep time
CHILD_TIMEOUT_S = 900  # one child process (a run alone or the whole sweep), seconds
PREDICTED_RE = re.compile(r"predicted time for the \d+ cell\(s\) left: ([\d,]+) s")


def grid_for(device: torch.device, quick: bool) -> tuple[TrainConfig, tuple[int, ...], tuple[int, ...]]:
    """(base config, N values, k values). The CPU grid's cells take ~10-30 s each on 2 busy cores."""
    if quick:
        base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=256, synthetic_test=64, epochs=1,
                           batch_size=32, eval_batch_size=64, log_every=2, schedule="constant", lr=0.05, device="cpu")
        return base, (1,), (1,)
    if device.type == "cuda":
        # Bigger models so the GPU, not process start, takes most of each cell's time.
        base = TrainConfig(model=WRNConfig(depth=10, widen_factor=4), synthetic_train=20480, synthetic_test=2048,
                           epochs=2, batch_size=256, eval_batch_size=1024, log_every=10, schedule="onecycle", device="cuda")
        return base, (1, 2), (4, 8)
    base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=2048, synthetic_test=256, epochs=1,
                       batch_size=64, eval_batch_size=256, log_every=8, schedule="onecycle", device="cpu")
    return base, (1, 2), (1, 2)


def sweep_args(sweep: Sweep, runs_dir: Path, no_probe: bool = False) -> list[str]:
    """`sweep NAME --blocks .. --widen-factor .. <base flags>`: the base's train flags without its model shape."""
    flags = train_args(sweep.base, runs_dir, "unused")
    flags = flags[1:]  # drop "train"
    cleaned: list[str] = []
    skip = 0
    for index, word in enumerate(flags):
        if skip:
            skip -= 1
            continue
        if word in ("--depth", "--widen-factor", "--name", "--runs-dir"):
            skip = 1  # the flag's value goes too
            continue
        if word == "--quiet":
            continue
        cleaned.append(word)
    blocks = ",".join(str(v) for v in sweep.axes["blocks"])
    widths = ",".join(str(v) for v in sweep.axes["widen_factor"])
    return ["sweep", sweep.name, "--blocks", blocks, "--widen-factor", widths, *cleaned, "--runs-dir", str(runs_dir),
            *(["--no-probe"] if no_probe else [])]


def run_alone(sweep: Sweep, runs_dir: Path, env: dict[str, str]) -> tuple[dict[str, float], dict[str, float]]:
    """Each cell's config trained alone with `python -m wrn_core train`: (run name -> wall seconds,
    run name -> seconds from its status "finished" to the process's exit)."""
    walls, exits = {}, {}
    store = RunStore(runs_dir)
    for cell in sweep.cells():
        timed = run_timed(wrn_command(train_args(cell.config, runs_dir, cell.run)), env, CHILD_TIMEOUT_S)
        walls[cell.run] = timed.wall_s
        exits[cell.run] = timed.started_at + timed.wall_s - float(store.get(cell.run).read_status()["finished_at"])
        print(f"    alone {cell.run}: {timed.wall_s:.1f} s", flush=True)
    return walls, exits


def run_sweep(sweep: Sweep, runs_dir: Path, env: dict[str, str], no_probe: bool = False) -> dict[str, Any]:
    """The sweep command, timed; plus when its cells were created and finished (status.json)."""
    timed = run_timed(wrn_command(sweep_args(sweep, runs_dir, no_probe)), env, CHILD_TIMEOUT_S, sample_cpu=True)
    saved = load_sweep(runs_dir, sweep.name)
    if saved.axes != sweep.axes or saved.base != sweep.base:
        raise RuntimeError(f"the sweep command built another sweep than the benchmark's: {saved.to_dict()} vs {sweep.to_dict()}")
    store = RunStore(runs_dir)
    cells = {}
    for cell in sweep.cells():
        status = store.get(cell.run).read_status()
        if status.get("status") != "finished":
            raise RuntimeError(f"sweep cell {cell.run} ended {status.get('status')}: {status.get('message')}")
        cells[cell.run] = {"created_at": float(status["created_at"]), "started_at": float(status.get("started_at") or 0),
                           "finished_at": float(status["finished_at"])}
    first = min(c["created_at"] for c in cells.values())
    last = max(c["finished_at"] for c in cells.values())
    ordered = sorted(cells.values(), key=lambda c: c["created_at"])
    match = PREDICTED_RE.search(timed.stdout)
    print(f"    sweep{' --no-probe' if no_probe else ''}: {timed.wall_s:.1f} s", flush=True)
    return {
        "wall_s": timed.wall_s,
        "before_first_cell_s": first - timed.started_at,  # interpreter, pre-flight with its probe, the table
        "cells_s": last - first,  # first cell created to last cell finished
        "after_last_cell_s": timed.started_at + timed.wall_s - last,  # noticing the end, the summary, exit
        "cell_wall_s": {name: c["finished_at"] - c["created_at"] for name, c in cells.items()},
        # One cell's end (status finished) to the next one's creation: its process exiting, the manager noticing.
        "gaps_s": [b["created_at"] - a["finished_at"] for a, b in zip(ordered, ordered[1:])],
        "sweep_process_cpu_s": timed.own_cpu_s,  # the sweep command's own CPU (table, polling), cells excluded
        "cli_predicted_s": float(match.group(1).replace(",", "")) if match else None,
    }


def check_same_configs(sweep: Sweep, alone_dir: Path, sweep_dir: Path) -> None:
    """The runs alone and the sweep's cells must have trained the same configs (else the ratio means nothing)."""
    alone, swept = RunStore(alone_dir), RunStore(sweep_dir)
    for cell in sweep.cells():
        a, b = alone.get(cell.run).read_config(), swept.get(cell.run).read_config()
        if a != b:
            raise RuntimeError(f"cell {cell.run}: the run alone trained {a} but the sweep's cell {b}")


def predict(sweep: Sweep, threads: int | None, quick: bool = False) -> dict[str, Any]:
    """The pre-flight's prediction made in this process: per-cell predicted seconds and the total."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    # As the sweep command probes (3 timed steps per model, the startup measured); --quick: 1 step, no startup.
    measured = probe(sweep, steps=1, measure_startup=False) if quick else probe(sweep)
    frame = preflight_frame(sweep, measured)
    return {
        "predicted_s": float(frame["predicted_s"].sum()),
        "cells_predicted_s": {str(r): float(s) for r, s in zip(frame["run"], frame["predicted_s"])},
        "probe_s": time.perf_counter() - start,
        "probe_startup_s": measured.startup_seconds,
        "probe_seconds_per_step": {"-".join(str(v) for v in k): s for k, s in measured.seconds_per_step.items()},
    }


def _error(predicted: float | None, measured: float | None) -> float | None:
    return (predicted - measured) / measured if predicted is not None and measured else None


VARIANTS = ("sweep", "sweep-no-probe")  # the sweep as users run it, and without the timed probe


def run_executor(sweep: Sweep, runs_dir: Path, env: dict[str, str], executor: str, cpus_per_cell: float) -> dict[str, Any]:
    """`sweep NAME ... --no-probe --executor EXECUTOR`, timed launch to exit; every cell must finish on that executor."""
    extra = ["--executor", executor] + (["--cpus-per-cell", f"{cpus_per_cell:g}"] if executor == "ray" else [])
    timed = run_timed(wrn_command([*sweep_args(sweep, runs_dir, no_probe=True), *extra]), env, CHILD_TIMEOUT_S)
    store = RunStore(runs_dir)
    created, finished, started = [], [], []
    for cell in sweep.cells():
        status = store.get(cell.run).read_status()
        if status.get("status") != "finished" or status.get("executor") != executor:
            raise RuntimeError(f"cell {cell.run} ended {status.get('status')} on {status.get('executor')}: {status.get('message')}")
        created.append(float(status["created_at"]))
        started.append(float(status["started_at"]))
        finished.append(float(status["finished_at"]))
    print(f"    {executor}: {timed.wall_s:.1f} s", flush=True)
    return {"wall_s": timed.wall_s, "before_first_cell_s": min(started) - timed.started_at,
            "cells_s": max(finished) - min(started), "after_last_cell_s": timed.started_at + timed.wall_s - max(finished)}


def main_ray(args: argparse.Namespace) -> int:
    """The Ray executor against the local one: the same 2 x 2 CPU grid, local wall / ray wall per round and pooled."""
    import os

    device = resolve_device("cpu")
    env_facts = environment(device)
    base, blocks, widths = grid_for(device, quick=False)
    base = base.replace(epochs=args.epochs or 4)
    cpus = args.cpus_per_cell or float(os.cpu_count() or 1)
    rounds = args.rounds if args.rounds is not None else 2
    out = Path(args.out) if args.out else RESULTS_DIR / "sweep-overhead-ray.json"
    child_env = subprocess_env(args.threads, {"RAY_USAGE_STATS_ENABLED": "0"})
    child_env.pop("RAY_ADDRESS", None)  # a local Ray of the sweep's own: its start-up is part of what is timed
    print(f"ray vs local executor on {env_facts['device_name']}: grid N {blocks} x k {widths}, {base.synthetic_train} "
          f"synthetic images, {base.epochs} epoch(s), {cpus:g} CPU(s) per Ray cell", flush=True)
    result: dict[str, Any] = {
        "kind": "sweep_overhead_ray", "date": env_facts["date"], "device_name": env_facts["device_name"],
        "torch": env_facts["torch"], "cpus": os.cpu_count(), "cpus_per_cell": cpus, "base": base.to_dict(),
        "blocks": list(blocks), "widen_factors": list(widths), "ratio_target": RAY_RATIO_TARGET, "rounds": [],
        "method": "local: `sweep NAME --blocks 1,2 --widen-factor 1,2 ... --no-probe`; ray: the same plus `--executor ray "
                  "--cpus-per-cell N` with no address (a local Ray started and shut down by the sweep); wall-clock launch "
                  "to exit of each; ratio = local / ray; rounds alternate the order.",
    }
    with tempfile.TemporaryDirectory(prefix="wrn-bench-ray-") as tmp:
        for index in range(rounds):
            sweep = make_sweep(f"ray{index}", base, blocks, widths)
            order = ("local", "ray") if index % 2 == 0 else ("ray", "local")
            print(f"  round {index + 1}/{rounds} ({', '.join(order)})", flush=True)
            entry: dict[str, Any] = {"order": list(order)}
            for executor in order:
                entry[executor] = run_executor(sweep, Path(tmp) / f"{executor}{index}", child_env, executor, cpus)
            entry["ratio"] = entry["local"]["wall_s"] / entry["ray"]["wall_s"]
            print(f"    ratio local / ray: {entry['ratio']:.3f}", flush=True)
            result["rounds"].append(entry)
            local = sum(r["local"]["wall_s"] for r in result["rounds"])
            ray = sum(r["ray"]["wall_s"] for r in result["rounds"])
            result.update(local_wall_s=local, ray_wall_s=ray, ratio=local / ray,
                          ratios=[r["ratio"] for r in result["rounds"]])
            write_json(out, result)
    print(f"\npooled: local {result['local_wall_s']:.1f} s / ray {result['ray_wall_s']:.1f} s = {result['ratio']:.3f} "
          f"(target >= {RAY_RATIO_TARGET}); per round {', '.join(f'{r:.3f}' for r in result['ratios'])}")
    for index, r in enumerate(result["rounds"], 1):
        for executor in ("local", "ray"):
            e = r[executor]
            print(f"  round {index} {executor:<5}: wall {e['wall_s']:.1f} s = before first cell {e['before_first_cell_s']:.1f} "
                  f"+ cells {e['cells_s']:.1f} + after last cell {e['after_last_cell_s']:.1f}")
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where the cells train (default cpu: the pre-flight's target is on the CPU)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds, order alternating (default 2; 1 with --quick)")
    parser.add_argument("--out", help="JSON file (default bench/results/sweep-overhead-<device>[-quick].json)")
    parser.add_argument("--quick", action="store_true", help="a tiny end-to-end dry run (one WRN-10-1 cell on 256 images)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per cell (default: 1 on the CPU, 2 on CUDA); the sweep's fixed cost is spread over more work")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="ray: the Ray executor's sweep against the local executor's instead")
    parser.add_argument("--cpus-per-cell", type=float, default=None, help="with --executor ray (default: every CPU)")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.executor == "ray":
        return main_ray(args)
    device = resolve_device("cpu" if args.quick else args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    variants = ("sweep-no-probe",) if args.quick else VARIANTS
    out = Path(args.out) if args.out else RESULTS_DIR / f"sweep-overhead-{device.type}{'-quick' if args.quick else ''}.json"
    env_facts = environment(device)
    base, blocks, widths = grid_for(device, args.quick)
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be at least 1, got {args.epochs}")
        base = base.replace(epochs=args.epochs)
    child_env = subprocess_env(args.threads)
    print(f"sweep overhead on {env_facts['device_name']}, torch {env_facts['torch']}: grid N {blocks} x k {widths}, "
          f"{base.synthetic_train} synthetic images, {base.epochs} epoch(s), batch {base.batch_size}", flush=True)

    result: dict[str, Any] = {
        "kind": "sweep_overhead", "device": device.type, "device_name": env_facts["device_name"], "torch": env_facts["torch"],
        "date": env_facts["date"], "quick": args.quick, "threads": args.threads, "blocks": list(blocks),
        "widen_factors": list(widths), "variants": list(variants), "base": base.to_dict(), "ratio_target": RATIO_TARGET,
        "prediction_tolerance": PREDICTION_TOLERANCE, "rounds": [],
        "method": "alone: each cell's config as `python -m wrn_core train` (command_for flags), wall-clock launch to exit, "
                  "summed; sweep: `python -m wrn_core sweep` with the same base flags, wall-clock launch to exit (pre-flight "
                  "and probe included), and the same with --no-probe; ratio = sum(alone) / sweep wall; rounds alternate the "
                  "order. prediction: preflight_frame(sweep, probe(sweep)) summed over the cells, in this process before each "
                  "round, against the cells' measured time (first cell created to last cell finished) and the sweep's wall.",
    }
    with tempfile.TemporaryDirectory(prefix="wrn-bench-sweep-") as tmp:
        for index in range(rounds):
            name = f"bench{index}"
            sweep = make_sweep(name, base, blocks, widths)
            order = ("alone", *variants) if index % 2 == 0 else (*reversed(variants), "alone")
            print(f"  round {index + 1}/{rounds} ({', '.join(order)})", flush=True)
            prediction = predict(sweep, args.threads, args.quick)
            print(f"    pre-flight prediction: {prediction['predicted_s']:.1f} s (probe took {prediction['probe_s']:.1f} s)", flush=True)
            alone: dict[str, float] = {}
            alone_exits: dict[str, float] = {}
            sweeps: dict[str, dict[str, Any]] = {}
            for what in order:
                runs_dir = Path(tmp) / f"{what}{index}"
                if what == "alone":
                    alone, alone_exits = run_alone(sweep, runs_dir, child_env)
                else:
                    sweeps[what] = run_sweep(sweep, runs_dir, child_env, no_probe=what == "sweep-no-probe")
            for what in sweeps:
                check_same_configs(sweep, Path(tmp) / f"alone{index}", Path(tmp) / f"{what}{index}")
            alone_total = sum(alone.values())
            entry: dict[str, Any] = {"order": list(order), "alone_s": alone, "alone_total_s": alone_total,
                                     "alone_exit_s": alone_exits, "prediction": prediction}
            for what, swept in sweeps.items():
                swept["ratio"] = alone_total / swept["wall_s"]
                # Load-independent view: the seconds only the sweep spends (its start and pre-flight, the gaps
                # between cells, its end) less what each run alone spends exiting (inside the sweep's gaps).
                swept["fixed_overhead_s"] = (swept["before_first_cell_s"] + sum(swept["gaps_s"]) + swept["after_last_cell_s"]
                                             - sum(alone_exits.values()))
                swept["ratio_accounted"] = alone_total / (alone_total + swept["fixed_overhead_s"])
                swept["prediction_error_vs_cells"] = _error(prediction["predicted_s"], swept["cells_s"])
                swept["prediction_error_vs_wall"] = _error(prediction["predicted_s"], swept["wall_s"])
                swept["cli_prediction_error_vs_cells"] = _error(swept["cli_predicted_s"], swept["cells_s"])
                entry[what] = swept
                print(f"    {what}: ratio {swept['ratio']:.3f}; prediction error vs its cells' time "
                      f"{swept['prediction_error_vs_cells']:+.1%}", flush=True)
            result["rounds"].append(entry)
            _summarise(result)
            write_json(out, result)
    print()
    print(format_table(result))
    print(f"\nwrote {out}")
    return 0


def _summarise(result: dict[str, Any]) -> None:
    """Pooled figures over the rounds so far: per variant, sums of the seconds, then the ratios."""
    rounds = result["rounds"]
    alone = sum(r["alone_total_s"] for r in rounds)
    predicted = sum(r["prediction"]["predicted_s"] for r in rounds)
    result.update({"alone_total_s": alone, "predicted_s": predicted})
    for what in result["variants"]:
        wall = sum(r[what]["wall_s"] for r in rounds)
        cells = sum(r[what]["cells_s"] for r in rounds)
        result[what] = {
            "wall_s": wall,
            "cells_s": cells,
            "before_first_cell_s": sum(r[what]["before_first_cell_s"] for r in rounds),
            "ratio": alone / wall if wall else None,
            "ratios": [r[what]["ratio"] for r in rounds],
            "fixed_overhead_s": sum(r[what]["fixed_overhead_s"] for r in rounds),
            "ratio_accounted": alone / (alone + sum(r[what]["fixed_overhead_s"] for r in rounds)) if alone else None,
            "prediction_error_vs_cells": _error(predicted, cells),
            "prediction_error_vs_wall": _error(predicted, wall),
            "prediction_errors_vs_cells": [r[what]["prediction_error_vs_cells"] for r in rounds],
        }
    main_variant = result["variants"][0]
    # The headline figures: the sweep as users run it (with --quick: the only variant timed).
    result["ratio"] = result[main_variant]["ratio"]
    result["prediction_error"] = result[main_variant]["prediction_error_vs_cells"]


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'round':>5} {'variant':<15} {'alone s':>8} {'sweep s':>8} {'ratio':>6} {'before cells s':>14} {'cells s':>8} "
             f"{'gaps s':>6} {'after s':>7} {'sweep CPU s':>11} {'predicted s':>11} {'error':>7} {'CLI predicted s':>15}"]
    for index, r in enumerate(result["rounds"], 1):
        for what in result["variants"]:
            s = r[what]
            cli = "-" if s["cli_predicted_s"] is None else f"{s['cli_predicted_s']:.0f}"
            cpu = "-" if s["sweep_process_cpu_s"] is None else f"{s['sweep_process_cpu_s']:.1f}"
            lines.append(f"{index:>5} {what:<15} {r['alone_total_s']:>8.1f} {s['wall_s']:>8.1f} {s['ratio']:>6.3f} "
                         f"{s['before_first_cell_s']:>14.1f} {s['cells_s']:>8.1f} {sum(s['gaps_s']):>6.1f} {s['after_last_cell_s']:>7.1f} "
                         f"{cpu:>11} "
                         f"{r['prediction']['predicted_s']:>11.1f} {s['prediction_error_vs_cells']:>+7.1%} {cli:>15}")
    for what in result["variants"]:
        v = result[what]
        lines.append(f"pooled {what}: sum alone / sweep wall = {result['alone_total_s']:.0f} / {v['wall_s']:.0f} s = {v['ratio']:.3f} "
                     f"(target >= {RATIO_TARGET}); predicted / measured cells time {result['predicted_s']:.0f} / {v['cells_s']:.0f} s "
                     f"= error {v['prediction_error_vs_cells']:+.1%} (target within +-{PREDICTION_TOLERANCE:.0%}); "
                     f"against the sweep's wall {v['prediction_error_vs_wall']:+.1%}; accounted ratio {v['ratio_accounted']:.3f} "
                     f"({v['fixed_overhead_s']:.1f} s spent by the sweep alone: start, gaps, end, less the runs' own exits)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
