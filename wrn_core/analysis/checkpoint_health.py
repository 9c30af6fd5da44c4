"""What an evaluation of a checkpoint (wrn_core.inspect) shows: health findings (predictions collapsed onto one class) and its most confident mistakes."""

from __future__ import annotations

from typing import Any, Mapping

from wrn_core.analysis.health import Finding

# Collapsed: one class takes more than half of all predictions ...
COLLAPSE_SHARE = 0.5
# ... on a balanced split: the smallest class has at least half the images of the largest ...
BALANCED_RATIO = 0.5
# ... with at least 3 classes (with 2, one class always takes half).
COLLAPSE_MIN_CLASSES = 3


def check_collapsed(evaluation: Mapping[str, Any]) -> Finding | None:
    """The predictions-collapsed finding when one class takes > 50% of the predictions of a balanced split."""
    confusion = evaluation.get("confusion") or []
    classes = list(evaluation.get("classes") or [])
    if len(confusion) < COLLAPSE_MIN_CLASSES or len(classes) != len(confusion):
        return None
    support = [sum(row) for row in confusion]
    predicted = [sum(column) for column in zip(*confusion)]
    total = sum(support)
    if total == 0 or min(support) < BALANCED_RATIO * max(support):
        return None
    top = max(range(len(predicted)), key=predicted.__getitem__)
    share = predicted[top] / total
    if share <= COLLAPSE_SHARE:
        return None
    return Finding(
        rule="predictions-collapsed",
        severity="error",
        message=f"{share:.0%} of the {total:,} {evaluation.get('split', 'test')} images are predicted {classes[top]!r}",
        advice="look at train/eval mode, normalisation and labels",
    )


def evaluation_findings(evaluation: Mapping[str, Any]) -> list[Finding]:
    """Every evaluation rule's finding, most severe first (one rule today)."""
    found = check_collapsed(evaluation)
    return [found] if found is not None else []


def mistakes(evaluation: Mapping[str, Any], true_class: str | None = None, pred_class: str | None = None):
    """The misclassified images as a DataFrame (index, true, pred, confidence[, path]), most confident first,
    optionally only one true and/or one predicted class."""
    import pandas as pd

    classes = list(evaluation["classes"])
    rows = [p for p in evaluation.get("predictions") or [] if p["label"] != p["pred"]]
    frame = pd.DataFrame(rows, columns=["index", "label", "pred", "confidence"] + (["path"] if rows and "path" in rows[0] else []))
    frame.insert(1, "true", [classes[k] for k in frame["label"]])
    frame.insert(2, "predicted", [classes[k] for k in frame["pred"]])
    if true_class is not None:
        frame = frame[frame["true"] == true_class]
    if pred_class is not None:
        frame = frame[frame["predicted"] == pred_class]
    return frame.drop(columns=["label", "pred"]).sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)
