"""Width use over training under AppTest: the Train page's map tab (coloured either way, a column per epoch as
records arrive), the Runs page's per-group comparison of the ticked runs, the Sweep heatmap's width metric, and the
form's width-use field."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from harness.apptest import S, new_app, no_exception, open_page, plotly_specs
from test_app_runs_views import tick
from width_runs import layers, width_run

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import epoch_record, width_record
from wrn_core.sweeps import make_sweep, save_sweep

F = "train_f_"


@pytest.fixture
def store(_dashboard_isolation) -> RunStore:
    return RunStore(_dashboard_isolation)


def array(value) -> list:
    """A plotly spec's array as nested lists: a list, or plotly's typed-array form {"dtype", "bdata", "shape"}."""
    if not isinstance(value, dict):
        return value
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
    return flat.reshape(shape).tolist()


def fraction(layer: str, epoch: int) -> float:
    return 0.3 if layer == "head.relu" else 0.9 - epoch / 20


def map_spec(at):
    return next(s for s in plotly_specs(at) if s["layout"].get("title", {}).get("text", "").startswith("Width use by layer"))


def train_page_on(run_name: str, tab: str | None = None):
    at = new_app()
    at.session_state["train_run"] = run_name
    if tab:
        at.session_state["train_view"] = tab
    return open_page(at, "train")


def test_the_train_page_opens_on_the_curves_and_its_width_tab_draws_the_map(store):
    width_run(store, "w", k=1, epochs=2, fraction=fraction, planned=6, status="running")
    at = train_page_on("w")
    no_exception(at)
    assert not [s for s in plotly_specs(at) if "Width use by layer" in str(s["layout"].get("title"))]  # not drawn unseen
    at = train_page_on("w", tab="Width use")
    no_exception(at)
    heat = map_spec(at)["data"][0]
    z = array(heat["z"])
    assert array(heat["x"]) == [1, 2] and len(z) == 7
    assert z[6] == pytest.approx([0.3, 0.3]) and z[0] == pytest.approx([0.85, 0.8])
    assert map_spec(at)["layout"]["xaxis"]["range"] == [0.5, 6.5]  # the planned 6 epochs
    assert not [s for s in plotly_specs(at) if any(a.get("text") == "Train accuracy"
                                                   for a in s["layout"].get("annotations", []))]  # curves tab not drawn


def test_the_map_gains_a_column_when_an_epoch_is_measured_and_can_colour_by_dead_channels(store):
    run = width_run(store, "w", k=1, epochs=2, fraction=fraction, planned=6, status="running")
    at = train_page_on("w", tab="Width use")
    run.append_metrics([width_record(epoch=3, step=30, time=3.0, images=100,
                                     layers=layers(1, lambda layer: 0.5, lambda layer, channels: 32 if layer == "head.relu" else 0))])
    at.run()
    heat = map_spec(at)["data"][0]
    assert array(heat["x"]) == [1, 2, 3] and array(heat["z"])[6][2] == pytest.approx(0.5)
    at.toggle(key="train_width_dead").set_value(True).run()
    no_exception(at)
    heat = map_spec(at)["data"][0]
    assert array(heat["z"])[6] == pytest.approx([0.0, 0.0, 0.5]) and heat["zmax"] == pytest.approx(0.5)
    assert "dead" in map_spec(at)["layout"]["title"]["text"]


def test_a_run_that_measures_no_width_says_so_under_the_map(store):
    width_run(store, "off", k=1, epochs=2, fraction=fraction, measured=lambda epoch: False)
    run = store.get("off")
    run.write_config(run.read_config().replace(width_every=0))
    at = train_page_on("off", tab="Width use")
    no_exception(at)
    assert any("--width-every 0" in c.value for c in at.caption)


def test_the_runs_page_compares_the_ticked_runs_width_per_group(store):
    width_run(store, "k1", k=1, epochs=3, fraction=fraction)
    width_run(store, "k8", k=8, epochs=2, fraction=lambda layer, epoch: 0.25)
    width_run(store, "off", k=1, epochs=2, fraction=fraction, measured=lambda epoch: False)
    at = open_page(new_app(), "runs")
    tick(at, ["k1", "k8", "off"])
    spec = next(s for s in plotly_specs(at) if any(a.get("text") == "group 3" for a in s["layout"].get("annotations", [])))
    traces = {(t["name"], t["xaxis"]): t for t in spec["data"]}
    assert {name for name, _ in traces} == {"k1", "k8"}
    assert array(traces[("k1", "x3")]["x"]) == [1, 2, 3] and array(traces[("k8", "x3")]["x"]) == [1, 2]
    assert array(traces[("k8", "x3")]["y"]) == pytest.approx([25.0, 25.0])
    assert array(traces[("k1", "x4")]["y"]) == pytest.approx([30.0, 30.0, 30.0])  # head
    assert traces[("k1", "x3")]["line"]["color"] != traces[("k8", "x3")]["line"]["color"]
    assert any("No width records: off." in c.value for c in at.caption)


def test_the_form_sets_width_every_for_the_run_it_launches(store):
    at = open_page(new_app(), "train")
    assert at.number_input(key=F + "width_every").value == 1
    at.number_input(key=F + "width_every").set_value(-2).run()
    assert any("width every must be >= 0" in e.value for e in at.error)  # said before Launch is pressed
    at.number_input(key=F + "width_every").set_value(0).run()
    assert not any("width every" in e.value for e in at.error)


def test_the_sweep_heatmap_draws_each_cells_end_of_training_group_width_at_its_n_and_k(store):
    """A 2 × 2 sweep whose cells end with group 2 at a width share of their own: each share in its N row and k column."""
    sweep = make_sweep("wsw", TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=2, device="cpu"), [1, 2], [1, 2])
    save_sweep(store.root, sweep)
    shares = {}
    for i, cell in enumerate(sweep.cells()):
        config = cell.config
        share = 0.2 + 0.1 * i
        shares[(config.model.blocks, config.model.widen_factor)] = share
        run = store.create(config, cell.run, sweep=sweep.name)
        for epoch in (1, 2):  # the first epoch at 90%: the heatmap shows the last measured one
            run.append_metrics([
                epoch_record(epoch=epoch, step=10 * epoch, images_seen=320 * epoch, time=float(epoch), train_loss=1.0,
                             train_acc=0.5, test_loss=1.2, test_acc=0.4, lr=0.1, epoch_seconds=1.0, images_per_s=320.0,
                             peak_mem_mb=None),
                width_record(epoch=epoch, step=10 * epoch, time=float(epoch), images=100, layers=layers(
                    config.model.widen_factor, lambda layer: (0.9 if epoch == 1 else share) if "group2" in layer else 0.5))])
        run.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=0.4, final_test_acc=0.4, epochs=2)
    at = open_page(new_app(), "sweep")
    assert at.session_state[S + "open"] == "wsw"
    at.radio(key="sweep_v_metric").set_value("width_group2").run()
    no_exception(at)
    heat = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("effective width, group 2"))
    trace = heat["data"][0]
    assert (trace["zmin"], trace["zmax"]) == (0, 100)  # the whole scale: near-equal shares read alike
    z = array(trace["z"])
    for (n, k), share in shares.items():
        row, column = array(trace["y"]).index(f"N={n} (depth {6 * n + 4})"), array(trace["x"]).index(f"k={k}")
        assert z[row][column] == pytest.approx(100 * share), (n, k)
