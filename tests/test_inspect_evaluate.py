"""Tests for wrn_core.inspect's evaluation: figures against numpy, width use against the layer table, the cache,
the collapsed-predictions finding, the evaluate command and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inspect_runs import cifar_subset_folder, trained_run
from shared_data import cifar_jpeg_root
from tiny_runs import epochs_of

from wrn_core.analysis.checkpoint_health import check_collapsed
from wrn_core.cli import main
from wrn_core.inspect import cache_path, evaluate_network, evaluate_run, load_network
from wrn_core.inspect.metrics import TOP_CONFUSIONS
from wrn_core.model.tables import layer_table
from wrn_core.store import RunStore
from wrn_core.store.records import RUNNING

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("runs"), "synthetic")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A run on real CIFAR-10 JPEGs (16 train / 12 test per class), a class-balanced test subset of 60."""
    root = cifar_subset_folder(cifar_jpeg_root(tmp_path_factory), tmp_path_factory.mktemp("cifar-subset"))
    return trained_run(tmp_path_factory.mktemp("runs"), "cifar", dataset="folder", data_dir=str(root),
                       subset_test=60, batch_size=32, epochs=1), root


def _reference(labels, preds, confidence, classes):
    """The figures recomputed with plain loops: confusion, precision/recall/F1, 15-bin ECE."""
    k = classes
    confusion = np.zeros((k, k), dtype=int)
    for t, p in zip(labels, preds):
        confusion[t, p] += 1
    precision, recall = [], []
    for c in range(k):
        tp = sum(1 for t, p in zip(labels, preds) if t == c and p == c)
        predicted = sum(1 for p in preds if p == c)
        actual = sum(1 for t in labels if t == c)
        precision.append(tp / predicted if predicted else 0.0)
        recall.append(tp / actual if actual else 0.0)
    ece, n = 0.0, len(labels)
    edges = np.linspace(0, 1, 16)
    for lo, hi in zip(edges[:-1], edges[1:]):
        member = [i for i in range(n) if lo < confidence[i] <= hi or (lo == 0 and confidence[i] == 0)]
        if member:
            acc = np.mean([labels[i] == preds[i] for i in member])
            conf = np.mean([confidence[i] for i in member])
            ece += len(member) / n * abs(acc - conf)
    return confusion, precision, recall, ece


@pytest.mark.parametrize("which", ["synthetic", "folder"])
def test_figures_match_an_independent_computation_from_the_predictions(which, synthetic_run, request):
    run = synthetic_run if which == "synthetic" else request.getfixturevalue("folder_run")[0]
    ev = evaluate_run(run, use_cache=False)
    labels = [p["label"] for p in ev["predictions"]]
    preds = [p["pred"] for p in ev["predictions"]]
    conf = [p["confidence"] for p in ev["predictions"]]
    confusion, precision, recall, ece = _reference(labels, preds, conf, len(ev["classes"]))
    assert ev["confusion"] == confusion.tolist()
    assert [r["precision"] for r in ev["per_class"]] == pytest.approx(precision)
    assert [r["recall"] for r in ev["per_class"]] == pytest.approx(recall)
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall)]
    assert [r["f1"] for r in ev["per_class"]] == pytest.approx(f1)
    assert [r["support"] for r in ev["per_class"]] == confusion.sum(axis=1).tolist()
    assert ev["ece"] == pytest.approx(ece, abs=1e-5)  # confidences are stored rounded to 6 digits
    # The largest off-diagonal cells, largest first and ties in reading order; a tiny run always makes mistakes.
    k = len(ev["classes"])
    mistakes = sorted((-confusion[t, p], t, p) for t in range(k) for p in range(k) if t != p and confusion[t, p] > 0)
    assert mistakes, "the tiny run made no mistake: nothing to check the top confusions against"
    assert ev["top_confusions"] == [{"true": ev["classes"][t], "pred": ev["classes"][p], "count": -c}
                                    for c, t, p in mistakes[:TOP_CONFUSIONS]]


@pytest.mark.parametrize("which", ["synthetic", "folder"])
def test_accuracy_equals_the_last_epoch_record(which, synthetic_run, request):
    run = synthetic_run if which == "synthetic" else request.getfixturevalue("folder_run")[0]
    ev = evaluate_run(run, use_cache=False)
    last = epochs_of(run)[-1]
    assert ev["epoch"] == last["epoch"] and ev["step"] == last["step"]
    assert ev["accuracy"] == pytest.approx(last["test_acc"], abs=1e-9)
    assert ev["loss"] == pytest.approx(last["test_loss"], rel=1e-4)
    assert ev["images"] == sum(r["support"] for r in ev["per_class"])


def test_folder_predictions_name_their_files_relative_to_the_data_root(folder_run):
    run, root = folder_run
    ev = evaluate_run(run)
    assert ev["images"] == 60
    for row in ev["predictions"]:
        path = root / row["path"]
        assert path.is_file() and row["path"].startswith("test/")
        assert path.parent.name == ev["classes"][row["label"]]  # the file's class folder is its label


