"""Metric records and run summaries shaped like the engine's, shared by the analysis and plot tests."""

from __future__ import annotations

from wrn_core.store import RunSummary


def step(n: int, epoch: float, loss: float, acc: float, time: float | None = None) -> dict:
    return {
        "kind": "step",
        "step": n,
        "epoch": epoch,
        "images_seen": 32 * n,
        "time": time if time is not None else 0.5 * n,
        "train_loss": loss,
        "train_acc": acc,
        "lr": 0.1,
    }


def epoch(n: int, steps: int, test_acc: float, test_loss: float = 1.0) -> dict:
    return {
        "kind": "epoch",
        "epoch": n,
        "step": steps,
        "images_seen": 32 * steps,
        "time": 0.5 * steps,
        "train_loss": 1.5 / n,
        "train_acc": 0.3 * n,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "lr": 0.1,
        "epoch_seconds": 2.0,
        "images_per_s": 64.0,
        "peak_mem_mb": None,
    }


RECORDS = [
    step(2, 0.5, 2.0, 0.2),
    step(4, 1.0, 1.8, 0.3),
    epoch(1, 4, 0.25, 1.9),
    {"kind": "event", "step": 4, "epoch": 1.0, "time": 2.0, "event": "compile", "seconds": 1.5, "message": "compiled"},
    step(6, 1.5, 1.6, 0.4),
    step(8, 2.0, 1.4, 0.5),
    epoch(2, 8, 0.45, 1.5),
]


def summary(name: str, **changes) -> RunSummary:
    fields = dict(
        name=name,
        status="finished",
        message="",
        model_name="WRN-10-1",
        depth=10,
        widen_factor=1,
        optimizer="adam",
        dataset="synthetic",
        epoch=2,
        epochs=3,
        best_test_acc=0.5,
        final_test_acc=0.45,
        params=77850,
        duration_s=12.34,
        created_at=1_700_000_000.0,
        device="cpu",
    )
    fields.update(changes)
    return RunSummary(**fields)
