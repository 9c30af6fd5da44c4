"""wrn_core.analysis.grouping: filtering runs by fields and tags, grouped tables (seeds averaged), mean ± std curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wrn_core.analysis import GROUP_FIELDS, AnalysisError, filter_runs, group_curves, group_runs, runs_frame
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore

from metric_records import summary


def four_runs() -> pd.DataFrame:
    """k=1 with seeds 0, 1, 2 (best 50, 60, 70%) and one k=2 run (best 80%), all sgd at lr 0.1 but one."""
    return runs_frame([
        summary("a", seed=0, lr=0.1, dropout=0.0, batch_size=32, best_test_acc=0.5, final_test_acc=0.4),
        summary("b", seed=1, lr=0.1, dropout=0.0, batch_size=32, best_test_acc=0.6, final_test_acc=0.6),
        summary("c", seed=2, lr=0.1, dropout=0.0, batch_size=32, best_test_acc=0.7, final_test_acc=0.65),
        summary("d", seed=0, lr=0.05, dropout=0.0, batch_size=32, widen_factor=2, depth=16, best_test_acc=0.8,
                final_test_acc=0.8, optimizer="sgd"),
    ])


def test_runs_frame_carries_every_group_field_from_the_store(tmp_path):
    store = RunStore(tmp_path)
    config = TrainConfig(model=WRNConfig(depth=16, widen_factor=2, dropout=0.3), optimizer="adam", batch_size=64,
                         epochs=4, seed=7)
    store.create(config, "a")
    frame = runs_frame(store.summaries())
    assert set(GROUP_FIELDS) | {"seed"} <= set(frame.columns)
    row = frame.iloc[0]
    assert (row["blocks"], row["widen_factor"], row["depth"], row["dropout"]) == (2, 2, 16, 0.3)
    assert row["lr"] == pytest.approx(1e-3)  # no lr in the config: the optimizer's default it trains with
    assert (row["optimizer"], row["batch_size"], row["planned_epochs"], row["seed"]) == ("adam", 64, 4, 7)
    assert row["epochs"] == "0/4"


def test_group_runs_means_and_stds_by_hand():
    grouped = group_runs(four_runs(), ["widen_factor"])
    assert list(grouped.columns) == ["widen_factor", "n", "best_test_acc_mean", "best_test_acc_std",
                                     "final_test_acc_mean", "final_test_acc_std", "runs"]
    k1 = grouped[grouped["widen_factor"] == 1].iloc[0]
    best = [50.0, 60.0, 70.0]  # percent, like runs_frame
    assert k1["n"] == 3 and sorted(k1["runs"]) == ["a", "b", "c"]
    assert k1["best_test_acc_mean"] == pytest.approx(np.mean(best))
    assert k1["best_test_acc_std"] == pytest.approx(np.std(best, ddof=1))
    assert k1["final_test_acc_mean"] == pytest.approx(np.mean([40.0, 60.0, 65.0]))
    assert k1["final_test_acc_std"] == pytest.approx(np.std([40.0, 60.0, 65.0], ddof=1))
    k2 = grouped[grouped["widen_factor"] == 2].iloc[0]
    assert k2["n"] == 1 and k2["best_test_acc_mean"] == pytest.approx(80.0) and math.isnan(k2["best_test_acc_std"])
    two = group_runs(four_runs(), ["optimizer", "lr"])
    assert len(two) == 2 and sorted(two["n"]) == [1, 3]
    assert group_runs(four_runs(), ["k"]).equals(grouped)  # the alias
    planned = group_runs(four_runs(), ["epochs"])  # runs_frame's epochs is 'done/planned': the number planned groups
    assert list(planned.columns[:2]) == ["planned_epochs", "n"] and list(planned["n"]) == [4]


def test_group_runs_on_sweep_cells_converts_fractions_to_percent():
    cells = pd.DataFrame({"run": ["x", "y"], "blocks": [1, 1], "best_test_acc": [0.5, 0.7], "final_test_acc": [0.5, None]})
    row = group_runs(cells, ["blocks"]).iloc[0]
    assert row["best_test_acc_mean"] == pytest.approx(60.0) and row["final_test_acc_mean"] == pytest.approx(50.0)
    assert row["runs"] == ["x", "y"]


def test_seed_and_unknown_fields_are_refused_in_one_line():
    with pytest.raises(AnalysisError, match="^seed cannot be a group field: groups average over seeds$"):
        group_runs(four_runs(), ["widen_factor", "seed"])
    with pytest.raises(AnalysisError, match="unknown field 'colour'") as info:
        group_runs(four_runs(), ["colour"])
    assert "\n" not in str(info.value) and "widen_factor" in str(info.value)
    with pytest.raises(AnalysisError, match="unknown field"):
        filter_runs(four_runs(), {"colour": ["red"]})
    with pytest.raises(AnalysisError, match="lr is a number"):
        filter_runs(four_runs(), {"lr": ["fast"]})


def test_filter_by_fields_and_tags():
    frame = four_runs()
    assert sorted(filter_runs(frame, {"lr": [0.1]})["name"]) == ["a", "b", "c"]
    assert sorted(filter_runs(frame, {"lr": ["0.05", "0.1"], "seed": ["0"]})["name"]) == ["a", "d"]  # text from a CLI
    assert list(filter_runs(frame, {"optimizer": ["sgd"], "k": [2]})["name"]) == ["d"]
    assert filter_runs(frame, {"optimizer": ["sgd"], "k": [1]}).empty  # AND over fields
    assert len(filter_runs(frame, {"optimizer": []})) == 4  # nothing chosen: not filtered
    tags = {"a": ["wide", "baseline"], "b": ["wide"], "c": [], "d": ["baseline"]}
    tagged = frame.assign(tags=[tags[name] for name in frame["name"]])
    assert sorted(filter_runs(tagged, {"tag": ["wide"]})["name"]) == ["a", "b"]
    assert list(filter_runs(tagged, {"tag": ["wide", "baseline"]})["name"]) == ["a"]  # ALL the tags
    assert list(filter_runs(tagged, {"tag": "baseline", "k": [2]})["name"]) == ["d"]
    assert filter_runs(frame, {"tag": ["wide"]}).empty  # no tags column: no run has a tag


def test_group_curves_mean_and_std_against_numpy():
    rng = np.random.default_rng(1)
    values = {run: rng.random(4) for run in ("a", "b", "c", "d")}
    rows = [(run, "test_acc", "epoch", float(x), float(v)) for run, vs in values.items() for x, v in zip(range(1, 5), vs)]
    rows += [("a", "train_loss", "step", 0.5, 2.0), ("b", "train_loss", "step", 0.5, 3.0)]
    rows = [r for r in rows if not (r[0] == "c" and r[3] == 4.0)]  # c stopped after 3 epochs
    curves = pd.DataFrame(rows, columns=["run", "metric", "source", "x", "value"])
    banded = group_curves(curves, {"pair": ["a", "b"], "trio": ["a", "c", "d"], "none": ["zz"]})
    assert list(banded.columns) == ["group", "x", "test_acc_mean", "test_acc_std", "train_loss_mean", "train_loss_std", "n"]
    pair = banded[banded["group"] == "pair"].set_index("x")
    assert list(pair.index) == [0.5, 1.0, 2.0, 3.0, 4.0] and set(pair["n"]) == {2}
    stacked = np.vstack([values["a"], values["b"]])
    np.testing.assert_allclose(pair.loc[[1.0, 2.0, 3.0, 4.0], "test_acc_mean"], stacked.mean(axis=0))
    np.testing.assert_allclose(pair.loc[[1.0, 2.0, 3.0, 4.0], "test_acc_std"], stacked.std(axis=0, ddof=1))
    assert pair.loc[0.5, "train_loss_mean"] == pytest.approx(2.5) and math.isnan(pair.loc[0.5, "test_acc_mean"])
    trio = banded[banded["group"] == "trio"].set_index("x")
    assert list(trio.index) == [1.0, 2.0, 3.0]  # only the epochs every member has
    stacked = np.vstack([values[r][:3] for r in ("a", "c", "d")])
    np.testing.assert_allclose(trio["test_acc_mean"], stacked.mean(axis=0))
    np.testing.assert_allclose(trio["test_acc_std"], stacked.std(axis=0, ddof=1))
    assert trio["train_loss_mean"].isna().all()  # c and d have no train_loss: the trio has no such curve
    assert "none" not in set(banded["group"])
    assert list(dict.fromkeys(banded["group"])) == ["pair", "trio"]  # in the order asked
    single = group_curves(curves, {"one": ["a"]})
    assert single["test_acc_std"].isna().all() and set(single["n"]) == {1}
    assert group_curves(curves.iloc[0:0], {"pair": ["a"]}).empty
