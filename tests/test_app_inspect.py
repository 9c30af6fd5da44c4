"""The Inspect page under streamlit.testing.v1.AppTest: headline figures, views, uploads, exports, one-line errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from harness.apptest import APP, no_exception
from inspect_runs import trained_run
from page_downloads import spy_downloads

from wrn_core.config import WRNConfig
from wrn_core.inspect import evaluate_run
from wrn_core.store import RunStore

PAGE = "../pages/5_inspect.py"
TIMEOUT = 120  # seconds per script run: the first evaluates a checkpoint and imports torch


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs: k = 1 and, newest, k = 2."""
    root = tmp_path_factory.mktemp("runs")
    trained_run(root, "narrow")
    trained_run(root, "wide", model=WRNConfig(depth=10, widen_factor=2))
    return root


@pytest.fixture(autouse=True)
def _isolated(runs, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("WRN_RUNS_DIR", str(runs))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def shown_pct(fraction: float) -> str:
    from dashboard.formatting import fmt_pct

    return fmt_pct(fraction)


def open_inspect() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    return at.switch_page(PAGE).run()


def view(at: AppTest, name: str) -> AppTest:
    at.segmented_control(key="inspect_view").set_value(name)
    return at.run()


def png(color=(200, 30, 30), size=(40, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), color, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_headline_defaults_to_the_newest_run_and_shows_its_figures(runs):
    at = open_inspect()
    no_exception(at)
    assert at.selectbox(key="inspect_run").value == "wide"
    ev = evaluate_run(RunStore(runs).get("wide"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["test accuracy"] == shown_pct(ev["accuracy"])
    assert metrics["epoch"] == "2" and metrics["ECE"] == f"{ev['ece']:.3f}"
    heatmap = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert heatmap["type"] == "heatmap" and heatmap["x"] == ev["classes"] and heatmap["y"] == ev["classes"]
    assert len(at.table) == 1  # the top confusions


def test_normalised_confusion_and_tta(runs):
    at = open_inspect()
    at.toggle(key="inspect_normalise").set_value(True).run()
    rows = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    assert all(abs(sum(row) - 1) < 1e-6 for row in rows)
    at.toggle(key="inspect_tta").set_value(True).run()
    no_exception(at)
    tta = evaluate_run(RunStore(runs).get("wide"), tta="flip")
    assert {m.label: m.value for m in at.metric}["with flip TTA"] == shown_pct(tta["tta_accuracy"])
    assert (runs / "wide" / "evaluation-test-flip.json").is_file()


def test_mistakes_gallery_filters_by_class_and_asks_about_one(runs):
    at = view(open_inspect(), "Mistakes")
    no_exception(at)
    ev = evaluate_run(RunStore(runs).get("wide"))
    wrong = [p for p in ev["predictions"] if p["label"] != p["pred"]]
    assert len(at.image) == min(len(wrong), 24)  # the gallery: the most confident mistakes
    target = ev["classes"][wrong[0]["label"]]
    at.selectbox(key="inspect_true").set_value(target).run()
    expected = sum(1 for p in wrong if ev["classes"][p["label"]] == target)
    assert any(f"{expected:,} mistakes" in c.value for c in at.caption)
    assert len(at.image) == min(expected, 24)
    picked = [int(option.lstrip("#")) for option in at.selectbox(key="inspect_pick").options]
    assert picked and all(ev["predictions"][i]["label"] == ev["classes"].index(target) for i in picked)
    confidences = [ev["predictions"][i]["confidence"] for i in picked]
    assert confidences == sorted(confidences, reverse=True)  # most confident first
    assert len(at.table[-1].value) == 5  # the picked image's top 5


def test_calibration_and_width_use_beside_a_second_run():
    at = view(open_inspect(), "Calibration")
    no_exception(at)
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert bars[0]["type"] == "bar" and bars[1]["name"] == "perfectly calibrated"
    at = view(at, "Width use")
    at.selectbox(key="inspect_other").set_value("narrow").run()
    no_exception(at)
    traces = {t.get("name", ""): t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    assert "wide effective width" in traces and "narrow effective width" in traces
    assert "wide" in traces and "narrow" in traces  # the allocated widths, as on the Architecture page
    for label in ("wide", "narrow"):  # each ReLU's use drawn where its allocated width is, as the page shows it
        allocated = {text.split("<br>")[0]: x for text, x in zip(traces[label]["text"], traces[label]["x"])}
        effective = traces[f"{label} effective width"]
        assert len(effective["x"]) == 7  # WRN-10-k: 2 ReLUs per group and the head's
        assert [allocated[c[0]] for c in effective["customdata"]] == effective["x"]


def test_ask_the_model_gives_the_top_5_and_one_line_for_bad_uploads():
    at = view(open_inspect(), "Ask the model")
    uploader = at.file_uploader(key="inspect_upload")
    uploader.set_value([("red.png", png(), "image/png"), ("fake.png", b"not an image", "image/png"),
                        ("empty.png", b"", "image/png")])
    at.run()
    no_exception(at)
    assert len(at.table) == 1 and len(at.table[0].value) == 5
    errors = [e.value for e in at.error]
    assert any("fake.png is not a readable PNG or JPEG image" in e for e in errors)
    assert any("empty.png is empty" in e for e in errors)


def test_export_offers_the_three_formats():
    at = view(open_inspect(), "Export")
    no_exception(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download onnx", "Download safetensors", "Download pt2"]


def test_a_corrupt_checkpoint_is_one_line(tmp_path, monkeypatch):
    run = trained_run(tmp_path, "broken", epochs=1)
    run.checkpoint_path.write_bytes(b"garbage")
    monkeypatch.setenv("WRN_RUNS_DIR", str(tmp_path))
    at = open_inspect()
    no_exception(at)
    assert len(at.error) == 1 and "checkpoint.pt" in at.error[0].value


def test_no_checkpoint_yet_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("WRN_RUNS_DIR", str(tmp_path))
    at = open_inspect()
    no_exception(at)
    assert any("No run has a checkpoint yet" in i.value for i in at.info)


def test_the_predicted_class_filter_keeps_only_mistakes_predicted_as_it(runs):
    at = view(open_inspect(), "Mistakes")
    ev = evaluate_run(RunStore(runs).get("wide"))
    wrong = [p for p in ev["predictions"] if p["label"] != p["pred"]]
    predicted = ev["classes"][wrong[0]["pred"]]
    at.selectbox(key="inspect_pred").set_value(predicted).run()
    no_exception(at)
    expected = [p for p in wrong if ev["classes"][p["pred"]] == predicted]
    assert any(c.value.startswith(f"{len(expected):,} mistakes;") for c in at.caption)
    assert len(at.image) == min(len(expected), 24)
    picked = [int(option.lstrip("#")) for option in at.selectbox(key="inspect_pick").options]
    assert len(picked) == min(len(expected), 24) and set(picked) <= {p["index"] for p in expected}


def test_an_upload_over_20_mb_is_one_line_and_the_others_are_answered():
    at = view(open_inspect(), "Ask the model")
    big = png() + b"\0" * (20 * 1024 * 1024)  # a PNG padded past the limit
    at.file_uploader(key="inspect_upload").set_value([("big.png", big, "image/png"), ("red.png", png(), "image/png")])
    at.run()
    no_exception(at)
    assert [e.value for e in at.error] == [f"big.png is {len(big) / 1e6:.1f} MB; the limit is 20 MB"]
    assert len(at.table) == 1 and len(at.table[0].value) == 5  # red.png still gets its top 5


def test_dead_channels_are_marked_on_the_width_chart(runs, tmp_path, monkeypatch):
    """A copy of the k = 1 run with channel 5 of group2.0.bn2 zeroed (its ReLU outputs 0 everywhere): the chart
    marks that layer at its x on the allocated-width chart, with its live channels and how many are dead."""
    import shutil

    import torch

    from wrn_core.model.tables import layer_table
    from wrn_core.plots.architecture import layer_x

    shutil.copytree(runs / "narrow", tmp_path / "dead", ignore=shutil.ignore_patterns("evaluation-*", "run.lock"))
    run = RunStore(tmp_path).get("dead")
    state = torch.load(run.checkpoint_path, weights_only=False)
    state["model"]["group2.0.bn2.weight"][5] = 0.0
    state["model"]["group2.0.bn2.bias"][5] = 0.0
    torch.save(state, run.checkpoint_path)
    monkeypatch.setenv("WRN_RUNS_DIR", str(tmp_path))
    at = view(open_inspect(), "Width use")
    no_exception(at)
    traces = {t.get("name"): t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]}
    marked = traces["dead live channels (dead marked)"]
    rows = {r["layer"]: r for r in evaluate_run(run)["width_use"]}
    xs = layer_x(layer_table(run.read_config().model))  # each layer's x on the allocated-width chart
    dead = [name for name, r in rows.items() if r["dead_channels"] > 0]
    assert "group2.0.relu2" in dead
    assert marked["x"] == pytest.approx([xs[name] for name in dead])
    assert marked["y"] == [rows[name]["channels"] - rows[name]["dead_channels"] for name in dead]
    assert marked["text"] == [f"{rows[name]['dead_channels']} dead" for name in dead]


def test_the_onnx_and_pt2_downloads_are_the_runs_network(runs, monkeypatch):
    """What the Export view's buttons hand the browser: NAME.onnx that runs in onnxruntime and NAME.pt2 that
    torch.export loads, both giving the run's own logits."""
    import onnxruntime
    import torch

    from wrn_core.inspect import load_network

    offered = spy_downloads(monkeypatch)
    view(open_inspect(), "Export")
    network, _ = load_network(RunStore(runs).get("wide"))
    images = torch.rand(3, *network.image_shape)
    with torch.no_grad():
        expected = network.normalized()(images).numpy()
    data, file_name = offered["Download onnx"]
    assert file_name == "wide.onnx"
    session = onnxruntime.InferenceSession(data(), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(None, {"images": images.numpy()})[0], expected, atol=1e-4)
    data, file_name = offered["Download pt2"]
    assert file_name == "wide.pt2"
    program = torch.export.load(io.BytesIO(data()))
    with torch.no_grad():
        assert np.allclose(program.module()(images).numpy(), expected, atol=1e-4)
