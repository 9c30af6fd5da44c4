"""The Runs page's views under AppTest: a dash (never "None") for values not known yet, metric columns, one colour
per run in every view, each member's own curve under its group's band, the transposed comparison, importance over
every setting that varies, and a page that keeps its shape when rows are ticked."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.apptest import new_app, no_exception, open_page, plotly_specs
from test_app_runs_annotations import RUNS, TINY, V, finished_run, frame_with, ranked, values

from wrn_core.config import WRNConfig
from wrn_core.store import RunStore


@pytest.fixture
def runs(_dashboard_isolation) -> RunStore:
    """RUNS (finished; "sgd-k2" the newest of them) and, newest of all, "waiting": created, never trained."""
    store = RunStore(_dashboard_isolation)
    for name, optimizer, k, seed, acc in RUNS:
        finished_run(store, TINY.replace(optimizer=optimizer, seed=seed, model=WRNConfig(depth=10, widen_factor=k)),
                     name, acc)
    store.create(TINY.replace(seed=7), "waiting")
    return store


def runs_table(at):
    return at.dataframe[0]


def tick(at, names: list[str]):
    """Tick these runs' rows in the runs table (what a click on their checkboxes sends) and rerun."""
    listed = list(runs_table(at).value["name"])
    at.session_state[runs_table(at).key] = {"selection": {"rows": [listed.index(n) for n in names], "columns": [],
                                                          "cells": []}}
    at.run()
    no_exception(at)
    return at


def chart(at, test):
    """The first plotly spec on the page for which test(spec) holds."""
    return next(spec for spec in plotly_specs(at) if test(spec))


def curves_chart(at):
    return chart(at, lambda s: any(a.get("text") == "Train accuracy" for a in s["layout"].get("annotations", [])))


def bands_chart(at):
    return chart(at, lambda s: any("(n=" in str(t.get("name")) for t in s["data"]))


def line_colors(spec) -> dict[str, str]:
    """Trace name -> line colour of the traces that have a legend entry or are a run's own curve."""
    return {t["name"]: t["line"]["color"] for t in spec["data"] if t.get("line", {}).get("color")}


def test_values_not_known_yet_show_a_dash_never_none(runs):
    at = open_page(new_app(), "runs")
    no_exception(at)
    table = runs_table(at)
    waiting = table.value.set_index("name").loc["waiting"]
    assert waiting["best test acc (%)"] != waiting["best test acc (%)"]  # NaN: not known yet
    assert table.proto.placeholder == "—"  # what the grid draws for it, instead of "None"
    assert not [v for v in table.value.astype(str).to_numpy().ravel() if v == "None"]
    tick(at, ["waiting", "sgd-k2"])
    compared = frame_with(at, "waiting")
    assert pd.isna(compared.loc["best test acc (%)", "waiting"])  # a null cell: drawn as the placeholder
    assert compared.loc["best test acc (%)", "sgd-k2"] == "70.00"
    assert next(df for df in at.dataframe if "waiting" in df.value.columns).proto.placeholder == "—"
    at.multiselect(key=V + "group_by").set_value(["optimizer"]).run()
    assert runs_table(at).proto.placeholder == "—"


def test_metric_columns_best_min_max_or_last_chosen_per_column(runs):
    at = open_page(new_app(), "runs")
    columns = list(runs_table(at).value.columns)
    assert columns[columns.index("epochs") + 1: columns.index("epochs") + 3] == ["best test acc (%)", "final test acc (%)"]
    at.multiselect(key=V + "metric_columns").set_value(["min test loss", "best test acc (%)", "last train acc (%)"]).run()
    no_exception(at)
    table = runs_table(at).value
    columns = list(table.columns)
    assert columns[columns.index("epochs") + 1: columns.index("epochs") + 4] == [
        "min test loss", "best test acc (%)", "last train acc (%)"]  # in the order picked
    assert "final test acc (%)" not in columns
    row = table.set_index("name").loc["sgd-k2"]
    # finished_run: test loss 1.5 / epoch (min 0.75 at epoch 2), train accuracy 0.4 × epoch (last 80%).
    assert row["min test loss"] == pytest.approx(0.75) and row["last train acc (%)"] == pytest.approx(80.0)
    assert table["min test loss"].dtype == "float64"  # numbers: the grid sorts them by value
    assert table.set_index("name")["min test loss"].isna()["waiting"]
    at.multiselect(key=V + "group_by").set_value(["optimizer"]).run()
    assert at.multiselect(key=V + "metric_columns").disabled  # groups show mean ± std of best and final


