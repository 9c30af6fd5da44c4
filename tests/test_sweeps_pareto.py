"""The sweep's Pareto flags against a brute-force dominance check written here, not the code's own function."""

from __future__ import annotations

import random

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import FINISHED
from wrn_core.sweeps import cells_frame, make_sweep, pareto_front, tradeoff_points

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, batch_size=32,
                   epochs=1, device="cpu")


def on_front(points: list[tuple[float, float]]) -> list[bool]:
    """(cost, accuracy) points: a point is off the front when another, different point costs no more and is no less accurate."""
    return [not any(other != point and other[0] <= point[0] and other[1] >= point[1] for other in points)
            for point in points]


def test_pareto_front_agrees_with_brute_force_on_random_points_with_ties():
    rng = random.Random(19)
    for _ in range(300):
        # Few distinct values, so equal costs, equal accuracies and duplicate points all occur.
        points = [(float(rng.randint(1, 6)), rng.randint(0, 5) / 5) for _ in range(rng.randint(1, 9))]
        assert pareto_front(points) == on_front(points), points


def test_cells_frame_flags_the_scored_cells_on_the_accuracy_params_front(tmp_path):
    store = RunStore(tmp_path)
    sweep = make_sweep("front", BASE, [1, 2], [1, 2], seeds=[0, 1])
    accuracies = [0.30, 0.35, 0.20, None, 0.50, 0.45, 0.50, 0.40]  # one cell not trained yet
    for cell, acc in zip(sweep.cells(), accuracies):
        if acc is not None:
            store.create(cell.config, cell.run).write_status(FINISHED, "done", best_test_acc=acc, final_test_acc=acc)
    frame = cells_frame(store, sweep)
    assert frame["best_test_acc"].notna().tolist() == [acc is not None for acc in accuracies]
    scored = frame[frame["best_test_acc"].notna()]
    expected = on_front(list(zip(scored["params"].astype(float), scored["best_test_acc"].astype(float))))
    assert scored["pareto"].tolist() == expected
    assert not frame.loc[frame["best_test_acc"].isna(), "pareto"].any()
    assert 0 < sum(expected) < len(expected)  # the data puts some cells on the front and some off it

    for x in ("params", "macs"):
        points = tradeoff_points(frame, x)
        assert points["pareto"].tolist() == on_front(list(zip(points["x"].astype(float), points["mean"].astype(float))))


def test_a_cell_not_finished_is_neither_on_the_front_nor_pushes_a_finished_one_off_it(tmp_path):
    from wrn_core.sweeps import cells_table

    store = RunStore(tmp_path)
    sweep = make_sweep("partial", BASE, [1], [1, 2])  # WRN-10-1 (77,850 params) and WRN-10-2 (303,706)
    small, big = sweep.cells()
    # The small model stopped after its first epoch at an accuracy above the big one's final result.
    store.create(small.config, small.run).write_status("stopped", "stopped at epoch 1", epoch=1, best_test_acc=0.6,
                                                       final_test_acc=0.6)
    store.create(big.config, big.run).write_status(FINISHED, "done", epoch=1, best_test_acc=0.4, final_test_acc=0.4)
    frame = cells_frame(store, sweep)
    assert frame["pareto"].tolist() == [False, True]  # were the stopped cell a result, WRN-10-2 would be off the front
    assert cells_table(frame)["pareto"].tolist() == [None, True]
    assert tradeoff_points(frame, "params")["label"].tolist() == ["WRN-10-2"]
