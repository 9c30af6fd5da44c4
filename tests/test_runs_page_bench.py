"""bench.runs_page runs end to end with tiny sizes: its figures, the Runs page reading only the runs it draws, and
the baseline comparison (a commit's tree measured in turn with this one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("first_render_s", "filter_change_s", "group_by_change_s", "tick_s")


def bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "runs_page.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bench.runs_page", *args, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def test_runs_page_bench_quick_run_reads_only_the_drawn_runs(tmp_path):
    figures = bench(tmp_path, "--runs", "12", "--lines", "120", "--repeats", "1")
    assert figures["runs"] == 12 and figures["lines_per_run"] == 120
    for key in FIGURES:
        assert figures[key] > 0
    # The table comes from status/config/meta: only the one run drawn by default has its metrics parsed
    # (once for its curves, once for its health badges), never all twelve.
    assert 1 <= figures["metrics_reads_first_render"] <= 2


def test_runs_page_bench_compares_a_baseline_commit_in_the_same_run(tmp_path):
    figures = bench(tmp_path, "--runs", "6", "--lines", "60", "--repeats", "1", "--baseline", "HEAD")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    assert figures["baseline_rev"] == head.strip()
    for which in ("baseline", "current"):
        assert all(figures[which][key] > 0 for key in FIGURES) and figures[which]["metrics_reads_first_render"] <= 2
    for key in FIGURES:
        assert figures["ratios"][key] == round(figures["baseline"][key] / figures["current"][key], 2)
