"""Width records written straight into a run, for the tests of width use over training (no training needed)."""

from __future__ import annotations

from typing import Callable

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import epoch_record, width_record


def relus(k: int) -> list[tuple[str, int]]:
    """WRN-10-k's ReLUs in forward order with their channels (a block's relu1 sees the previous group's width)."""
    return [("group1.0.relu1", 16), ("group1.0.relu2", 16 * k), ("group2.0.relu1", 16 * k), ("group2.0.relu2", 32 * k),
            ("group3.0.relu1", 32 * k), ("group3.0.relu2", 64 * k), ("head.relu", 64 * k)]


def layers(k: int, fraction: Callable[[str], float], dead: Callable[[str, int], int] = lambda layer, channels: 0) -> list[dict]:
    """engine.width rows for WRN-10-k: effective width = fraction(layer) × channels, dead(layer, channels) dead."""
    return [{"layer": name, "channels": channels, "dead_channels": dead(name, channels),
             "effective_width": fraction(name) * channels} for name, channels in relus(k)]


def width_run(store: RunStore, name: str, k: int, epochs: int, fraction: Callable[[str, int], float],
              dead: Callable[[str, int, int], int] = lambda layer, channels, epoch: 0, planned: int | None = None,
              measured: Callable[[int], bool] = lambda epoch: True, status: str = "finished"):
    """A run of WRN-10-k with `epochs` epoch records and a width record at each measured epoch: effective width
    fraction(layer, epoch) × channels, dead(layer, channels, epoch) dead channels."""
    run = store.create(TrainConfig(model=WRNConfig(depth=10, widen_factor=k), device="cpu", epochs=planned or epochs), name)
    for e in range(1, epochs + 1):
        written = [epoch_record(epoch=e, step=10 * e, images_seen=320 * e, time=float(e), train_loss=1.0 / e,
                                train_acc=0.5, test_loss=1.2 / e, test_acc=0.4, lr=0.1, epoch_seconds=1.0,
                                images_per_s=320.0, peak_mem_mb=None)]
        if measured(e):
            written.append(width_record(epoch=e, step=10 * e, time=float(e), images=100, layers=layers(
                k, lambda layer, e=e: fraction(layer, e), lambda layer, channels, e=e: dead(layer, channels, e))))
        run.append_metrics(written)
    run.write_status(status, f"{status} {epochs} epochs", epoch=epochs, best_test_acc=0.4, final_test_acc=0.4,
                     epochs=planned or epochs)
    return run
