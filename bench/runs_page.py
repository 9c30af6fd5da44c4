"""Seconds the Runs page takes with 500 runs of 2,000 metrics lines each: first render, a filter change, a group-by
change and ticking a second row; optionally against a baseline commit in the same run, and in Chromium.

    python -m bench.runs_page [--runs 500] [--lines 2000] [--repeats 5] [--baseline REV] [--browser] [--out FILE.json]

Targets: first render ≤ 2 s, a filter change ≤ 0.5 s. How: synthetic runs are written with the
store (RunStore.create, the records constructors of wrn_core/store/records.py, write_status) — k, N,
optimizer, seed and tags varied — then pages/3_runs.py runs under streamlit.testing's AppTest in this
process. "first render" is a fresh AppTest with Streamlit's caches cleared (the modules are imported
once before, as in a running server); the changes are reruns of that session; "tick" is the rerun after a
second row is ticked (the first ticked just before), the selection set as the grid sends it. Each figure is
the median of --repeats; `metrics_reads` counts the runs whose metrics.jsonl the page parsed (it should be
the few runs drawn, never all of them). Like bench.dashboard_overhead this is a dashboard benchmark: it needs
streamlit, which the training benchmarks never import.

--baseline REV: the same figures for the page as it was at REV (its tree exported with `git archive` and
imported in a worker process, over the same runs), the two measured in turn, repeat by repeat; each
`ratio_*` is baseline seconds / these seconds (above 1: faster now).

--browser: also in Debian's chromium (1440×900), over a `streamlit run` server of each tree: seconds from
ticking the second row to the curves chart drawing both runs (`browser_tick_s`), and the milliseconds the
page's main thread was busy in long tasks in the 8 s after the tick (`browser_busy_ms`: plotly, React, the
grid). Needs --baseline for its ratios; servers bind 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDEN = (1, 2, 4, 8)
BLOCKS = (1, 2, 3)
OPTIMIZERS = ("sgd-nesterov", "adam", "sgd")
TAGS = ("baseline", "long", "ablation", "cifar")
FIGURES = ("first_render_s", "filter_change_s", "group_by_change_s", "tick_s")
BUSY_WINDOW_S = 8.0  # seconds after the tick in which the browser's long tasks are summed
# The curves chart (its first panel is titled "Train accuracy") once it draws two runs (legend groups).
TWO_RUNS_DRAWN_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(div =>
    (div.layout.annotations || []).some(a => a.text === 'Train accuracy') &&
    new Set((div.data || []).filter(t => t.legendgroup && t.legendgroup !== 'reference').map(t => t.legendgroup)).size >= 2)"""


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


def _tick(at, rows: list[int]) -> None:
    """Set the runs table's selection to these rows, as the grid sends a click on their checkboxes."""
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [], "cells": []}}


def measure(repeats: int, page: Path) -> dict[str, float | int]:
    """Median seconds of the first render, a filter change, a group-by change and a second tick of `page`."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from wrn_core.store import Run

    reads = {"count": 0}
    original = Run.read_metrics

    def counted(self, *args, **kwargs):
        reads["count"] += 1
        return original(self, *args, **kwargs)

    Run.read_metrics = counted
    AppTest.from_file(str(page), default_timeout=120).run()  # imports (torch, plotly, sklearn) once
    times: dict[str, list[float]] = {figure: [] for figure in FIGURES}
    read_counts = []

    def timed(figure: str, at) -> None:
        start = time.perf_counter()
        at.run()
        times[figure].append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]

    for _ in range(repeats):
        st.cache_data.clear()
        st.cache_resource.clear()
        reads["count"] = 0
        at = AppTest.from_file(str(page), default_timeout=120)
        timed("first_render_s", at)
        read_counts.append(reads["count"])
        for value in (["adam"], ["sgd", "adam"], []):
            at.multiselect(key="runs_v_filter_optimizer").set_value(value)
            timed("filter_change_s", at)
        for value in (["widen_factor"], ["optimizer", "blocks"], []):
            at.multiselect(key="runs_v_group_by").set_value(value)
            timed("group_by_change_s", at)
        for first, second in ((2, 3), (4, 5), (6, 7)):
            _tick(at, [first])
            at.run()
            _tick(at, [first, second])
            timed("tick_s", at)
    Run.read_metrics = original
    result: dict[str, float | int] = {}
    for figure, values in times.items():
        result[figure] = round(statistics.median(values), 3)
        result[figure.replace("_s", "_max_s")] = round(max(values), 3)
    result["metrics_reads_first_render"] = max(read_counts)
    return result


def export_tree(rev: str, into: Path) -> Path:
    """The repository's tree at `rev` (a commit, branch or tag), written into `into` with `git archive`."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True).stdout
    tar = into.parent / f"{into.name}.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as opened:
        opened.extractall(into, filter="data")
    tar.unlink()
    return into


