"""The Runs page under AppTest: the default run, live active runs with Stop, and readable diffs, commands and CSV."""

from __future__ import annotations

import csv
import io
import json
import shlex

import pytest

from harness.apptest import F, add_epochs, new_app, no_exception, open_page, set_tiny_run, wait_status
from test_app_runs_views import tick

from wrn_core.config import Extension, TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.store.records import RUNNING

TINY = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2)


def shown_run(at) -> str:
    """The run the 'Nothing selected' caption says is shown."""
    caption = next(c.value for c in at.caption if c.value.startswith("Nothing selected"))
    return caption.split("**")[1]


def test_the_default_run_is_the_newest_with_data(_dashboard_isolation):
    store = RunStore(_dashboard_isolation)
    good = store.create(TINY, "trained")
    add_epochs(good, test_acc=0.5)
    good.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=0.5)
    store.create(TINY.replace(seed=1), "broken").write_status("failed", "no such device")  # newest, no records
    at = open_page(new_app(), "runs")
    no_exception(at)
    assert shown_run(at) == "trained"
    assert [s.value for s in at.success][:1] == ["**finished** — finished 2 epochs"]


def test_an_active_run_is_live_with_stop(_dashboard_isolation):
    at = open_page(new_app(), "train")
    set_tiny_run(at, "long")
    at.number_input(key=F + "epochs").set_value(50).run()
    at.button(key="train_launch").click().run()
    wait_status(_dashboard_isolation, "long", ("running",))
    open_page(at, "runs")
    no_exception(at)
    assert shown_run(at) == "long"
    assert any("epoch" in p.proto.text for p in at.get("progress")), "a progress line for the active run"
    stop = at.button(key="runs_stop")
    assert not stop.disabled
    stop.click().run()
    no_exception(at)
    assert any("Stopping long" in s.value for s in at.success)
    assert wait_status(_dashboard_isolation, "long", ("stopped", "finished")) == "stopped"
    at.run()
    no_exception(at)
    assert not [b for b in at.button if b.key == "runs_stop"]
    assert at.button(key="runs_resume")  # stopped: Resume instead of Stop


def test_an_active_runs_live_chart_spans_its_planned_epochs_and_its_progress_follows_the_records(_dashboard_isolation):
    """As on the Train page: the four panels run to the planned 6 epochs, and with no heartbeat yet the progress
    reads the records (epoch 2) where status.json still says epoch 1."""
    store = RunStore(_dashboard_isolation)
    run = store.create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=6), "live",
                       hold="training")
    try:
        add_epochs(run, 0.4, epochs=2)
        run.write_status(RUNNING, "training", epoch=1, epochs=6)
        at = open_page(new_app(), "runs")
        no_exception(at)
        live = next(json.loads(el.proto.spec) for el in at.get("plotly_chart") if el.proto.id.endswith("runs_live_chart"))
        assert 6.0 < live["layout"]["xaxis"]["range"][1] < 6.5
        assert [p.proto.text for p in at.get("progress")] == ["running · epoch 2/6 · training"]
    finally:
        run.release()


def test_diff_columns_extensions_command_and_csv_are_readable(_dashboard_isolation):
    store = RunStore(_dashboard_isolation)
    folder = TINY.replace(dataset="folder", data_dir="/data/my images", epochs=2, schedule_epochs=2,
                          extensions=(Extension(from_epoch=2, epochs=3, mode="restart"),))
    for name, config in (("a-very-long-run-name-synthetic-20250101-120000", TINY),
                         ("a-very-long-run-name-folder-20250101-120001", folder)):  # the folder run is newest
        run = store.create(config, name)
        add_epochs(run, test_acc=0.5)
        run.write_status("finished", "finished", epoch=2, best_test_acc=0.5)
    at = open_page(new_app(), "runs")
    no_exception(at)

    # The newest (the folder run) is shown: its command has one flag per line and no synthetic sizes.
    code = at.code[0].value
    lines = code.splitlines()
    assert lines[0] == "python -m wrn_core train \\"
    assert all(line.startswith("  --") for line in lines[1:]), lines
    assert "--synthetic" not in code
    words = shlex.split(code.replace(" \\\n", " "))
    assert words[words.index("--data-dir") + 1] == "/data/my images"

    csv_button = next(b for b in at.get("download_button") if "CSV" in b.proto.label)
    assert "test_acc_pct" in csv_button.proto.help

    # Both ticked: Compare, one column per run, says each run's extensions in words.
    names = ["a-very-long-run-name-synthetic-20250101-120000", "a-very-long-run-name-folder-20250101-120001"]
    tick(at, names)
    compared = next(df.value for df in at.dataframe if set(names) <= set(df.value.columns))
    assert compared.loc["extensions", names[1]] == "from epoch 2: +3 epochs, restart"
    assert compared.loc["extensions", names[0]] == "none"


def test_the_downloaded_csv_names_its_percent_columns():
    from metric_records import RECORDS
    from wrn_core.analysis import export_csv

    rows = list(csv.DictReader(io.StringIO(export_csv(RECORDS, percent=True))))
    assert "test_acc_pct" in rows[0] and "test_acc" not in rows[0]
    assert float(rows[1]["test_acc_pct"]) == pytest.approx(45.0)  # 0.45 in the records
