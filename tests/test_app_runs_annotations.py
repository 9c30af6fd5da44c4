"""Runs and Sweep pages under AppTest: tags and notes saved to meta.json, filters, group-by rows and bands, importance."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from page_downloads import spy_downloads
from polling import wait_until
from harness.apptest import new_app, no_exception, open_page, plotly_specs

from dashboard.settings_importance import RANKING
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import epoch_record

TINY = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2)
# (name, optimizer, k, seed, best = final test accuracy): written oldest first, so "sgd-k2" is the newest.
RUNS = (("sgd-k1-s0", "sgd", 1, 0, 0.50), ("sgd-k1-s1", "sgd", 1, 1, 0.52), ("adam-k1-s0", "adam", 1, 0, 0.60),
        ("adam-k1-s1", "adam", 1, 1, 0.64), ("sgd-k2", "sgd", 2, 0, 0.70))
V = "runs_v_"


def finished_run(store: RunStore, config: TrainConfig, name: str, acc: float, **status) -> None:
    """A finished 2-epoch run written straight into the store: test accuracy 0.8 × acc, then acc."""
    run = store.create(config, name, **status)
    run.append_metrics([epoch_record(epoch=e, step=10 * e, images_seen=320 * e, time=float(e), train_loss=1.0 / e,
                                     train_acc=0.4 * e, test_loss=1.5 / e, test_acc=acc * (0.8 if e == 1 else 1.0),
                                     lr=0.1, epoch_seconds=1.0, images_per_s=320.0, peak_mem_mb=None)
                        for e in (1, 2)])
    run.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=acc, final_test_acc=acc, train_seconds=2.0)


@pytest.fixture
def runs(_dashboard_isolation) -> RunStore:
    store = RunStore(_dashboard_isolation)
    for name, optimizer, k, seed, acc in RUNS:
        finished_run(store, TINY.replace(optimizer=optimizer, seed=seed,
                                         model=WRNConfig(depth=10, widen_factor=k)), name, acc)
    return store


def table(at):
    """The page's first table (the runs, or the groups when grouped) as a DataFrame."""
    return at.dataframe[0].value


def ranked(at):
    """Rerun until the parameter ranking, computed beside the page, is drawn (at most 60 s)."""

    def drawn() -> bool:
        if not any(c.value == RANKING for c in at.caption):
            return True
        at.run()
        return False

    wait_until(drawn, "the parameter ranking to be drawn", timeout=60, interval=0.1)
    no_exception(at)
    return at


