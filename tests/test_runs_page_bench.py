"""bench.runs_page runs end to end with tiny sizes: its figures, and the Runs page reading only the runs it draws."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_runs_page_bench_quick_run_reads_only_the_drawn_runs(tmp_path):
    out = tmp_path / "runs_page.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bench.runs_page", "--runs", "12", "--lines", "120", "--repeats", "1",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["runs"] == 12 and figures["lines_per_run"] == 120
    for key in ("first_render_s", "filter_change_s", "group_by_change_s"):
        assert figures[key] > 0
    # The table comes from status/config/meta: only the one run drawn by default has its metrics parsed
    # (once for its curves, once for its health badges), never all twelve.
    assert 1 <= figures["metrics_reads_first_render"] <= 2
