"""`python -m wrn_core runs export --format tensorboard`: one run, --all, --force, and the one-line refusals."""

from __future__ import annotations

import json

import pytest

from wrn_core.cli import main
from wrn_core.store import RunStore
from wrn_core.store.records import FINISHED

from metric_records import epoch, step
from tb_events import event_files, read_back
from test_analysis_tensorboard import RESUMED, SUPERSEDED_LOSS
from tiny_runs import tiny_config

TINY = ["--blocks", "1", "--widen-factor", "1", "--dataset", "synthetic", "--synthetic-train", "128",
        "--synthetic-test", "50", "--batch-size", "32", "--device", "cpu", "--log-every", "1", "--quiet"]
SIMPLE = [step(2, 0.5, 2.0, 0.2), step(4, 1.0, 1.8, 0.3), epoch(1, 4, 0.25, 1.9)]


def make_runs(runs_dir, **runs):
    """Finished runs named by the keywords, each with those metrics records."""
    store = RunStore(runs_dir)
    for name, records in runs.items():
        run = store.create(tiny_config(), name=name)
        run.append_metrics(records)
        run.write_status(FINISHED, "done")
    return store


def tb(runs_dir, *args):
    return main(["runs", "export", *args, "--runs-dir", str(runs_dir)])


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_trained_run_end_to_end(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "tb"
    assert main(["train", *TINY, "--epochs", "2", "--runs-dir", str(runs_dir), "--name", "tiny"]) == 0
    capsys.readouterr()
    assert tb(runs_dir, "tiny", "--format", "tensorboard", "--out", str(out)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("tiny: ") and printed[0].endswith(f"-> {out}") and "2 epochs" in printed[0]
    assert printed[1] == f"view with: tensorboard --logdir {out}"
    records = RunStore(runs_dir).get("tiny").read_metrics()
    back = read_back(out)
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [p[0] for p in back.scalars["train/loss"]] == [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [v for _, v in back.scalars["train/acc"]] == pytest.approx([r["train_acc"] for r in steps])
    assert [p[0] for p in back.scalars["test/acc"]] == [r["step"] for r in epochs] == [4, 8]
    assert [v for _, v in back.scalars["test/acc"]] == pytest.approx([r["test_acc"] for r in epochs])
    assert "system/cpu_percent" in back.scalars and "system/rss_mb" in back.scalars  # the monitor's readings
    assert back.hparams["model.depth"] == 10 and back.hparams["model.widen_factor"] == 1
    assert back.hparams["dataset"] == "synthetic" and back.hparams["epochs"] == 2
    best = max(r["test_acc"] for r in epochs)
    assert back.scalars["hparams/best_test_acc"] == [(8, pytest.approx(best))]
    assert back.scalars["hparams/final_test_acc"] == [(8, pytest.approx(epochs[-1]["test_acc"]))]


def test_all_writes_each_run_in_its_own_directory_and_goes_past_a_corrupt_one(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "tb"
    store = make_runs(runs_dir, a=SIMPLE, b_resumed=RESUMED, c_bad=SIMPLE, d_bad=SIMPLE, e=SIMPLE)
    store.get("c_bad").config_path.write_text(json.dumps({"model": {"depth": 10}}))  # lacks dataset, epochs, ...
    metrics = store.get("d_bad").metrics_path
    metrics.unlink()
    metrics.mkdir()  # a metrics.jsonl that cannot be read
    assert tb(runs_dir, "--all", "--format", "tensorboard", "--out", str(out)) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith("error: run 'c_bad' not exported: config.json of run 'c_bad' lacks ")
    assert errors[1].startswith("error: run 'd_bad' not exported: ")
    assert captured.out.strip().splitlines()[-1] == f"3 of 5 runs exported; view with: tensorboard --logdir {out}"
    assert sorted(p.name for p in out.iterdir()) == ["a", "b_resumed", "e"]
    resumed = read_back(out / "b_resumed")
    assert [p[0] for p in resumed.scalars["test/acc"]] == [4, 8, 12]
    assert all(v != SUPERSEDED_LOSS for _, v in resumed.scalars["train/loss"])
    assert read_back(out / "a").scalars["test/acc"] == [(4, 0.25)]
    # 2 steps x (loss, acc) + test acc, test loss, lr + best and final test accuracy
    assert f"a: 9 scalars, 1 epoch, {len(read_back(out / 'a').hparams)} hparams -> {out / 'a'}" in captured.out
    assert read_back(out / "e").hparams["model.depth"] == 10


def test_all_with_every_run_good_exits_0(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "tb"
    make_runs(runs_dir, a=SIMPLE, b=SIMPLE)
    assert tb(runs_dir, "--all", "--format", "tensorboard", "--out", str(out)) == 0
    assert capsys.readouterr().err == ""
    assert [p.parent.name for p in event_files(out)] == ["a", "b"]


def test_force_writes_into_a_directory_and_a_re_export_does_not_duplicate_points(tmp_path, capsys):
    runs_dir, out = tmp_path / "runs", tmp_path / "tb"
    make_runs(runs_dir, a=SIMPLE, b=RESUMED)
    assert tb(runs_dir, "--all", "--format", "tensorboard", "--out", str(out)) == 0
    assert tb(runs_dir, "--all", "--format", "tensorboard", "--out", str(out)) == 2  # not empty now
    assert tb(runs_dir, "--all", "--format", "tensorboard", "--out", str(out), "--force") == 0
    assert tb(runs_dir, "a", "--format", "tensorboard", "--out", str(out / "a"), "--force") == 0
    assert len(event_files(out / "a")) == 1 and len(event_files(out / "b")) == 1
    assert read_back(out / "a").scalars["train/loss"] == [(2, 2.0), (4, pytest.approx(1.8))]
    assert [p[0] for p in read_back(out / "b").scalars["test/acc"]] == [4, 8, 12]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert tb(runs_dir, "a", "--format", "tensorboard", "--out", str(mine), "--force") == 0
    assert (mine / "notes.txt").read_text() == "keep" and len(event_files(mine)) == 1


def _snapshot(root):
    """Every path under root with its file's bytes."""
    return sorted((str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*"))


@pytest.mark.parametrize("args, message", [
    (["nope", "--format", "tensorboard", "--out", "{out}"], "error: no run named 'nope' in {runs}"),
    (["a", "--format", "tensorboard", "--out", "{full}"], "error: {full} exists and is not empty; pass --force to write into it"),
    (["--all", "--format", "tensorboard", "--out", "{full}"], "error: {full} exists and is not empty; pass --force to write into it"),
    (["a", "--format", "tensorboard", "--out", "{file}", "--force"], "error: {file} exists and is not a directory"),
    (["a", "--all", "--format", "tensorboard", "--out", "{out}"], "python -m wrn_core runs export: give a run name or --all, not both (see --help)"),
    (["--format", "tensorboard", "--out", "{out}"], "python -m wrn_core runs export: give a run name, or --all with --format tensorboard (see --help)"),
    (["--format", "csv"], "python -m wrn_core runs export: give a run name, or --all with --format tensorboard (see --help)"),
    (["--all", "--format", "json", "--out", "{out}"], "python -m wrn_core runs export: --all needs --format tensorboard (see --help)"),
    (["a", "--format", "tensorboard"], "python -m wrn_core runs export: --format tensorboard needs --out DIR, the directory for the event files (see --help)"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    runs_dir = tmp_path / "runs"
    make_runs(runs_dir, a=SIMPLE)
    full = tmp_path / "full"
    full.mkdir()
    (full / "old.txt").write_text("old")
    (tmp_path / "file").write_text("a file")
    names = {"out": tmp_path / "tb", "full": full, "file": tmp_path / "file", "runs": runs_dir}
    before = _snapshot(tmp_path)
    assert tb(runs_dir, *[a.format(**names) for a in args]) == 2
    captured = capsys.readouterr()
    assert one_line(captured.err) == message.format(**names) and captured.out == ""
    assert _snapshot(tmp_path) == before
