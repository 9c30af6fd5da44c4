"""The Sweep page under AppTest: short N chips, a pre-flight that is readable and does not outlive its form,
the trade-off's legend, and one-line errors in the form's words (also the image-folder field's)."""

from __future__ import annotations

import pandas as pd

from harness.apptest import NEW_SWEEP, S, new_app, no_exception, open_page, set_tiny_sweep

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.plots import sweep_tradeoff_figure
from wrn_core.store import RunStore
from wrn_core.sweeps import cells_frame, make_sweep, save_sweep

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, epochs=1, device="cpu")


def test_n_chips_are_short():
    at = open_page(new_app(), "sweep")
    assert list(at.multiselect(key=S + "blocks").options)[:2] == ["N=1 · d10", "N=2 · d16"]


def test_preflight_rows_short_columns_first_no_clock_and_gone_with_another_sweep(_dashboard_isolation):
    save_sweep(_dashboard_isolation, make_sweep("saved", BASE, [1], [1]))
    at = open_page(new_app(), "sweep")
    at.selectbox(key=S + "open").set_value(NEW_SWEEP).run()
    set_tiny_sweep(at, "", blocks=(1,), widen=(1,))
    at.button(key="sweep_preflight").click().run()
    no_exception(at)
    plan = at.dataframe[0].value
    assert list(plan.columns)[:7] == ["run", "N", "k", "seed", "fits", "memory (MiB)", "predicted (s)"]
    assert list(plan["run"]) == ["sweep-n1-k1-s0"]  # no time of day in an unnamed pre-flight's rows

    at.selectbox(key=S + "open").set_value("saved").run()
    at.selectbox(key=S + "open").set_value(NEW_SWEEP).run()
    no_exception(at)
    assert not at.dataframe and any("Pre-flight" in i.value for i in at.info)  # the old plan is gone


def test_errors_say_n_as_the_field_does_and_folder_errors_show_the_path():
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "nok", blocks=())
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "N (blocks per group)" in at.error[0].value

    # The image folder starts empty; Launch with it empty says so in one line.
    at.multiselect(key=S + "blocks").set_value([1])
    at.selectbox(key=S + "dataset").set_value("folder").run()
    assert at.text_input(key=S + "data_dir").value == ""
    at.button(key="sweep_launch").click().run()
    assert len(at.error) == 1 and "needs a data directory" in at.error[0].value and "\n" not in at.error[0].value

    # A relative folder that is not there: named by its absolute path, as code (not Markdown).
    at.text_input(key=S + "data_dir").set_value("no_such_images_dir").run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    from pathlib import Path

    assert len(at.error) == 1 and f"`{Path('no_such_images_dir').resolve()}`" in at.error[0].value, at.error[0].value
    assert r"ROOT/train/<class>/\*.jpg" in at.error[0].value


def test_the_tradeoff_legend_names_points_off_the_front(tmp_path):
    frame = cells_frame(RunStore(tmp_path), make_sweep("fig", BASE, [1, 2], [1, 2]))
    frame["best_test_acc"] = [0.2, 0.3, 0.5, 0.4]
    frame["status"] = "finished"
    fig = sweep_tradeoff_figure(frame, "params")
    legend = {t.name: t.marker.color for t in fig.data if t.showlegend is not False}
    cells = next(t for t in fig.data if t.name == "cell")
    assert set(cells.marker.color) == {legend["on the Pareto front"], legend["off the front (something cheaper is as accurate)"]}


def finish_cells(store: RunStore, sweep, accuracies) -> None:
    """Write each cell's run as finished (no training), as the sweep's trainers would leave it."""
    for cell, acc in zip(sweep.cells(), accuracies):
        run = store.create(cell.config, cell.run, sweep=sweep.name)
        run.append_metrics([{"kind": "epoch", "epoch": 1, "step": 200, "images_seen": 6400, "time": 1.0,
                             "train_loss": 1.0, "train_acc": acc + 0.1, "test_loss": 1.5, "test_acc": acc}])
        run.write_status("finished", "finished 1 epoch", epoch=1, best_test_acc=acc, final_test_acc=acc, train_seconds=2.0)


def test_tags_and_what_mattered_follow_the_live_view_without_a_reload(_dashboard_isolation):
    from app_fragments import run_fragment

    store = RunStore(_dashboard_isolation)
    sweep = make_sweep("live", BASE, [1, 2], [1, 2])
    save_sweep(store.root, sweep)
    at = open_page(new_app(), "sweep")
    no_exception(at)
    assert at.selectbox(key=S + "open").value == "live"
    assert next(d.value for d in at.dataframe if "tags" in d.value.columns).empty  # no cell has a run yet
    table = next(d for d in at.dataframe if "best test acc (%)" in d.value.columns)
    cells = table.value
    assert cells["best test acc (%)"].isna().all() and cells["host"].isna().all()  # not known yet: null, not "None"
    assert table.proto.placeholder == "—"  # what the grid draws for a null
    assert pd.api.types.is_float_dtype(cells["best test acc (%)"])  # a number column, so it sorts as numbers
    assert any("4 pending cell(s) have no run yet" in c.value for c in at.caption)

    finish_cells(store, sweep, (0.3, 0.4, 0.5, 0.6))  # meanwhile every cell trains and finishes
    at = run_fragment(at, "sweep_live")  # the live view's next tick, as in the browser
    no_exception(at)
    assert any("4/4 cells ended" in p.proto.text for p in at.get("progress"))
    cells = next(d.value for d in at.dataframe if "best test acc (%)" in d.value.columns)
    assert list(cells["best test acc (%)"]) == [30.0, 40.0, 50.0, 60.0]  # every value known: numbers again
    tags = next(d.value for d in at.dataframe if "tags" in d.value.columns)
    assert list(tags["run"]) == [c.run for c in sweep.cells()]  # the section was redrawn from the new cells
    assert not any("pending cell(s)" in c.value for c in at.caption)
    assert not any("have finished" in i.value for i in at.info), [i.value for i in at.info]
    from dashboard.settings_importance import RANKING

    ranking = [c.value for c in at.caption if c.value == RANKING]
    assert ranking or any("importance" in d.value.columns for d in at.dataframe)  # the forest is on its way or done

    at = run_fragment(at, "sweep_live")  # nothing moved since: the live view reruns alone
    assert not any("tags" in d.value.columns for d in at.dataframe)


def test_a_refused_launch_says_sweep_name_in_view_and_goes_once_the_form_is_mended():
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "bad/name", blocks=(1,), widen=(1,))
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.startswith("invalid sweep name 'bad/name': use 1-100 letters")
    at.run()  # a rerun that changes nothing (a live view's tick) keeps it
    assert len(at.error) == 1
    at.text_input(key=S + "name").set_value("good").run()
    no_exception(at)
    assert not at.error  # its cause is gone
