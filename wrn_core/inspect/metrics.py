"""Classification figures from predictions: confusion matrix, per-class precision/recall/F1, calibration (numpy only)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

ECE_BINS = 15  # equal-width confidence bins over [0, 1], as in Guo et al. (2017)
TOP_CONFUSIONS = 10  # off-diagonal cells listed, largest first


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: rows are the true class, columns the predicted class."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(preds, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """One row per class: precision, recall and F1 (0 where undefined) and support (true images)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    support = confusion.sum(axis=1)
    rows = []
    for k, name in enumerate(classes):
        precision = tp[k] / predicted[k] if predicted[k] else 0.0
        recall = tp[k] / support[k] if support[k] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "support": int(support[k])})
    return rows


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins: lower/upper edge, images, mean confidence and accuracy (None when empty).

    A confidence of exactly 1.0 falls in the last bin; bin b holds (b/bins, (b+1)/bins].
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        member = index == b
        count = int(member.sum())
        rows.append({
            "lower": b / bins, "upper": (b + 1) / bins, "images": count,
            "confidence": float(confidence[member].mean()) if count else None,
            "accuracy": float(correct[member].mean()) if count else None,
        })
    return rows


def expected_calibration_error(bins: list[dict[str, Any]]) -> float:
    """Σ_b (n_b / n) |accuracy_b - confidence_b| over the reliability bins."""
    total = sum(b["images"] for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b["images"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["images"]))


def top_confusions(confusion: np.ndarray, classes: Sequence[str], limit: int = TOP_CONFUSIONS) -> list[dict[str, Any]]:
    """The largest off-diagonal cells: true class, predicted class, count (largest first, ties by position)."""
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    rows = []
    for flat in order:
        t, p = divmod(int(flat), confusion.shape[1])
        if off[t, p] == 0:
            break
        rows.append({"true": classes[t], "pred": classes[p], "count": int(off[t, p])})
    return rows


def summarise(labels: np.ndarray, preds: np.ndarray, confidence: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Everything the evaluation reports that follows from the predictions alone."""
    confusion = confusion_matrix(labels, preds, len(classes))
    bins = reliability(confidence, preds == labels)
    return {
        "confusion": confusion.tolist(),
        "per_class": per_class(confusion, classes),
        "reliability": bins,
        "ece": expected_calibration_error(bins),
        "top_confusions": top_confusions(confusion, classes),
    }
