"""The Sweep page's search under AppTest: the strategy, budget and pruning choices launch a search that keeps its
budget, a minutes budget asks for a pre-flight first, and the map predicted where no run was made (pale '≈' squares,
the next cell framed, predicted points beside the measured ones) with its error and the next cell's reason."""

from __future__ import annotations

import time

import pytest
from harness.apptest import NEW_SWEEP, S, new_app, no_exception, open_page, plotly_specs, set_tiny_sweep

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.plots.sweeps import NEXT_COLOR, PREDICTED_NAME, PREDICTED_POINTS_NAME
from wrn_core.store import RunStore
from wrn_core.sweeps import cells_frame, load_sweep, make_sweep, save_sweep
from wrn_core.sweeps.search_plan import SearchPlan

pytest.importorskip("optuna")

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, epochs=1,
                   device="cpu")


def set_search(at, strategy: str, budget: str = "none", amount: float = 4, prune: str = "none") -> None:
    at.radio(key=S + "search").set_value(strategy).run()
    at.radio(key=S + "budget").set_value(budget).run()
    if budget != "none":
        at.number_input(key=S + "budget_amount").set_value(amount)
    at.selectbox(key=S + "prune").set_value(prune)
    at.run()


def test_a_bayes_search_launched_from_the_page_trains_its_budget_of_cells(_dashboard_isolation):
    runs = _dashboard_isolation
    at = open_page(new_app(), "sweep")
    at.selectbox(key=S + "open").set_value(NEW_SWEEP).run()
    set_tiny_sweep(at, "srch", blocks=(1, 2), widen=(1, 2))
    set_search(at, "bayes", "cells", 2)
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    sweep = load_sweep(runs, "srch")
    assert sweep.search == SearchPlan(strategy="bayes", budget_cells=2)
    store = RunStore(runs)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # the page's runner trains the cells the search hands out
        frame = cells_frame(store, sweep)
        if (frame["status"] == "finished").sum() >= 2 and not frame["status"].isin(["running", "queued"]).any():
            break
        time.sleep(0.5)
    started = [c.run for c in sweep.cells() if store.exists(c.run)]
    assert len(started) == 2 and all(store.summary(r).status == "finished" for r in started)


def test_a_minutes_budget_needs_a_preflight_which_says_what_it_buys_and_is_kept_for_the_search(_dashboard_isolation):
    at = open_page(new_app(), "sweep")
    at.selectbox(key=S + "open").set_value(NEW_SWEEP).run()
    set_tiny_sweep(at, "mins", blocks=(1,), widen=(1, 2))
    set_search(at, "random", "minutes", 5)
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "a budget in minutes counts predicted training time: press Pre-flight" in \
        at.error[0].value and "\n" not in at.error[0].value
    assert not (_dashboard_isolation / "mins.sweep.json").exists()  # refused: nothing saved

    at.button(key="sweep_preflight").click().run()
    no_exception(at)
    forecast = next(m.value for m in at.markdown if m.value.startswith("Search: a budget of 5 minutes:"))
    assert "cells, by which cells the search picks" in forecast and "the whole grid, 2 cells" in forecast
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert load_sweep(_dashboard_isolation, "mins").search == SearchPlan(strategy="random", budget_minutes=5.0)
    from wrn_core.sweeps import load_predicted_seconds

    kept = load_predicted_seconds(_dashboard_isolation, "mins")
    assert sorted(kept) == ["mins-n1-k1-s0", "mins-n1-k2-s0"] and all(s > 0 for s in kept.values())


def finish(store: RunStore, cell, acc: float) -> None:
    run = store.create(cell.config, cell.run, sweep="map")
    run.append_metrics([{"kind": "epoch", "epoch": 1, "step": 10, "images_seen": 320, "time": 1.0, "train_loss": 1.0,
                         "train_acc": acc, "test_loss": 1.5, "test_acc": acc}])
    run.write_status("finished", "finished 1 epoch", epoch=1, best_test_acc=acc, final_test_acc=acc, train_seconds=2.0)


def smooth(values: dict) -> float:
    return 0.30 + 0.08 * values["blocks"] + 0.05 * values["widen_factor"]


def test_the_map_is_predicted_where_no_run_was_made_and_the_next_cell_is_named(_dashboard_isolation):
    store = RunStore(_dashboard_isolation)
    sweep = make_sweep("map", BASE, [1, 2, 3], [1, 2])
    save_sweep(store.root, sweep)
    cells = sweep.cells()
    for cell in cells[:4]:  # N=1 and N=2 finished; N=3 has no run
        finish(store, cell, smooth(cell.values))
    at = open_page(new_app(), "sweep")
    no_exception(at)
    assert at.selectbox(key=S + "open").value == "map"
    heat = next(s for s in plotly_specs(at) if s["data"] and s["data"][0].get("type") == "heatmap")
    guess = next(t for t in heat["data"] if t.get("name") == PREDICTED_NAME and t["type"] == "heatmap")
    assert guess["opacity"] < 1 and guess["zmin"] == heat["data"][0]["zmin"]  # pale, on the measured scale
    # Drawn in the N=3 row only (y index 2), labelled '≈ mean ± std%' over 'pending'.
    assert [row.count(None) for row in guess["z"]] == [2, 2, 0]
    assert all(text.startswith("≈ ") and "± " in text and "pending" in text for text in guess["text"][2])
    assert heat["data"][0]["z"][2] == [None, None]  # no measured value there
    predicted_n3 = guess["z"][2]
    assert predicted_n3[1] > predicted_n3[0] > 100 * smooth({"blocks": 2, "widen_factor": 1}) - 10
    frames = [s for s in heat["layout"].get("shapes", []) if s.get("name") == "next"]
    assert len(frames) == 1 and round(frames[0]["y0"] + 0.45) == 2  # the next cell's square is in the N=3 row
    next_run = next(m.value for m in at.markdown if m.value.startswith("**Next:**"))
    assert "map-n3-k" in next_run and "expected to grow the front" in next_run
    assert any("the map is off by about ±" in c.value for c in at.caption)

    trade = next(s for s in plotly_specs(at) if any(t.get("name") == PREDICTED_POINTS_NAME for t in s["data"]))
    points = next(t for t in trade["data"] if t["name"] == PREDICTED_POINTS_NAME)
    params = sorted(int(v) for v in cells_frame(store, sweep).set_index("run").loc[[c.run for c in cells[4:]], "params"])
    assert sorted(int(x) for x in points["x"]) == params  # at the unrun models' parameters
    assert points["marker"]["symbol"] == "triangle-up-open" and points["error_y"]["visible"]
    assert NEXT_COLOR in points["marker"]["color"]
    front = next(t for t in trade["data"] if t["name"] == "Pareto front")
    assert not set(front["x"]) & set(points["x"])  # the front is drawn from measured points only


def test_with_fewer_than_3_finished_cells_the_page_says_why_there_is_no_map(_dashboard_isolation):
    store = RunStore(_dashboard_isolation)
    sweep = make_sweep("map", BASE, [1, 2], [1, 2])
    save_sweep(store.root, sweep)
    finish(store, sweep.cells()[0], 0.4)
    at = open_page(new_app(), "sweep")
    no_exception(at)
    heat = next(s for s in plotly_specs(at) if s["data"] and s["data"][0].get("type") == "heatmap")
    assert not any(t.get("name") == PREDICTED_NAME for t in heat["data"])
    assert any("no prediction yet: 1 finished cell, and the map needs 3" in m.value for m in at.markdown)
