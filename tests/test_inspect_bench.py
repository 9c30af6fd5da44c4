"""bench.inspect_eval runs end to end with tiny sizes, its evaluation part without streamlit, plotly, torchinfo or tqdm
(the GPU machine has none of them), and the evaluate command works without tqdm."""

from __future__ import annotations

import json

from test_bench import _run_blocked


def test_inspect_eval_quick_runs_without_dashboard_packages(tmp_path):
    out = tmp_path / "inspect.json"
    done = _run_blocked("bench.inspect_eval", ["--depth", "10", "--widen-factor", "1", "--images", "40", "--batch", "20",
                                               "--repeats", "1", "--skip-page", "--threads", "1", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["images_per_s"]) == {"engine", "plain", "width"}
    assert all(rate > 0 for rate in result["images_per_s"].values())
    assert "width use costs" in done.stdout


def test_evaluate_runs_without_tqdm(tmp_path):
    from inspect_runs import trained_run
    trained_run(tmp_path, "plain", epochs=1)
    done = _run_blocked("wrn_core", ["evaluate", "plain", "--runs-dir", str(tmp_path), "--device", "cpu", "--format", "json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["epoch"] == 1