@pytest.mark.parametrize("which", ["synthetic", "folder"])
def test_width_use_rows_match_the_layer_table(which, synthetic_run, request):
    run = synthetic_run if which == "synthetic" else request.getfixturevalue("folder_run")[0]
    ev = evaluate_run(run)
    config = run.read_config()
    table = layer_table(config.model, ev["image_shape"][1])
    relus = table[table["kind"] == "relu"]
    assert [r["layer"] for r in ev["width_use"]] == relus["layer"].tolist()
    assert [r["channels"] for r in ev["width_use"]] == relus["out_channels"].tolist()
    assert [r["group"] for r in ev["width_use"]] == relus["group"].tolist()
    assert ev["width_use"][0]["layer"] == "group1.0.relu1" and ev["width_use"][-1]["layer"] == "head.relu"
    for row in ev["width_use"]:
        assert 0 <= row["effective_width"] <= row["channels"] + 1e-6
    groups = {g["group"]: g for g in ev["width_groups"]}
    assert groups["group 3"]["channels"] == int(relus[relus["group"] == "group 3"]["out_channels"].sum())


def test_a_zeroed_channel_is_reported_dead(synthetic_run):
    network, data = load_network(synthetic_run)
    with torch.no_grad():
        # BN weight and bias 0 for channel 5 before group2.0.relu2: its ReLU outputs exactly 0 everywhere.
        bn = network.model.group2[0].bn2
        bn.weight[5] = 0.0
        bn.bias[5] = 0.0
        # And a channel BN pushes far below zero before head.relu.
        network.model.head.bn.weight[7] = 0.0
        network.model.head.bn.bias[7] = -5.0
    ev = evaluate_network(network, data, "test", "none", torch.device("cpu"))
    rows = {r["layer"]: r for r in ev["width_use"]}
    assert 5 in rows["group2.0.relu2"]["dead_indices"]
    assert 7 in rows["head.relu"]["dead_indices"]
    assert rows["group2.0.relu2"]["dead_channels"] >= 1 and rows["group2.0.relu2"]["active_fraction"] < 1.0
    healthy = {r["layer"]: r for r in evaluate_run(synthetic_run)["width_use"]}
    assert 5 not in healthy["group2.0.relu2"]["dead_indices"]  # the zeroing, not the training, killed it
    assert rows["group2.0.relu2"]["effective_width"] < healthy["group2.0.relu2"]["effective_width"]


def test_a_model_forced_to_one_class_raises_the_collapsed_finding(synthetic_run):
    network, data = load_network(synthetic_run)
    with torch.no_grad():
        network.model.head.fc.weight.zero_()
        network.model.head.fc.bias.copy_(torch.nn.functional.one_hot(torch.tensor(3), network.config.model.num_classes).float() * 10)
    ev = evaluate_network(network, data, "test", "none", torch.device("cpu"))
    assert {p["pred"] for p in ev["predictions"]} == {3}
    finding = check_collapsed(ev)
    assert finding is not None and finding.rule == "predictions-collapsed"
    assert "normalisation" in finding.advice and network.classes[3] in finding.message
    assert check_collapsed(evaluate_run(synthetic_run)) is None  # the trained model spreads its predictions


def test_flip_tta_reports_both_accuracies(synthetic_run):
    plain = evaluate_run(synthetic_run)
    tta = evaluate_run(synthetic_run, tta="flip", use_cache=False)
    assert tta["accuracy"] == plain["accuracy"]
    network, data = load_network(synthetic_run)
    x = data.test_images.float() / 255
    module = network.normalized()
    with torch.no_grad():
        averaged = (module(x) + module(x.flip(3))) / 2
    expected = (averaged.argmax(1) == data.test_labels).float().mean().item()
    assert tta["tta_accuracy"] == pytest.approx(expected, abs=1.5 / len(data.test_labels))


def test_the_cache_is_keyed_by_the_checkpoint_step(synthetic_run):
    first = evaluate_run(synthetic_run, use_cache=False)
    assert evaluate_run(synthetic_run)["cached"] is True
    path = cache_path(synthetic_run)
    stale = json.loads(path.read_text())
    stale["step"] = first["step"] - 1
    stale["accuracy"] = -1.0
    path.write_text(json.dumps(stale))
    again = evaluate_run(synthetic_run)
    assert again["cached"] is False and again["accuracy"] == first["accuracy"]
    assert json.loads(path.read_text())["step"] == first["step"]


def _snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.iterdir() if p.is_file()}