def test_a_run_has_one_colour_in_the_plain_and_the_grouped_view(runs):
    at = tick(open_page(new_app(), "runs"), ["sgd-k2", "adam-k1-s1"])
    plain = line_colors(curves_chart(at))
    assert plain["sgd-k2"] != plain["adam-k1-s1"]
    at.multiselect(key=V + "group_by").set_value(["widen_factor"]).run()
    no_exception(at)
    grouped = line_colors(bands_chart(at))
    assert grouped["widen_factor=2 (n=1)"] == plain["sgd-k2"]  # a group of one run: that run's colour
    assert grouped["adam-k1-s1"] == plain["adam-k1-s1"]  # a member's own curve: its run's colour
    assert grouped["sgd-k2"] == plain["sgd-k2"]


def test_each_members_own_curve_under_its_band_toggles(runs):
    at = open_page(new_app(), "runs")
    at.multiselect(key=V + "group_by").set_value(["optimizer"]).run()
    no_exception(at)
    assert at.toggle(key=V + "band_members").value  # on by default
    spec = bands_chart(at)
    adam = {t["name"]: t for t in spec["data"] if t["name"] in ("adam-k1-s0", "adam-k1-s1")}
    s0, s1 = adam["adam-k1-s0"], adam["adam-k1-s1"]
    assert values(s0["x"]) == [1.0, 2.0] and values(s0["y"]) == pytest.approx([48.0, 60.0])  # 0.8 × 60%, then 60%
    assert values(s1["y"]) == pytest.approx([51.2, 64.0]) and s0["opacity"] < 1
    names = [t["name"] for t in spec["data"]]
    assert names.index("adam-k1-s1") < names.index("optimizer=adam (n=2)")  # drawn first: under the band and mean
    at.toggle(key=V + "band_members").set_value(False).run()
    names = [t["name"] for t in bands_chart(at)["data"]]
    assert not {"adam-k1-s0", "adam-k1-s1", "sgd-k2"} & set(names) and "optimizer=adam (n=2)" in names


def test_compare_is_one_column_per_run_and_only_what_differs_by_default(runs):
    at = tick(open_page(new_app(), "runs"), ["adam-k1-s0", "sgd-k1-s1"])
    compared = frame_with(at, "adam-k1-s0")
    assert list(compared.columns) == ["adam-k1-s0", "sgd-k1-s1"]
    assert {"best test acc (%)", "optimizer", "seed"} <= set(compared.index)
    assert compared.loc["optimizer"].tolist() == ["adam", "sgd"] and compared.loc["seed"].tolist() == ["0", "1"]
    assert compared.loc["best test acc (%)"].tolist() == ["60.00", "52.00"]
    assert "model.depth" not in compared.index and "status" not in compared.index  # the same in both
    assert at.toggle(key=V + "compare_differs").value
    at.toggle(key=V + "compare_differs").set_value(False).run()
    everything = frame_with(at, "adam-k1-s0")
    assert everything.loc["model.depth"].tolist() == ["10", "10"] and everything.loc["status"].tolist() == ["finished"] * 2


def test_importance_blames_the_training_set_size_when_that_is_what_differs(_dashboard_isolation):
    store = RunStore(_dashboard_isolation)
    for size, epochs, acc in [(500, 2, 0.29), (1000, 3, 0.42), (2000, 2, 0.46), (3000, 3, 0.58), (4000, 2, 0.57),
                              (5000, 3, 0.67)]:
        finished_run(store, TINY.replace(synthetic_train=size, epochs=epochs), f"data-{size}", acc)
    at = ranked(open_page(new_app(), "runs"))
    importance = frame_with(at, "importance")
    assert list(importance["param"]) == ["synthetic_train", "planned_epochs"]
    assert importance["importance"].iloc[0] > 0.8
    parcoords = chart(at, lambda s: s["data"] and s["data"][0].get("type") == "parcoords")
    assert [d["label"] for d in parcoords["data"][0]["dimensions"]] == ["planned_epochs", "synthetic_train",
                                                                        "best test acc (%)"]


def test_the_page_keeps_its_shape_when_rows_are_ticked(runs):
    """Ticking rows changes what the charts show, never where the elements after them sit: the browser then
    updates the curves alone, instead of re-creating every chart below an element that moved."""
    def places(at) -> dict[str, tuple]:
        found = {}

        def walk(node, path):
            for index, child in getattr(node, "children", {}).items():
                if getattr(child, "type", "") == "plotly_chart" or getattr(child, "key", None) == "runs_detail":
                    found[child.key] = path + (index,)
                walk(child, path + (index,))
        walk(at.main, ())
        return found

    at = open_page(new_app(), "runs")
    before = places(at)
    assert {"runs_compare_chart", "runs_acc_params_chart", "runs_parcoords"} <= set(before)
    after = places(tick(at, ["sgd-k2", "adam-k1-s1"]))
    assert {k: v for k, v in after.items() if k in before} == before
    assert {k: v for k, v in places(tick(at, ["sgd-k2"])).items() if k in before} == before
