"""wrn_core.analysis.importance: a random forest ranks the setting that drives accuracy, and says when it cannot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wrn_core.analysis import AnalysisError, ImportanceError, importance_frame, parameter_importance, runs_frame
from wrn_core.errors import DataError

from metric_records import summary


def made_up(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Runs whose best accuracy is 5 k plus small noise; N and lr are random, dropout always 0.3."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "widen_factor": rng.integers(1, 5, n), "blocks": rng.integers(1, 4, n),
        "lr": rng.choice([0.01, 0.05, 0.1], n), "dropout": 0.3, "status": "finished",
    })
    frame["best_test_acc"] = 5.0 * frame["widen_factor"] + rng.normal(0.0, 0.1, n)
    return frame


def test_the_parameter_that_drives_the_target_comes_first_and_importances_sum_to_one():
    importance = parameter_importance(made_up(), ["blocks", "lr", "widen_factor"])
    assert list(importance)[0] == "widen_factor" and importance["widen_factor"] > 0.9
    assert sum(importance.values()) == pytest.approx(1.0)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    assert parameter_importance(made_up(), ["blocks", "lr", "widen_factor"]) == importance  # fixed random_state


def test_the_frame_has_correlations_and_a_constant_parameter_noted():
    table = importance_frame(made_up(), ["dropout", "widen_factor", "blocks", "lr"])
    assert list(table.columns) == ["param", "importance", "correlation", "note"]
    assert list(table["param"])[0] == "widen_factor" and list(table["param"])[-1] == "dropout"
    dropout = table.set_index("param").loc["dropout"]
    assert math.isnan(dropout["importance"]) and dropout["note"] == "never varies (always 0.3)"
    k = table.set_index("param").loc["widen_factor"]
    assert k["correlation"] > 0.9 and k["note"] == ""  # Spearman: accuracy rises with k
    assert table["importance"].sum() == pytest.approx(1.0)  # NaN skipped
    assert "dropout" not in parameter_importance(made_up(), ["dropout", "widen_factor", "blocks"])


def test_a_categorical_parameter_is_one_hot_and_summed_back():
    frame = made_up(60, seed=3)
    frame["optimizer"] = np.random.default_rng(4).choice(["sgd-nesterov", "adam", "adamw"], len(frame))
    frame["best_test_acc"] = np.where(frame["optimizer"] == "adam", 80.0, 60.0) + np.random.default_rng(5).normal(0, 0.1, len(frame))
    table = importance_frame(frame, ["widen_factor", "optimizer", "blocks"]).set_index("param")
    assert list(table.index) == ["optimizer", "widen_factor", "blocks"]  # one row per param, not per category
    assert table.loc["optimizer", "importance"] > 0.9 and math.isnan(table.loc["optimizer", "correlation"])
    assert table["importance"].sum() == pytest.approx(1.0)


def test_too_few_finished_runs_or_nothing_varying_is_one_line():
    frame = made_up(6)
    frame.loc[[0, 1, 2], "status"] = "running"
    with pytest.raises(ImportanceError, match="^parameter importance needs at least 4 finished runs; 3 have finished$"):
        parameter_importance(frame, ["widen_factor", "blocks"])
    frame.loc[0, "status"] = "finished"
    frame.loc[0, "best_test_acc"] = float("nan")  # finished without a test accuracy does not count either
    with pytest.raises(ImportanceError, match="3 have finished"):
        parameter_importance(frame, ["widen_factor"])
    with pytest.raises(ImportanceError, match=r"^no parameter varies over the 40 finished runs \(dropout always 0.3\)$"):
        parameter_importance(made_up(), ["dropout"])
    flat = made_up().assign(best_test_acc=0.5)
    with pytest.raises(ImportanceError, match="never varies"):
        parameter_importance(flat, ["widen_factor"])
    with pytest.raises(ImportanceError, match="unknown parameter 'colour'"):
        parameter_importance(made_up(), ["colour"])
    assert issubclass(ImportanceError, AnalysisError) and issubclass(ImportanceError, DataError)  # CLI: one line, exit 2


def test_exactly_four_finished_runs_answer_on_a_runs_frame():
    frame = runs_frame([
        summary(f"r{n}{k}", depth=6 * n + 4, widen_factor=k, best_test_acc=0.3 + 0.1 * k + 0.01 * n,
                final_test_acc=0.2 + 0.1 * k)
        for n in (1, 2) for k in (1, 2)
    ])
    importance = parameter_importance(frame, ["blocks", "widen_factor"])  # runs_frame's 'best test acc (%)'
    assert set(importance) == {"blocks", "widen_factor"} and importance["widen_factor"] > importance["blocks"]
    assert sum(importance.values()) == pytest.approx(1.0)
    final = importance_frame(frame, ["blocks", "widen_factor", "optimizer"], target="final_test_acc")
    assert final.set_index("param").loc["optimizer", "note"] == "never varies (always adam)"


def test_six_runs_that_differ_in_training_set_size_blame_the_size_not_the_epochs(tmp_path):
    """The case a user met: 6 runs on 500 … 5,000 synthetic images, 2 or 3 epochs. Accuracy follows the data size;
    the epochs alternate. With only the old fixed candidates (no data sizes) the forest blamed planned_epochs."""
    from wrn_core.analysis import varying_settings
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    store = RunStore(tmp_path / "runs")
    sizes_epochs_acc = [(500, 2, 0.29), (1000, 3, 0.42), (2000, 2, 0.46), (3000, 3, 0.58), (4000, 2, 0.57), (5000, 3, 0.67)]
    for size, epochs, acc in sizes_epochs_acc:
        config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=size, epochs=epochs, device="cpu")
        run = store.create(config, f"data-{size}")
        run.write_status("finished", "finished", epoch=epochs, best_test_acc=acc, final_test_acc=acc)
    frame = runs_frame(store.summaries(), settings=True)
    params = varying_settings(frame)
    assert params == ["planned_epochs", "synthetic_train"]  # every setting that differs, the data size included
    table = importance_frame(frame, params).set_index("param")
    assert list(table.index)[0] == "synthetic_train" and table.loc["synthetic_train", "importance"] > 0.8
    assert table.loc["synthetic_train", "correlation"] > 0.9
    assert table.loc["planned_epochs", "importance"] < 0.2


def test_every_varying_config_field_is_a_candidate_and_the_rest_are_not():
    from wrn_core.analysis import varying_settings

    configs = [{"model": {"depth": 10, "widen_factor": 1, "dropout": 0.0}, "optimizer": "sgd", "dataset": "cifar10",
                "subset_train": subset, "schedule": schedule, "augment": augment, "log_every": log_every, "epochs": 2}
               for subset, schedule, augment, log_every in [(None, "step", True, 10), (500, "step", False, 20),
                                                            (1000, "cosine", True, 10)]]
    frame = runs_frame([summary(f"r{i}", config=c, dataset="cifar10") for i, c in enumerate(configs)], settings=True)
    # log_every cannot change a result (when train points are written): never a candidate; the missing subset
    # (all images) counts as a value of its own.
    assert varying_settings(frame) == ["subset_train", "schedule", "augment"]
    assert frame["subset_train"].dtype == "Int64" and frame["augment"].tolist() == [True, False, True]