def measure_tree(tree: Path, runs_dir: Path, repeats: int) -> dict[str, float | int]:
    """`measure` of the page in `tree`, in a worker process that imports that tree's dashboard and wrn_core."""
    env = {**os.environ, "PYTHONPATH": str(tree), "WRN_RUNS_DIR": str(runs_dir)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--repeats",
                           str(repeats)], cwd=tree, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"the worker for {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_trees(baseline: Path, runs_dir: Path, repeats: int) -> dict:
    """The figures of the baseline tree and of this one, measured in turn repeat by repeat, and their ratios."""
    rounds: dict[str, list[dict]] = {"baseline": [], "current": []}
    for _ in range(repeats):
        rounds["baseline"].append(measure_tree(baseline, runs_dir, 1))
        rounds["current"].append(measure_tree(ROOT, runs_dir, 1))
    result: dict = {}
    for which, figures in rounds.items():
        result[which] = {figure: round(statistics.median(f[figure] for f in figures), 3) for figure in FIGURES}
        result[which]["metrics_reads_first_render"] = max(f["metrics_reads_first_render"] for f in figures)
    result["ratios"] = {figure: round(result["baseline"][figure] / result["current"][figure], 2) for figure in FIGURES}
    return result


def start_server(tree: Path, runs_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run dashboard/app.py` of `tree` over runs_dir as users start it (tests/harness), once it answers."""
    from tests.harness.server import ServerError, start_streamlit

    try:
        proc, url, _ = start_streamlit(runs_dir, log, env={**os.environ, "PYTHONPATH": str(tree)}, root=tree,
                                       timeout_s=120)
    except ServerError as error:
        raise SystemExit(f"streamlit of {tree}: {error}") from None
    return proc, url


def browser_tick(browser, url: str) -> tuple[float, float]:
    """(seconds from ticking the second row to the curves drawing both runs, long-task ms in BUSY_WINDOW_S)."""
    from tests.harness.browser import new_page

    page = new_page(browser, timeout_ms=180_000)  # 1440 x 900
    context = page.context
    try:
        page.goto(url + "/runs")
        page.get_by_role("heading", name="Curves", exact=True).first.wait_for()
        page.wait_for_function("() => !document.body.innerText.includes('Ranking the settings')")
        time.sleep(3)  # the page settled: no rerun under way
        page.evaluate("""() => { window.__busy = []; new PerformanceObserver(list => list.getEntries().forEach(e =>
            window.__busy.push([e.startTime, e.duration]))).observe({type: 'longtask'}); }""")
        box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
        row_y = [box["y"] + 35 * (1 + row) + 17 for row in (2, 3)]  # under the 35 px header, 35 px rows
        page.mouse.click(box["x"] + 16, row_y[0])
        time.sleep(3)
        since = page.evaluate("() => performance.now()")
        start = time.perf_counter()
        page.mouse.click(box["x"] + 16, row_y[1])
        page.wait_for_function(TWO_RUNS_DRAWN_JS)
        seconds = time.perf_counter() - start
        time.sleep(BUSY_WINDOW_S)
        busy = page.evaluate(f"() => window.__busy.filter(e => e[0] >= {since}).reduce((s, e) => s + e[1], 0)")
        return seconds, float(busy)
    finally:
        context.close()


def compare_browsers(baseline: Path, runs_dir: Path, repeats: int, logs: Path) -> dict:
    """browser_tick of the baseline's server and this tree's, in turn, `repeats` times each; medians and ratios."""
    from tests.harness.browser import chromium
    from tests.harness.server import stop_streamlit

    servers = {"baseline": start_server(baseline, runs_dir, logs / "baseline.log"),
               "current": start_server(ROOT, runs_dir, logs / "current.log")}
    figures: dict[str, list[tuple[float, float]]] = {which: [] for which in servers}
    try:
        with chromium() as browser:
            for _ in range(repeats):
                for which, (_, url) in servers.items():
                    figures[which].append(browser_tick(browser, url))
    finally:
        for proc, _ in servers.values():
            stop_streamlit(proc)
    result: dict = {which: {"browser_tick_s": round(statistics.median(s for s, _ in f), 2),
                            "browser_busy_ms": round(statistics.median(b for _, b in f)),
                            "browser_tick_all_s": [round(s, 2) for s, _ in f]} for which, f in figures.items()}
    result["ratios"] = {key: round(result["baseline"][key] / max(result["current"][key], 1e-9), 2)
                        for key in ("browser_tick_s", "browser_busy_ms")}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--lines", type=int, default=2000, help="metrics lines per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV", help="also measure the page at this commit, in turn with this one")
    parser.add_argument("--browser", action="store_true", help="also time the tick in chromium (needs --baseline)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # a tree to measure, runs in $WRN_RUNS_DIR
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.repeats, args.worker / "pages" / "3_runs.py")))
        return 0
    if args.browser and not args.baseline:
        parser.error("--browser compares two trees: give --baseline REV")
    sys.path.insert(0, str(ROOT))  # the page imports dashboard/ and wrn_core/ from the checkout
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        os.environ["WRN_RUNS_DIR"] = str(runs_dir)
        build_s = build_runs(runs_dir, args.runs, args.lines)
        result = {"runs": args.runs, "lines_per_run": args.lines, "repeats": args.repeats, "build_s": round(build_s, 1)}
        if args.baseline:
            baseline = export_tree(args.baseline, Path(tmp) / "baseline")
            result["baseline_rev"] = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT,
                                                    capture_output=True, text=True).stdout.strip()
            result.update(compare_trees(baseline, runs_dir, args.repeats))
            if args.browser:
                result["browser"] = compare_browsers(baseline, runs_dir, args.repeats, Path(tmp))
        else:
            result.update(measure(args.repeats, ROOT / "pages" / "3_runs.py"))
        result.update({"targets": {"first_render_s": 2.0, "filter_change_s": 0.5}, "cpus": os.cpu_count(),
                       "load_1min": round(os.getloadavg()[0], 2)})
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