def test_a_training_run_is_read_without_touching_its_lock_or_files(tmp_path):
    run = trained_run(tmp_path, "live")
    run.write_status(RUNNING, "training")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from wrn_core.store import Run; r = Run(sys.argv[1]); r.acquire(); print('held', flush=True); time.sleep(120)"
    ), str(run.path)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(run.path)
        out = subprocess.run([sys.executable, "-m", "wrn_core", "evaluate", "live", "--runs-dir", str(tmp_path),
                              "--format", "json", "--device", "cpu"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert out.returncode == 0, out.stderr
        ev = json.loads(out.stdout)
        assert "epoch 2" in ev["note"] and "running" in ev["note"]
        after = _snapshot(run.path)
        assert {k: v for k, v in after.items() if not k.startswith("evaluation-")} == before
        assert set(after) - set(before) == {"evaluation-test-none.json"}
        assert run.owner() is not None and run.owner().pid == holder.pid  # still the holder's
    finally:
        holder.kill()
        holder.wait()


def test_evaluate_json_has_the_documented_fields(synthetic_run, capsys):
    assert main(["evaluate", "synthetic", "--runs-dir", str(synthetic_run.path.parent), "--format", "json",
                 "--predictions", "--device", "cpu"]) == 0
    ev = json.loads(capsys.readouterr().out)
    for key in ("run", "epoch", "split", "images", "accuracy", "loss", "classes", "confusion", "per_class", "ece",
                "top_confusions", "predictions", "width_use", "width_groups", "findings"):
        assert key in ev
    assert set(ev["predictions"][0]) == {"index", "label", "pred", "confidence"}
    assert set(ev["per_class"][0]) == {"class", "precision", "recall", "f1", "support"}
    assert {"group", "channels", "dead_channels", "active_fraction", "effective_width"} <= set(ev["width_use"][0])
    assert main(["evaluate", "synthetic", "--runs-dir", str(synthetic_run.path.parent), "--format", "json"]) == 0
    assert "predictions" not in json.loads(capsys.readouterr().out)


def test_evaluate_table_on_the_train_split_with_flip_tta(synthetic_run, capsys):
    """`evaluate NAME --split train --tta flip` in its default table format: the training images, both
    accuracies as an independent pass over them gives, per class, width use, and its own cache file."""
    assert main(["evaluate", "synthetic", "--runs-dir", str(synthetic_run.path.parent), "--split", "train", "--tta", "flip",
                 "--device", "cpu", "--no-cache"]) == 0
    lines = capsys.readouterr().out.splitlines()
    network, data = load_network(synthetic_run)
    x, labels = data.train_images.float() / 255, data.train_labels
    module = network.normalized()
    with torch.no_grad():
        plain, flipped = module(x), module(x.flip(3))
    accuracy = (plain.argmax(1) == labels).float().mean().item()
    tta = ((plain + flipped).argmax(1) == labels).float().mean().item()
    assert lines[0] == f"synthetic: epoch 2, {len(labels)} train images"
    # Printed in percent to 0.01.
    assert lines[1].startswith("accuracy ") and float(lines[1].split()[1].rstrip("%")) == pytest.approx(100 * accuracy, abs=0.006)
    assert lines[2].startswith("with flip TTA: accuracy ")
    assert float(lines[2].split()[4].rstrip("%")) == pytest.approx(100 * tta, abs=0.006)
    header = lines.index(f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    supports = [int(line.split()[-1]) for line in lines[header + 1: header + 1 + len(network.classes)]]
    assert supports == torch.bincount(labels, minlength=len(network.classes)).tolist()
    width = [line.split()[0] for line in lines[lines.index(next(l for l in lines if l.startswith("width use"))) + 1:] if line]
    assert width[0] == "group1.0.relu1" and "head.relu" in width
    assert (synthetic_run.path / "evaluation-train-flip.json").exists()


def _one_line_error(argv: list[str], capsys) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


def test_a_run_without_a_checkpoint_is_one_line_and_changes_nothing(tmp_path, capsys):
    from tiny_runs import tiny_config
    run = RunStore(tmp_path).create(tiny_config(), "fresh")
    before = _snapshot(run.path)
    assert "no checkpoint yet" in _one_line_error(["evaluate", "fresh", "--runs-dir", str(tmp_path)], capsys)
    assert _snapshot(run.path) == before


@pytest.mark.parametrize("damage", ["checkpoint", "config"])
def test_a_corrupt_checkpoint_or_config_is_one_line_and_changes_nothing(damage, tmp_path, capsys):
    run = trained_run(tmp_path, "broken", epochs=1)
    target = run.checkpoint_path if damage == "checkpoint" else run.config_path
    target.write_bytes(b"not what it should be")
    before = _snapshot(run.path)
    err = _one_line_error(["evaluate", "broken", "--runs-dir", str(tmp_path), "--no-cache"], capsys)
    assert ("checkpoint.pt" if damage == "checkpoint" else "config.json") in err
    assert _snapshot(run.path) == before


def test_a_folder_dataset_whose_files_moved_is_one_line(tmp_path, tmp_path_factory, capsys):
    root = cifar_subset_folder(cifar_jpeg_root(tmp_path_factory), tmp_path / "images", 4, 2)
    run = trained_run(tmp_path / "runs", "moved", dataset="folder", data_dir=str(root), epochs=1, batch_size=8)
    root.rename(tmp_path / "elsewhere")
    before = _snapshot(run.path)
    err = _one_line_error(["evaluate", "moved", "--runs-dir", str(tmp_path / "runs")], capsys)
    assert "does not exist" in err
    assert _snapshot(run.path) == before
