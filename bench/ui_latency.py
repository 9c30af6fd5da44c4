"""Latency of what the dashboard does on every rerun: the WRN-28-10 layer table and listing 200 runs.

    python -m bench.ui_latency [--out FILE.json]

Targets: layer table for WRN-28-10 under 0.5 s, torch import excluded; listing 200 runs under
1 s. Each figure is the median of several fresh measurements; the layer table is timed cold in a new
process each time (its result is memoized within a process), after `import torch` and the project's
modules.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_COLD_TABLE = """
import time
import torch  # excluded from the timing, as the target says
import wrn_core.model.tables as tables
from wrn_core.config import WRNConfig
start = time.perf_counter()
tables.layer_table(WRNConfig(depth=28, widen_factor=10))
print(time.perf_counter() - start)
"""


def cold_layer_table_seconds(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", _COLD_TABLE], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def listing_seconds(num_runs: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds for RunStore.summaries() and for summaries + analysis.runs_frame over num_runs runs."""
    from wrn_core import analysis
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore
    from wrn_core.store.records import FINISHED, step_record

    with tempfile.TemporaryDirectory() as root:
        store = RunStore(root)
        config = TrainConfig(model=WRNConfig(depth=16, widen_factor=4), epochs=50)
        for index in range(num_runs):
            run = store.create(config, f"run-{index:04d}")
            # A realistic run: 50 epochs x 40 logged steps; listing must not read these.
            run.append_metrics([step_record(step=s, epoch=0.1, images_seen=128, time=1.0, train_loss=2.0, train_acc=0.2,
                                            lr=0.1) for s in range(2000)])
            run.write_status(FINISHED, "done", epoch=50, best_test_acc=0.9, final_test_acc=0.89, params=2748890,
                             train_seconds=600.0)
        summaries_times, frame_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            rows = store.summaries()
            summaries_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            frame = analysis.runs_frame(store.summaries())
            frame_times.append(time.perf_counter() - start)
            assert len(rows) == num_runs and len(frame) == num_runs
    return summaries_times, frame_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ui_latency")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default="bench/results/ui-latency.json")
    args = parser.parse_args(argv)

    table = cold_layer_table_seconds(args.repeats)
    summaries_times, frame_times = listing_seconds(args.runs, args.repeats)
    result = {
        "layer_table_wrn_28_10_cold_s": statistics.median(table),
        "layer_table_windows_s": table,
        "list_runs": args.runs,
        "list_summaries_s": statistics.median(summaries_times),
        "list_runs_frame_s": statistics.median(frame_times),
        "list_windows_s": frame_times,
    }
    print(f"layer table, WRN-28-10, cold (median of {args.repeats}): {result['layer_table_wrn_28_10_cold_s']:.3f} s (target < 0.5 s)")
    print(f"list {args.runs} runs: summaries {result['list_summaries_s']:.3f} s, "
          f"with the runs table {result['list_runs_frame_s']:.3f} s (target < 1 s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