def frame_with(at, column: str):
    """The first table on the page that has this column."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def text_input(at, label: str):
    return next(t for t in at.text_input if t.label == label)


def values(array) -> list[float]:
    """A plotly spec's array: a list, or plotly's typed-array form {"dtype", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def meta(store: RunStore, name: str) -> dict:
    return json.loads((store.root / name / "meta.json").read_text())


def test_tags_and_note_are_saved_and_hold_across_a_page_switch_and_a_fresh_app(runs):
    at = open_page(new_app(), "runs")
    no_exception(at)
    assert "sgd-k2" in next(c.value for c in at.caption if c.value.startswith("Nothing selected"))
    text_input(at, "Tags").set_value("baseline, wide").run()
    at.button(key="runs_save_tags").click().run()
    no_exception(at)
    at.text_area[0].set_value("k=2 helps\nsecond line").run()
    at.button(key="runs_save_note").click().run()
    no_exception(at)
    assert meta(runs, "sgd-k2")["tags"] == ["baseline", "wide"]
    assert meta(runs, "sgd-k2")["note"] == "k=2 helps\nsecond line"
    row = table(at).set_index("name").loc["sgd-k2"]
    assert list(row["tags"]) == ["baseline", "wide"] and row["note"] == "k=2 helps …"
    assert text_input(at, "Tags").value == "baseline wide"  # the saved tags, normalised

    open_page(at, "sweep")
    no_exception(at)
    open_page(at, "runs")
    assert list(table(at).set_index("name").loc["sgd-k2", "tags"]) == ["baseline", "wide"]
    fresh = open_page(new_app(), "runs")
    assert text_input(fresh, "Tags").value == "baseline wide"
    assert fresh.text_area[0].value == "k=2 helps\nsecond line"


def test_a_bad_tag_is_one_error_line_and_changes_nothing(runs):
    runs.get("sgd-k2").annotate(tags=["kept"])
    at = open_page(new_app(), "runs")
    text_input(at, "Tags").set_value("kept bad/tag").run()
    at.button(key="runs_save_tags").click().run()
    no_exception(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "invalid tag 'bad/tag'" in errors[0] and "\n" not in errors[0]
    assert meta(runs, "sgd-k2")["tags"] == ["kept"]
    assert list(table(at).set_index("name").loc["sgd-k2", "tags"]) == ["kept"]
    assert text_input(at, "Tags").value == "kept bad/tag"  # left as typed, to be fixed


def test_filter_by_tag_and_by_a_field(runs):
    runs.get("adam-k1-s0").annotate(tags=["a", "b"])
    runs.get("sgd-k1-s0").annotate(tags=["a"])
    at = open_page(new_app(), "runs")
    assert len(table(at)) == 5
    at.multiselect(key=V + "filter_tag").set_value(["a"]).run()
    assert set(table(at)["name"]) == {"adam-k1-s0", "sgd-k1-s0"}
    at.multiselect(key=V + "filter_tag").set_value(["a", "b"]).run()  # all the tags
    assert list(table(at)["name"]) == ["adam-k1-s0"]
    at.multiselect(key=V + "filter_tag").set_value([]).run()
    at.multiselect(key=V + "filter_widen_factor").set_value([2]).run()
    assert list(table(at)["name"]) == ["sgd-k2"]
    at.multiselect(key=V + "filter_widen_factor").set_value([]).run()
    at.multiselect(key=V + "filter_optimizer").set_value(["adam"]).run()
    no_exception(at)
    assert set(table(at)["name"]) == {"adam-k1-s0", "adam-k1-s1"}
    assert any(c.value.startswith("2 of 5 runs") for c in at.caption)


def test_group_by_shows_n_and_mean_std_rows_and_draws_bands(runs):
    at = open_page(new_app(), "runs")
    at.multiselect(key=V + "group_by").set_value(["optimizer"]).run()
    no_exception(at)
    groups = table(at).set_index("optimizer")
    assert groups.loc["adam", "n"] == 2 and groups.loc["sgd", "n"] == 3
    # Hand computation (percent, std with ddof=1): adam 60, 64; sgd 50, 52, 70.
    adam_std = math.sqrt(((60 - 62) ** 2 + (64 - 62) ** 2) / 1)
    sgd_mean = (50 + 52 + 70) / 3
    sgd_std = math.sqrt(sum((v - sgd_mean) ** 2 for v in (50, 52, 70)) / 2)
    assert groups.loc["adam", "best test acc (%)"] == f"62.00 ± {adam_std:.2f}" == "62.00 ± 2.83"
    assert groups.loc["sgd", "best test acc (%)"] == f"{sgd_mean:.2f} ± {sgd_std:.2f}" == "57.33 ± 11.02"
    assert groups.loc["sgd", "final test acc (%)"] == "57.33 ± 11.02"

    bands = next(s for s in plotly_specs(at) if any("(n=" in str(t.get("name")) for t in s["data"]))
    names = [t["name"] for t in bands["data"] if t.get("showlegend") is not False]
    assert set(names) == {"optimizer=adam (n=2)", "optimizer=sgd (n=3)"}  # the newest runs' groups, by default
    assert sum(t.get("fill") == "tonexty" for t in bands["data"]) == 2  # a band per group
    adam = next(t for t in bands["data"] if t["name"] == "optimizer=adam (n=2)")
    assert values(adam["y"]) == pytest.approx([0.8 * 62.0, 62.0])  # the mean test accuracy at epochs 1 and 2, percent

    at.multiselect(key=V + "group_by").set_value(["optimizer", "widen_factor"]).run()
    groups = table(at)
    assert list(zip(groups["optimizer"], groups["widen_factor"], groups["n"])) == [("adam", 1, 2), ("sgd", 1, 2), ("sgd", 2, 1)]
    assert groups["best test acc (%)"].tolist() == ["62.00 ± 2.83", "51.00 ± 1.41", "70.00"]
    assert "seed" not in at.multiselect(key=V + "group_by").options  # groups average over seeds


def test_importance_says_why_under_four_runs_and_ranks_with_four_or_more(runs):
    at = ranked(open_page(new_app(), "runs"))
    assert not any(c.value == RANKING for c in at.caption)
    importance = frame_with(at, "importance")
    assert set(importance["param"]) >= {"optimizer", "widen_factor"}
    assert importance["importance"].dropna().sum() == pytest.approx(1.0)
    k = importance.set_index("param").loc["widen_factor"]
    assert k["correlation"] > 0  # k=2 is the best run
    assert any(t.get("type") == "parcoords" for s in plotly_specs(at) for t in s.get("data", []))

    ranked(at.multiselect(key=V + "filter_optimizer").set_value(["sgd"]).run())  # 3 runs
    assert not [df for df in at.dataframe if "importance" in df.value.columns]
    infos = [i.value for i in at.info]
    assert infos == ["parameter importance needs at least 4 finished runs; 3 have finished"]


def test_tag_all_cells_on_the_sweep_page_tags_every_cell(_dashboard_isolation):
    from wrn_core.sweeps import make_sweep, save_sweep

    store = RunStore(_dashboard_isolation)
    sweep = make_sweep("grid", TINY, [1], [1, 2], seeds=[0, 1])
    save_sweep(store.root, sweep)
    for cell, acc in zip(sweep.cells(), (0.5, 0.52, 0.7, 0.72)):
        finished_run(store, cell.config, cell.run, acc, sweep="grid")
    at = open_page(new_app(), "sweep")
    no_exception(at)
    at.text_input(key="sweep_tag_all").set_value("depth-vs-width").run()
    ranked(at.button(key="sweep_tag_cells").click().run())
    cells = [cell.run for cell in sweep.cells()]
    assert all(meta(store, name)["tags"] == ["depth-vs-width"] for name in cells)
    tags = frame_with(at, "tags")
    assert [list(t) for t in tags["tags"]] == [["depth-vs-width"]] * 4
    importance = frame_with(at, "importance")
    assert importance.loc[importance["param"] == "widen_factor", "importance"].item() == pytest.approx(1.0)
    assert "never varies" in importance.loc[importance["param"] == "blocks", "note"].item()

    at.text_input(key="sweep_tag_all").set_value("no spaces/slashes").run()
    at.button(key="sweep_tag_cells").click().run()
    assert len(at.error) == 1 and all(meta(store, name)["tags"] == ["depth-vs-width"] for name in cells)

    runs_page = open_page(new_app(), "runs")  # the Runs page's filter knows the sweep's tag
    runs_page.multiselect(key=V + "filter_tag").set_value(["depth-vs-width"]).run()
    assert set(table(runs_page)["name"]) == set(cells)


def test_tags_and_notes_edited_in_the_table_are_saved_and_a_bad_cell_changes_only_its_run(runs):
    from dashboard.run_annotations import apply_table_edits

    runs.get("sgd-k1-s0").annotate(tags=["old"], note="kept")
    names = ["sgd-k2", "adam-k1-s1", "sgd-k1-s0"]  # the rows as the editor showed them
    saved, errors = apply_table_edits(str(runs.root), names, {
        "0": {"tags": ["wide", "k2"]},                      # row positions arrive as strings or ints
        1: {"note": "adam, second seed"},
        2: {"tags": ["fine", "two words"], "note": "lost"},  # a bad tag: this run is left as it was
        7: {"tags": ["ghost"]},                             # a row that is not there any more
    })
    assert saved == ["sgd-k2", "adam-k1-s1"]
    assert len(errors) == 1 and errors[0].startswith("sgd-k1-s0: invalid tag 'two words'") and "\n" not in errors[0]
    assert runs.get("sgd-k2").read_annotations().tags == ("k2", "wide")
    assert runs.get("adam-k1-s1").read_annotations().note == "adam, second seed"
    unchanged = runs.get("sgd-k1-s0").read_annotations()
    assert (unchanged.tags, unchanged.note) == (("old",), "kept")


def test_the_runs_page_offers_the_annotations_table(runs):
    runs.get("sgd-k2").annotate(tags=["wide"])
    at = open_page(new_app(), "runs")
    no_exception(at)
    assert len(at.dataframe) == 1  # the editor is drawn only when asked for
    at.toggle(key="runs_edit_annotations").set_value(True).run()
    no_exception(at)
    edited = at.dataframe[1].value
    assert list(edited.columns) == ["name", "tags", "note"] and len(edited) == len(RUNS)
    assert list(edited.loc[edited["name"] == "sgd-k2", "tags"].iloc[0]) == ["wide"]


def _files(run, names=("metrics.jsonl", "status.json", "run.lock")) -> dict:
    return {name: ((run.path / name).stat().st_mtime_ns, (run.path / name).read_bytes()) for name in names}


def test_tagging_on_the_page_while_the_run_trains_touches_only_meta_json(_dashboard_isolation):
    """README: tagging a run while it trains never touches its metrics.jsonl, status.json or run.lock."""
    import os

    store = RunStore(_dashboard_isolation)
    finished_run(store, TINY, "older", 0.5)
    run = store.create(TINY, "live", hold="training")  # this process is its trainer: it holds run.lock
    try:
        run.append_metrics([epoch_record(epoch=1, step=10, images_seen=320, time=1.0, train_loss=1.0, train_acc=0.4,
                                         test_loss=1.5, test_acc=0.3, lr=0.1, epoch_seconds=1.0, images_per_s=320.0,
                                         peak_mem_mb=None)])
        run.write_status("running", "epoch 1/2", epoch=1)
        before = _files(run)
        at = open_page(new_app(), "runs")
        no_exception(at)
        assert "**live**" in next(c.value for c in at.caption if c.value.startswith("Nothing selected"))
        text_input(at, "Tags").set_value("mid-run").run()
        at.button(key="runs_save_tags").click().run()
        at.text_area[0].set_value("tagged while training").run()
        at.button(key="runs_save_note").click().run()
        no_exception(at)
        assert (meta(store, "live")["tags"], meta(store, "live")["note"]) == (["mid-run"], "tagged while training")
        assert _files(run) == before  # the trainer's files, byte for byte and untouched
        owner = run.owner()
        assert (owner.pid, owner.role) == (os.getpid(), "training")  # still its trainer's
    finally:
        run.release()


def test_the_pages_downloads_carry_the_runs_tags_and_note(_dashboard_isolation, monkeypatch):
    import csv
    import io

    store = RunStore(_dashboard_isolation)
    finished_run(store, TINY, "noted", 0.6)
    store.get("noted").annotate(tags=["base", "k1"], note="first line\nsecond line")
    offered = spy_downloads(monkeypatch)
    no_exception(open_page(new_app(), "runs"))
    data, file_name = offered["Download CSV (per epoch)"]
    rows = list(csv.DictReader(io.StringIO(data())))
    assert file_name == "noted.csv" and [int(r["epoch"]) for r in rows] == [1, 2]
    assert {(r["tags"], r["note"]) for r in rows} == {("base k1", "first line\nsecond line")}  # on every row
    data, file_name = offered["Download JSON (all records)"]
    document = json.loads(data())
    assert file_name == "noted.json"
    assert (document["name"], document["tags"], document["note"]) == ("noted", ["base", "k1"], "first line\nsecond line")
    assert [r["epoch"] for r in document["records"] if r["kind"] == "epoch"] == [1, 2]
