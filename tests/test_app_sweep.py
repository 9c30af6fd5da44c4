"""The Sweep page under AppTest: short N chips, a pre-flight that is readable and does not outlive its form,
the trade-off's legend, and one-line errors in the form's words (also the image-folder field's)."""

from __future__ import annotations

from test_app import NEW_SWEEP, S, new_app, no_exception, open_page, set_tiny_sweep

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
