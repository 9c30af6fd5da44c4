"""`runs list --group-by/--filter` and `sweeps importance`, on a real tiny 2×2 sweep trained through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wrn_core.cli import main
from wrn_core.store import RunStore

REPO = Path(__file__).resolve().parents[1]
TINY = ["--synthetic-train", "160", "--synthetic-test", "100", "--batch-size", "32", "--device", "cpu", "--log-every", "1"]
CELLS = ["grid-n1-k1-s0", "grid-n1-k2-s0", "grid-n2-k1-s0", "grid-n2-k2-s0"]


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrn_core", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> str:
    """The runs directory of a finished 2×2 sweep (N 1..2 × k 1..2, two synthetic epochs each)."""
    runs = str(tmp_path_factory.mktemp("grouping") / "runs")
    done = cli("sweep", "grid", "--blocks", "1,2", "--widen-factor", "1,2", *TINY, "--epochs", "2", "--no-probe",
               "--runs-dir", runs)
    assert done.returncode == 0, done.stderr[-2000:]
    return runs


def _with_accuracies(grid: str, dest: Path, accuracy) -> str:
    """A copy of the sweep whose finished cells read best test accuracy accuracy(blocks, k): what tiny cells
    reach is close to chance and says nothing certain; these say which axis matters."""
    shutil.copytree(grid, dest)
    store = RunStore(dest)
    for name in CELLS:
        run = store.get(name)
        model = run.read_config().model
        run.write_status("finished", "finished 2 epochs", best_test_acc=accuracy(model.blocks, model.widen_factor))
    return str(dest)


def test_sweeps_importance_ranks_the_axis_that_decides_accuracy_first(grid, tmp_path):
    runs = _with_accuracies(grid, tmp_path / "runs", lambda blocks, k: 0.3 * k + 0.02 * blocks)  # width decides
    shown = cli("sweeps", "importance", "grid", "--format", "json", "--runs-dir", runs)
    assert shown.returncode == 0, shown.stderr
    answer = json.loads(shown.stdout)
    assert answer["name"] == "grid" and answer["target"] == "best_test_acc"
    assert answer["finished_cells"] == 4 and answer["cells"] == 4  # exactly 4 finished runs is enough
    rows = answer["importance"]
    assert [r["param"] for r in rows] == ["widen_factor", "blocks"]
    importances = [r["importance"] for r in rows]
    assert sum(importances) == pytest.approx(1.0) and importances[0] > importances[1] > 0
    assert all(r["correlation"] > 0 for r in rows)  # both help; width the more
    assert rows[0]["correlation"] > rows[1]["correlation"]
    table = cli("sweeps", "importance", "grid", "--runs-dir", runs)
    assert table.returncode == 0 and "blocks" in table.stdout and "widen_factor" in table.stdout
    assert "over 4 finished cell(s) of 4" in table.stdout


def test_sweeps_importance_of_an_accuracy_that_never_varies_is_one_line(grid, tmp_path, capsys):
    runs = _with_accuracies(grid, tmp_path / "runs", lambda blocks, k: 0.1)  # every cell at chance
    assert main(["sweeps", "importance", "grid", "--format", "json", "--runs-dir", runs]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: best_test_acc never varies over the 4 finished runs") and err.count("\n") == 1, err


def test_sweeps_importance_refuses_in_one_line(grid, capsys):
    assert main(["sweeps", "importance", "missing", "--runs-dir", grid]) == 2
    assert main(["sweeps", "importance", "grid", "--target", "colour", "--runs-dir", grid]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2
    store = RunStore(grid)
    store.delete(CELLS[0])  # three finished cells left (the fourth is pending again)
    try:
        assert main(["sweeps", "importance", "grid", "--runs-dir", grid]) == 2
        err = capsys.readouterr().err
        assert err == "error: parameter importance needs at least 4 finished runs; 3 have finished\n"
    finally:
        done = cli("sweep", "grid", "--resume", "--no-probe", "--runs-dir", grid)  # the next test wants all four
        assert done.returncode == 0, done.stderr[-2000:]


def test_runs_list_groups_and_filters(grid, capsys):
    assert main(["runs", "list", "--group-by", "k", "--runs-dir", grid]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["widen_factor", "n"] and "best test acc (%)" in lines[0]
    assert len(lines) == 3 and all(" ± " in line for line in lines[1:])  # two runs (seeds of N) per k
    assert "grid-n1-k1-s0" in lines[1] and "grid-n2-k1-s0" in lines[1]

    assert main(["runs", "list", "--group-by", "blocks,widen_factor", "--filter", "k=2", "--runs-dir", grid]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.split()[1] == "2" for line in lines[1:])  # k=2 only
    assert main(["runs", "list", "--filter", "blocks=1", "--filter", "k=1,2", "--runs-dir", grid]) == 0
    out = capsys.readouterr().out
    assert "grid-n1-k1-s0" in out and "grid-n1-k2-s0" in out and "grid-n2" not in out
    assert main(["runs", "list", "--filter", "optimizer=adam", "--runs-dir", grid]) == 0
    assert "match the filters" in capsys.readouterr().out


def test_runs_list_refuses_bad_groups_and_filters_in_one_line(grid, capsys):
    for argv, said in (
        (["--group-by", "seed"], "error: seed cannot be a group field: groups average over seeds"),
        (["--group-by", "colour"], "error: unknown field 'colour'"),
        (["--filter", "colour=red"], "error: unknown field 'colour'"),
        (["--filter", "lr=fast"], "error: lr='fast': lr is a number"),
        (["--filter", "k"], "expected FIELD=VALUE"),
    ):
        assert main(["runs", "list", *argv, "--runs-dir", grid]) == 2, argv
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_runs_list_metric_columns_and_runs_compare(grid, capsys):
    store = RunStore(grid)
    epochs = [r for r in store.get(CELLS[0]).read_metrics() if r["kind"] == "epoch"]
    assert main(["runs", "list", "--metric", "test_loss:min", "--metric", "train_acc:last", "--runs-dir", grid]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = lines[0]
    assert header.index("final test acc (%)") < header.index("min test loss") < header.index("last train acc (%)")
    row = next(line for line in lines if line.startswith(CELLS[0]) or line.split()[0] == CELLS[0])
    assert f"{min(e['test_loss'] for e in epochs):.6f}"[:5] in row  # the smallest test loss over its epochs
    assert main(["runs", "list", "--metric", "test_loss:median", "--runs-dir", grid]) == 2
    err = capsys.readouterr().err
    assert "expected METRIC:AGG" in err and len(err.strip().splitlines()) == 1

    assert main(["runs", "compare", CELLS[0], CELLS[3], "--runs-dir", grid]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == [CELLS[0], CELLS[3]]  # one column per run
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows["model.depth"] == ["10", "16"] and rows["model.widen_factor"] == ["1", "2"]
    assert "optimizer" not in rows  # the same in both: shown with --all only
    assert main(["runs", "compare", CELLS[0], CELLS[3], "--all", "--runs-dir", grid]) == 0
    assert any(line.split()[:1] == ["optimizer"] for line in capsys.readouterr().out.splitlines())
    assert main(["runs", "compare", CELLS[0], "--runs-dir", grid]) == 2
    assert "two or more" in capsys.readouterr().err
