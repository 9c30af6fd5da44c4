"""Seconds the Runs page takes with 500 runs of 2,000 metrics lines each: first render, a filter change, a group-by change.

    python -m bench.runs_page [--runs 500] [--lines 2000] [--repeats 5] [--out FILE.json]

Targets (issue 16): first render ≤ 2 s, a filter change ≤ 0.5 s. How: synthetic runs are written with the
store (RunStore.create, the records constructors of wrn_core/store/records.py, write_status) — k, N,
optimizer, seed and tags varied — then pages/3_runs.py runs under streamlit.testing's AppTest in this
process. "first render" is a fresh AppTest with Streamlit's caches cleared (the modules are imported
once before, as in a running server); the changes are reruns of that session. Each figure is the median
of --repeats; `metrics_reads` counts the runs whose metrics.jsonl the page parsed (it should be the
few runs drawn, never all of them). Like bench.dashboard_overhead this is a dashboard benchmark: it needs
streamlit, which the training benchmarks never import.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "pages" / "3_runs.py"
WIDEN = (1, 2, 4, 8)
BLOCKS = (1, 2, 3)
OPTIMIZERS = ("sgd-nesterov", "adam", "sgd")
TAGS = ("baseline", "long", "ablation", "cifar")


def build_runs(root: Path, runs: int, lines: int) -> float:
    """Write `runs` finished runs of `lines` metrics lines each (every 100th an epoch record); returns seconds."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore
    from wrn_core.store.records import FINISHED, epoch_record, step_record

    start = time.perf_counter()
    store = RunStore(root)
    per_epoch = 100  # 99 step records then one epoch record
    epochs = max(1, lines // per_epoch)
    for i in range(runs):
        k, n, optimizer, seed = WIDEN[i % 4], BLOCKS[(i // 4) % 3], OPTIMIZERS[(i // 12) % 3], (i // 36) % 14
        config = TrainConfig(model=WRNConfig(depth=6 * n + 4, widen_factor=k), optimizer=optimizer, seed=seed,
                             device="cpu", epochs=epochs)
        run = store.create(config, f"bench-{i:04d}")
        top = 0.5 + 0.04 * k + 0.02 * n - 0.01 * (optimizer == "sgd") + 0.001 * seed  # synthetic accuracy
        records, step = [], 0
        for e in range(1, epochs + 1):
            for _ in range(per_epoch - 1):
                step += 1
                records.append(step_record(step=step, epoch=step / (per_epoch - 1), images_seen=128 * step,
                                           time=0.01 * step, train_loss=2.0 / (1 + 0.01 * step),
                                           train_acc=top * (1 - 1 / (1 + 0.01 * step)), lr=0.1))
            acc = top * e / epochs
            records.append(epoch_record(epoch=e, step=step, images_seen=128 * step, time=0.01 * step,
                                        train_loss=2.0 / (1 + 0.01 * step), train_acc=acc, test_loss=1.0 / e,
                                        test_acc=acc, lr=0.1, epoch_seconds=1.0, images_per_s=128.0,
                                        peak_mem_mb=None))
        run.append_metrics(records[:lines])
        run.write_status(FINISHED, f"finished {epochs} epochs", epoch=epochs, best_test_acc=top, final_test_acc=top,
                         train_seconds=0.01 * step)
        run.annotate(tags=[TAGS[i % 4]] + (["seeded"] if seed == 0 else []))
    return time.perf_counter() - start


def measure(repeats: int) -> dict[str, float | int]:
    """Median seconds of the first render, a filter change and a group-by change of pages/3_runs.py."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from wrn_core.store import Run

    reads = {"count": 0}
    original = Run.read_metrics

    def counted(self, *args, **kwargs):
        reads["count"] += 1
        return original(self, *args, **kwargs)

    Run.read_metrics = counted
    AppTest.from_file(str(PAGE), default_timeout=120).run()  # imports (torch, plotly, sklearn) once
    first, filters, groups, read_counts = [], [], [], []
    for _ in range(repeats):
        st.cache_data.clear()
        st.cache_resource.clear()
        reads["count"] = 0
        at = AppTest.from_file(str(PAGE), default_timeout=120)
        start = time.perf_counter()
        at.run()
        first.append(time.perf_counter() - start)
        read_counts.append(reads["count"])
        assert not at.exception, [e.value for e in at.exception]
        for value in (["adam"], ["sgd", "adam"], []):
            at.multiselect(key="runs_v_filter_optimizer").set_value(value)
            start = time.perf_counter()
            at.run()
            filters.append(time.perf_counter() - start)
        for value in (["widen_factor"], ["optimizer", "blocks"], []):
            at.multiselect(key="runs_v_group_by").set_value(value)
            start = time.perf_counter()
            at.run()
            groups.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    Run.read_metrics = original
    return {
        "first_render_s": round(statistics.median(first), 3),
        "filter_change_s": round(statistics.median(filters), 3),
        "group_by_change_s": round(statistics.median(groups), 3),
        "first_render_max_s": round(max(first), 3),
        "filter_change_max_s": round(max(filters), 3),
        "group_by_change_max_s": round(max(groups), 3),
        "metrics_reads_first_render": max(read_counts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--lines", type=int, default=2000, help="metrics lines per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # the page imports dashboard/ and wrn_core/ from the checkout
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        os.environ["WRN_RUNS_DIR"] = str(runs_dir)
        build_s = build_runs(runs_dir, args.runs, args.lines)
        result = {"runs": args.runs, "lines_per_run": args.lines, "repeats": args.repeats,
                  "build_s": round(build_s, 1), **measure(args.repeats),
                  "targets": {"first_render_s": 2.0, "filter_change_s": 0.5}, "cpus": os.cpu_count(),
                  "load_1min": round(os.getloadavg()[0], 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
