"""bench.tb_export runs end to end with tiny sizes, without streamlit, plotly, torchinfo or tqdm."""

from __future__ import annotations

import json

from test_bench import _run_blocked


def test_tb_export_quick_runs_and_counts_what_it_wrote(tmp_path):
    out = tmp_path / "tb.json"
    done = _run_blocked("bench.tb_export", ["--lines", "200", "--repeats", "2", "--cli-repeats", "1", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    # 200 lines: two epochs of 90 steps, 9 system readings (cpu_percent, rss_mb) and one epoch record each.
    assert figures["epochs"] == 2
    assert figures["scalars"] == 2 * (90 * 2 + 9 * 2 + 3) + 2  # + best and final test accuracy
    assert len(figures["export_windows_s"]) == 2 and len(figures["cli_windows_s"]) == 1
    assert "to TensorBoard:" in done.stdout
