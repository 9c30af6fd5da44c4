"""What losing a node costs a Ray sweep: a 2 x 2 sweep on a 3-worker Cluster with a node removed mid-cell against none.

    python -m bench.ray_node_loss [--epochs 5] [--lose-at 3] [--rounds 1] [--graceful] [--out FILE.json]

A `ray.cluster_utils.Cluster` on loopback: a head with no CPUs and three worker nodes of 1 CPU. The
same `python -m wrn_core sweep NAME --blocks 1,2 --widen-factor 1,2 --executor ray` (tiny synthetic
cells, --no-probe) runs twice in one process's run, order alternating by round:

- none: the three workers stay;
- loss: when a cell has recorded epoch `--lose-at - 1` (it trains epoch --lose-at), its node is removed
  (`Cluster.remove_node`, SIGKILL unless --graceful); the driver starts the cell again from its
  checkpoint on a node with room. The workers are added back before the next sweep.

Reported: both walls (launch to exit), ratio = none / loss, the extra seconds, and their parts: the
lost partial epoch (the removal less the cell's last epoch record before it), detection (the removal
to the driver's retry record: Ray's failure detection, the driver's poll and the dead trainer's lock),
and the restart (the retry record to the resumed trainer's resume record: a worker and the trainer's
start, the checkpoint loaded). Each sweep checks that every cell finished with each epoch once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_json
from wrn_core.store import RunStore
from wrn_core.store.records import EPOCH, FINISHED, RESUME, RETRY, RUNNING

REPO = Path(__file__).resolve().parents[1]
WORKERS = 3
CELL_FLAGS = ["--blocks", "1,2", "--widen-factor", "1,2", "--dataset", "synthetic", "--synthetic-train", "256",
              "--synthetic-test", "64", "--batch-size", "32", "--device", "cpu", "--no-probe", "--log-every", "4",
              "--schedule", "constant", "--lr", "0.05"]


def _sweep(name: str, runs: Path, address: str, epochs: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "wrn_core", "sweep", name, *CELL_FLAGS, "--epochs", str(epochs), "--executor", "ray",
               "--ray-address", address, "--runs-dir", str(runs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _epochs(run) -> list[dict[str, Any]]:
    return [r for r in run.read_metrics() if r["kind"] == EPOCH]


def _check(store: RunStore, name: str, epochs: int) -> None:
    for run_name in [n for n in store.names() if n.startswith(f"{name}-")]:
        run = store.get(run_name)
        done = [r["epoch"] for r in _epochs(run)]
        if run.read_status()["status"] != FINISHED or done != list(range(1, epochs + 1)):
            raise SystemExit(f"{run_name} did not finish with each epoch once: {run.read_status()['status']}, {done}")


def _lose_a_node(cluster, store: RunStore, name: str, lose_at: int, graceful: bool, sweep: subprocess.Popen) -> dict:
    """Wait for a running cell to record epoch lose_at - 1, remove its node; the times of what followed."""
    while sweep.poll() is None:
        for run_name in [n for n in store.names() if n.startswith(f"{name}-")]:
            run = store.get(run_name)
            status = run.read_status()
            done = _epochs(run)
            if status["status"] == RUNNING and status.get("node") and len(done) >= lose_at - 1:
                node = next(n for n in cluster.worker_nodes if n.node_id == status["node"])
                removed = time.time()
                cluster.remove_node(node, allow_graceful=graceful)
                return {"run": run_name, "removed_at": removed, "last_epoch_at": max(_wall(run, done[-1]), 0.0)}
        time.sleep(0.2)
    raise SystemExit("the sweep ended before any cell reached the epoch to lose it at")


def _wall(run, record: dict[str, Any]) -> float:
    """The wall time of an epoch record (it carries training seconds only): that of the system reading taken with it."""
    systems = [r for r in run.read_metrics() if r["kind"] == "system" and r.get("step") == record["step"]]
    return float(systems[-1]["wall_time"]) if systems else 0.0


def _after_loss(run, lost: dict) -> dict[str, float]:
    records = run.read_metrics_log().records
    retry = next(r for r in records if r["kind"] == RETRY)
    resumed = [r for r in records if r["kind"] == RESUME and r["wall_time"] >= retry["wall_time"]]
    return {
        "lost_partial_epoch_s": lost["removed_at"] - lost["last_epoch_at"] if lost["last_epoch_at"] else None,
        "detection_s": retry["wall_time"] - lost["removed_at"],
        "restart_s": resumed[0]["wall_time"] - retry["wall_time"] if resumed else None,
        "retry_reason": retry["reason"],
    }


def one_sweep(cluster, root: Path, name: str, epochs: int, lose_at: int | None, graceful: bool) -> dict[str, Any]:
    runs = root / name
    store = RunStore(runs)
    started = time.time()
    sweep = _sweep(name, runs, cluster.address, epochs)
    lost = _lose_a_node(cluster, store, name, lose_at, graceful, sweep) if lose_at else None
    _, err = sweep.communicate(timeout=1800)
    wall = time.time() - started
    if sweep.returncode != 0:
        raise SystemExit(f"sweep {name} exited {sweep.returncode}: {err.strip()[-400:]}")
    _check(store, name, epochs)
    result: dict[str, Any] = {"wall_s": wall}
    if lost:
        result.update(run=lost["run"], **_after_loss(store.get(lost["run"]), lost))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lose-at", type=int, default=3, help="remove the node of a cell training this epoch")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--graceful", action="store_true", help="let the node's processes shut down (default SIGKILL)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "node_ip_address": "127.0.0.1"})
    rounds = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index in range(args.rounds):
                order = ("none", "loss") if index % 2 == 0 else ("loss", "none")
                row: dict[str, Any] = {"order": list(order)}
                for kind in order:
                    while len(cluster.worker_nodes) < WORKERS:
                        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
                    cluster.wait_for_nodes()
                    row[kind] = one_sweep(cluster, Path(tmp), f"{kind}{index}", args.epochs,
                                          args.lose_at if kind == "loss" else None, args.graceful)
                row["ratio"] = row["none"]["wall_s"] / row["loss"]["wall_s"]
                row["extra_s"] = row["loss"]["wall_s"] - row["none"]["wall_s"]
                rounds.append(row)
                loss = row["loss"]
                print(f"round {index + 1} ({', '.join(order)}): none {row['none']['wall_s']:.1f} s, loss "
                      f"{loss['wall_s']:.1f} s, ratio {row['ratio']:.3f}, extra {row['extra_s']:+.1f} s; lost partial "
                      f"epoch {loss['lost_partial_epoch_s'] or float('nan'):.1f} s, detection {loss['detection_s']:.1f} s, "
                      f"restart {loss['restart_s'] or float('nan'):.1f} s ({loss['retry_reason']})", flush=True)
    finally:
        cluster.shutdown()
    if args.out:
        write_json(args.out, {"epochs": args.epochs, "lose_at": args.lose_at, "graceful": args.graceful,
                              "workers": WORKERS, "rounds": rounds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
