"""DDP scaling: one run trained by torchrun on P processes against the same run in one process, same global batch.

    python -m bench.ddp_scaling [--device cpu|cuda] [--threads 1] [--rounds 2] [--out FILE.json] [--quick]

CPU: `torchrun --standalone --nproc-per-node=2 -m wrn_core train ...` (gloo, 2
processes x --threads torch threads each) against `python -m wrn_core train ...` (1 process x
--threads threads), the same config and global batch (each DDP rank trains half of it). No target:
on a shared 2-core machine the two ranks compete with everything else.
CUDA: the plain run on one GPU against torchrun on every GPU of the machine (NCCL). With one GPU
that is 1 process against 1 process: it then measures only the torchrun launch path (no scaling).

Throughput of each run: images between consecutive `step` records of its metrics.jsonl over the
training seconds between them (rank 0's clock; images_seen counts the global batch), windows at or
before the warm-up and windows that cross an epoch boundary dropped (bench.common.rates_from_points);
median of the windows, pooled over the rounds. ratio = DDP images/s / single-process images/s;
efficiency = ratio / processes. Rounds alternate which goes first. Children are started with
OMP_NUM_THREADS = --threads, which defaults to 1 on the CPU (one torch thread per process).
Imports without streamlit, plotly or torchinfo (the GPU machine has none of them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.cli_runs import run_rates, run_timed, subprocess_env, torchrun_command, train_args, wrn_command
from bench.common import RESULTS_DIR, add_threads_argument, environment, median, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.engine.devices import resolve_device
from wrn_core.store import RunStore

CHILD_TIMEOUT_S = 600  # one training process (or torchrun job), seconds


def config_for(device: torch.device, quick: bool) -> tuple[TrainConfig, int]:
    """(config, warm-up steps). Synthetic data; one epoch; log_every = the window; warm-up = 2 windows."""
    if quick:
        return TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=256, synthetic_test=64, epochs=1,
                           batch_size=32, eval_batch_size=64, log_every=2, schedule="constant", lr=0.05, device="cpu"), 4
    if device.type == "cuda":
        # 40 steps of the paper's WRN-16-8 at global batch 512: 4 windows of 5 after a 20-step warm-up (cuDNN autotune).
        return TrainConfig(model=WRNConfig(depth=16, widen_factor=8), synthetic_train=512 * 40, synthetic_test=1024,
                           epochs=1, batch_size=512, eval_batch_size=1024, log_every=5, schedule="constant", lr=0.1,
                           device="cuda"), 20
    # WRN-10-2 at global batch 128 (64 per rank under DDP), 40 steps: 8 windows of 4 after an 8-step warm-up.
    return TrainConfig(model=WRNConfig(depth=10, widen_factor=2), synthetic_train=128 * 40, synthetic_test=256, epochs=1,
                       batch_size=128, eval_batch_size=256, log_every=4, schedule="constant", lr=0.1, device="cpu"), 8


def train_once(config: TrainConfig, nproc: int, runs_dir: Path, name: str, env: dict[str, str], warmup: int,
               torchrun: bool) -> dict[str, Any]:
    """One run: plain `python -m wrn_core train` or torchrun with nproc processes; its window rates."""
    args = train_args(config, runs_dir, name)
    command = torchrun_command(nproc, args) if torchrun else wrn_command(args)
    timed = run_timed(command, env, CHILD_TIMEOUT_S)
    run = RunStore(runs_dir).get(name)
    status = run.read_status()
    if status.get("status") != "finished":
        raise RuntimeError(f"{name} ended {status.get('status')}: {status.get('message')}")
    if int(status.get("world_size") or 1) != nproc:
        raise RuntimeError(f"{name} trained on {status.get('world_size')} process(es), not {nproc}")
    rates = run_rates(run, warmup)
    print(f"    {name}: {nproc} process(es){' (torchrun)' if torchrun else ''}, median {median(rates) or 0:.0f} img/s over "
          f"{len(rates)} windows, wall {timed.wall_s:.1f} s", flush=True)
    return {"processes": nproc, "torchrun": torchrun, "rates": rates, "median_img_s": median(rates), "wall_s": timed.wall_s,
            "train_seconds": status.get("train_seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ddp_scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--processes", type=int, default=None,
                        help="DDP processes (default: 2 on the CPU, every GPU on CUDA)")
    parser.add_argument("--rounds", type=int, default=None, help="single/DDP pairs, order alternating (default 2; 1 with --quick)")
    parser.add_argument("--out", help="JSON file (default bench/results/ddp-scaling-<device>[-quick].json)")
    parser.add_argument("--quick", action="store_true", help="a tiny end-to-end dry run on the CPU (WRN-10-1, 8 steps)")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    device = resolve_device("cpu" if args.quick else args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)  # one torch thread per process on the CPU
    if threads:
        torch.set_num_threads(threads)
    nproc = args.processes or (torch.cuda.device_count() if device.type == "cuda" else 2)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 2)
    out = Path(args.out) if args.out else RESULTS_DIR / f"ddp-scaling-{device.type}{'-quick' if args.quick else ''}.json"
    config, warmup = config_for(device, args.quick)
    env_facts = environment(device)
    child_env = subprocess_env(threads)
    print(f"DDP scaling on {env_facts['device_name']}, torch {env_facts['torch']}: {config.model.name}, global batch "
          f"{config.batch_size}, {nproc} process(es) x {threads or 'default'} thread(s) against 1 process", flush=True)
    result: dict[str, Any] = {
        "kind": "ddp_scaling", "device": device.type, "device_name": env_facts["device_name"], "torch": env_facts["torch"],
        "date": env_facts["date"], "quick": args.quick, "model": config.model.name, "global_batch": config.batch_size,
        "processes": nproc, "threads_per_process": threads, "warmup_steps": warmup, "window_steps": config.log_every,
        "config": config.to_dict(), "gpus": torch.cuda.device_count() if device.type == "cuda" else 0, "runs": [],
        "method": "single: `python -m wrn_core train`; ddp: `python -m torch.distributed.run --standalone "
                  "--nproc-per-node=P -m wrn_core train`, same config and global batch; OMP_NUM_THREADS = threads per "
                  "process; images/s from metrics.jsonl step records (window = log_every steps, warm-up and "
                  "epoch-crossing windows dropped), medians of the windows pooled over rounds; order alternates.",
    }
    if device.type == "cuda" and nproc == 1:
        result["note"] = "one GPU: both runs are one process; this compares the torchrun launch path with the plain one"
    with tempfile.TemporaryDirectory(prefix="wrn-bench-ddp-") as tmp:
        runs_dir = Path(tmp)
        for index in range(rounds):
            order = ("single", "ddp") if index % 2 == 0 else ("ddp", "single")
            print(f"  round {index + 1}/{rounds} ({' then '.join(order)})", flush=True)
            for mode in order:
                entry = train_once(config, 1 if mode == "single" else nproc, runs_dir, f"{mode}-{index}", child_env, warmup,
                                   torchrun=mode == "ddp")
                entry.update({"mode": mode, "round": index})
                result["runs"].append(entry)
            _summarise(result)
            write_json(out, result)
    print()
    print(format_table(result))
    print(f"\nwrote {out}")
    return 0


def _summarise(result: dict[str, Any]) -> None:
    single = [r for run in result["runs"] if run["mode"] == "single" for r in run["rates"]]
    ddp = [r for run in result["runs"] if run["mode"] == "ddp" for r in run["rates"]]
    s, d = median(single), median(ddp)
    result.update({
        "single_img_s": s,
        "ddp_img_s": d,
        "ratio": d / s if s and d else None,
        "efficiency": d / s / result["processes"] if s and d else None,
        # Best window of each: the least disturbed estimate on a shared machine.
        "ratio_best": max(ddp) / max(single) if single and ddp else None,
    })


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'round':>5} {'mode':<7} {'processes':>9} {'median img/s':>12} {'windows':>7} {'wall s':>7}"]
    for run in result["runs"]:
        lines.append(f"{run['round'] + 1:>5} {run['mode']:<7} {run['processes']:>9} {run['median_img_s'] or 0:>12.0f} "
                     f"{len(run['rates']):>7} {run['wall_s']:>7.1f}")
    ratio = result.get("ratio")
    lines.append(f"{result['model']}, global batch {result['global_batch']}, {result['device']}: {result['processes']} processes "
                 f"{result.get('ddp_img_s') or 0:.0f} img/s against 1 process {result.get('single_img_s') or 0:.0f} img/s: "
                 f"ratio {'-' if ratio is None else format(ratio, '.2f')}, efficiency "
                 f"{'-' if ratio is None else format(result['efficiency'], '.2f')}, best windows "
                 f"{'-' if result.get('ratio_best') is None else format(result['ratio_best'], '.2f')} (no target)")
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
