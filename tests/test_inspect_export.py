"""Tests for the exports: ONNX in onnxruntime and pt2 through torch.export.load agree with the engine's predictions,
safetensors loads into build_model, metadata travels, and bad input is one line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inspect_runs import cifar_subset_folder, trained_run
from shared_data import cifar_jpeg_root

import wrn_core.inspect.network_export as export_module
from wrn_core.cli import main
from wrn_core.config import TrainConfig
from wrn_core.inspect import ExportError, evaluate_run, export_network, load_network
from wrn_core.model import build_model

AGREEMENT = 0.99


@pytest.fixture(scope="module", params=["synthetic", "folder"])
def network(request, tmp_path_factory):
    """A trained network, its test images as float32 in [0, 1], and the engine's own predictions."""
    runs = tmp_path_factory.mktemp("runs")
    if request.param == "synthetic":
        run = trained_run(runs, "synthetic")
    else:
        root = cifar_subset_folder(cifar_jpeg_root(tmp_path_factory), tmp_path_factory.mktemp("cifar"), 8, 6)
        run = trained_run(runs, "cifar", dataset="folder", data_dir=str(root), epochs=1, batch_size=16)
    net, data = load_network(run)
    engine_preds = np.array([p["pred"] for p in evaluate_run(run)["predictions"]])
    return run, net, data.test_images.float().div(255).numpy(), engine_preds


def test_onnx_runs_in_onnxruntime_and_agrees_with_the_engine(network, tmp_path):
    import onnx
    import onnxruntime

    run, net, images, engine_preds = network
    path = export_network(net, "onnx", tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {"images": images[i : i + 7]})[0] for i in range(0, len(images), 7)])
    assert logits.shape == (len(images), len(net.classes))  # batches of 7 and the remainder: the batch is dynamic
    assert (logits.argmax(1) == engine_preds).mean() >= AGREEMENT
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["wrn_lab.classes"]) == net.classes
    assert json.loads(meta["wrn_lab.mean"]) == pytest.approx(list(net.mean))
    assert json.loads(meta["wrn_lab.config"])["model"]["widen_factor"] == net.config.model.widen_factor


def test_pt2_loads_through_torch_export_and_agrees_with_the_engine(network, tmp_path):
    run, net, images, engine_preds = network
    path = export_network(net, "pt2", tmp_path / "model.pt2")
    extra = {key: "" for key in net.metadata()}
    program = torch.export.load(str(path), extra_files=extra)
    module = program.module()
    with torch.no_grad():
        logits = torch.cat([module(torch.from_numpy(images[i : i + 5])) for i in range(0, len(images), 5)])
    assert (logits.argmax(1).numpy() == engine_preds).mean() >= AGREEMENT
    assert json.loads(extra["wrn_lab.classes"]) == net.classes
    assert json.loads(extra["wrn_lab.std"]) == pytest.approx(list(net.std))


def test_safetensors_holds_the_state_dict_build_model_loads(network, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    run, net, images, engine_preds = network
    path = export_network(net, "safetensors", tmp_path / "model.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    config = net.config.model
    model = build_model(config)
    model.load_state_dict(load_file(str(path)))
    model.eval()
    mean = torch.tensor(json.loads(meta["wrn_lab.mean"])).view(1, -1, 1, 1)
    std = torch.tensor(json.loads(meta["wrn_lab.std"])).view(1, -1, 1, 1)
    with torch.no_grad():
        preds = model((torch.from_numpy(images) - mean) / std).argmax(1).numpy()
    assert (preds == engine_preds).mean() >= AGREEMENT
    assert json.loads(meta["wrn_lab.classes"]) == net.classes


def test_export_command_writes_the_file(network, tmp_path, capsys):
    run, *_ = network
    out = tmp_path / "cli.safetensors"
    assert main(["export", run.name, "--format", "safetensors", "--out", str(out), "--runs-dir", str(run.path.parent)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["cli.safetensors"]  # no temporary file left


def test_export_writes_name_ext_in_the_current_directory_with_input_epoch_and_step(network, tmp_path, monkeypatch, capsys):
    """README: "The default file is `NAME.<ext>` in the current directory", and the metadata keys it lists."""
    from safetensors import safe_open

    run, net, *_ = network
    monkeypatch.chdir(tmp_path)
    assert main(["export", run.name, "--format", "safetensors", "--runs-dir", str(run.path.parent)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [f"{run.name}.safetensors"]
    with safe_open(str(tmp_path / f"{run.name}.safetensors"), framework="pt") as f:
        meta = f.metadata()
    last = [r for r in run.read_metrics() if r["kind"] == "epoch"][-1]  # the checkpoint is the last epoch's
    assert (meta["wrn_lab.epoch"], meta["wrn_lab.step"]) == (str(last["epoch"]), str(last["step"]))
    _, height, width = net.image_shape
    assert json.loads(meta["wrn_lab.input"]) == {"shape": ["N", 3, height, width], "dtype": "float32", "range": [0, 1],
                                                 "normalised_inside": True, "output": "logits"}
    assert meta["wrn_lab.run"] == run.name and TrainConfig.from_dict(json.loads(meta["wrn_lab.config"])) == run.read_config()


def _one_line(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_unknown_format_and_unwritable_path_are_one_line(network, tmp_path, capsys, monkeypatch):
    run, *_ = network
    runs = str(run.path.parent)
    assert "unknown export format 'tflite'" in _one_line(["export", run.name, "--format", "tflite", "--runs-dir", runs], capsys)
    missing = tmp_path / "no" / "such" / "dir" / "m.onnx"
    assert "does not exist" in _one_line(["export", run.name, "--format", "onnx", "--out", str(missing), "--runs-dir", runs], capsys)
    # Files cannot be made in /proc, even by root.
    assert "cannot write /proc/m.onnx" in _one_line(["export", run.name, "--format", "onnx", "--out", "/proc/m.onnx",
                                                     "--runs-dir", runs], capsys)
    assert "is a directory" in _one_line(["export", run.name, "--format", "onnx", "--out", str(tmp_path), "--runs-dir", runs], capsys)


def test_a_directory_without_write_permission_is_one_line_and_left_empty(network, tmp_path, capsys, monkeypatch):
    """What a user without write permission meets. Root (as CI runs) writes anywhere, so the two places that
    meet the refusal are made to meet it: the access check before any work, and the write itself."""
    run, *_ = network
    export = ["export", run.name, "--format", "pt2", "--runs-dir", str(run.path.parent)]
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def no_write_in_locked(path, mode, **kwargs):
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(os, "access", no_write_in_locked)
        err = _one_line([*export, "--out", str(locked / "m.pt2")], capsys)
    assert err == f"error: cannot write {locked / 'm.pt2'}: permission denied\n"
    assert list(locked.iterdir()) == []

    # The check passes but the write is refused (an ACL, a root-squashed NFS mount): one line, no temporary file.
    def refused(network, path):
        path.write_bytes(b"half")
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(export_module, "_write_pt2", refused)
    err = _one_line([*export, "--out", str(locked / "m.pt2")], capsys)
    assert err.startswith(f"error: cannot write {locked / 'm.pt2'} ([Errno 13] Permission denied")
    assert list(locked.iterdir()) == []


def test_missing_onnx_says_what_to_install(network, tmp_path, monkeypatch):
    run, net, *_ = network
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ExportError, match="pip install onnx"):
        export_network(net, "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
