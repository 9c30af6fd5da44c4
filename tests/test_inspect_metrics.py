"""Tests for the pure parts of inspect: the metrics on hand-made predictions, the collapse rule, the mistakes
table, and decoding uploads (formats, sizes, one-line errors)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from wrn_core.analysis.checkpoint_health import check_collapsed, mistakes
from wrn_core.inspect import MAX_UPLOAD_BYTES, UploadError, decode_image
from wrn_core.inspect.metrics import expected_calibration_error, reliability, summarise, top_confusions

CLASSES = ["a", "b", "c"]


def test_summary_of_hand_made_predictions():
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    confidence = np.array([0.9, 0.6, 1.0, 0.8, 0.4, 0.7])
    out = summarise(labels, preds, confidence, CLASSES)
    assert out["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = out["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (0.5, 0.5, 2)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0 and b["f1"] == pytest.approx(0.8)
    assert out["top_confusions"] == [{"true": "a", "pred": "b", "count": 1}, {"true": "c", "pred": "a", "count": 1}]
    bins = out["reliability"]
    assert len(bins) == 15 and bins[-1]["images"] == 1 and bins[-1]["accuracy"] == 1.0  # confidence 1.0: the last bin
    # Each image alone in its bin: ECE = mean |correct - confidence|.
    assert out["ece"] == pytest.approx(np.mean(np.abs((labels == preds) - confidence)))


def test_a_perfectly_calibrated_bin_has_no_error_and_no_mistakes_no_confusions():
    bins = reliability(np.array([0.75, 0.75, 0.75, 0.75]), np.array([1, 1, 1, 0]))
    assert expected_calibration_error(bins) == pytest.approx(0.0)
    assert top_confusions(np.eye(3, dtype=int) * 4, CLASSES) == []


def _evaluation(confusion, split="test"):
    return {"confusion": confusion, "classes": [f"k{i}" for i in range(len(confusion))], "split": split}


def test_the_collapse_rule_needs_a_balanced_split_of_three_or_more_classes():
    collapsed = [[10, 0, 0], [8, 2, 0], [6, 0, 4]]  # 24 of 30 predicted k0
    finding = check_collapsed(_evaluation(collapsed))
    assert finding is not None and finding.severity == "error" and "80%" in finding.message and "'k0'" in finding.message
    assert check_collapsed(_evaluation([[10, 0, 0], [5, 5, 0], [5, 0, 5]])) is not None  # 20/30 > half
    assert check_collapsed(_evaluation([[10, 0, 0], [5, 5, 0], [0, 0, 10]])) is None  # exactly half is not "more than"
    assert check_collapsed(_evaluation([[10, 0], [9, 1]])) is None  # two classes
    assert check_collapsed(_evaluation([[40, 0, 0], [2, 0, 0], [2, 0, 0]])) is None  # unbalanced: k0 is most images


def test_mistakes_are_most_confident_first_and_filter_by_class():
    evaluation = {"classes": CLASSES, "predictions": [
        {"index": 0, "label": 0, "pred": 1, "confidence": 0.3},
        {"index": 1, "label": 0, "pred": 0, "confidence": 0.99},
        {"index": 2, "label": 2, "pred": 1, "confidence": 0.8},
        {"index": 3, "label": 0, "pred": 2, "confidence": 0.6},
    ]}
    assert mistakes(evaluation)["index"].tolist() == [2, 3, 0]
    assert mistakes(evaluation, true_class="a")["index"].tolist() == [3, 0]
    assert mistakes(evaluation, pred_class="b")["index"].tolist() == [2, 0]
    assert mistakes(evaluation, true_class="a", pred_class="c")[["true", "predicted"]].values.tolist() == [["a", "c"]]


def _encoded(mode: str, fmt: str, size=(50, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=128 if mode == "L" else (10, 20, 30, 40)[: len(mode)]).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("mode,fmt", [("RGB", "PNG"), ("RGBA", "PNG"), ("L", "PNG"), ("RGB", "JPEG"), ("L", "JPEG")])
def test_png_and_jpeg_become_rgb_at_the_run_size(mode, fmt):
    image = decode_image(_encoded(mode, fmt), (32, 24))
    assert tuple(image.shape) == (3, 32, 24) and str(image.dtype) == "torch.uint8"


@pytest.mark.parametrize("data,message", [
    (b"", "x.png is empty"),
    (b"hello, not an image", "x.png is not a readable PNG or JPEG image"),
    (_encoded("RGB", "GIF"), "x.png is GIF, not a PNG or JPEG image"),
    (b"\x89PNG" + b"\0" * (MAX_UPLOAD_BYTES + 1), "the limit is 20 MB"),
])
def test_bad_uploads_are_one_line(data, message):
    with pytest.raises(UploadError, match=message) as caught:
        decode_image(data, (32, 32), "x.png")
    assert "\n" not in str(caught.value)
