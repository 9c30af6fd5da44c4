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
