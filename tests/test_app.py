"""Dashboard pages under streamlit.testing.v1.AppTest: controls, errors, and a tiny run end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.apptest import (
    F,
    NEW_SWEEP,
    PAGES,
    S,
    add_epochs,
    metric_values,
    new_app,
    no_exception,
    open_page,
    plotly_specs,
    set_tiny_run,
    set_tiny_sweep,
    wait_status,
)


def test_every_page_runs():
    at = new_app()
    no_exception(at)
    for page in PAGES:
        open_page(at, page)
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
    assert any("Runs directory" in c.value for c in at.sidebar.caption)


def test_architecture_controls_and_metrics():
    at = open_page(new_app(), "architecture")
    no_exception(at)
    assert at.number_input(key="arch_n").value == 2
    assert at.number_input(key="arch_k").value == 8
    labels = [m.label for m in at.metric]
    assert "Parameters" in labels and "MACs / image" in labels
    assert "Training memory (GPU)" in labels
    assert any("WRN-16-8" in md.value for md in at.markdown)
    assert at.dataframe, "layer and group tables"
    assert plotly_specs(at), "width chart"

    # Changing a control updates everything without a button.
    at.number_input(key="arch_k").set_value(10).run()
    at.number_input(key="arch_n").set_value(4).run()
    no_exception(at)
    assert "36,479,194" in metric_values(at)


def test_architecture_compare_defaults():
    at = open_page(new_app(), "architecture")
    at.toggle(key="arch_compare").set_value(True).run()
    no_exception(at)
    values = metric_values(at)
    assert "36,479,194" in values  # the paper's WRN-28-10
    markdown = " ".join(md.value for md in at.markdown)
    assert "WRN-16-8" in markdown and "WRN-28-10" in markdown  # A starts as the model set before comparing
    width = plotly_specs(at)[0]
    assert len(width["data"]) == 2  # both configs overlaid


def test_architecture_invalid_input_shows_error():
    at = open_page(new_app(), "architecture")
    at.radio(key="arch_by").set_value("depth d = 6N+4").run()
    at.number_input(key="arch_depth").set_value(20).run()
    no_exception(at)
    assert len(at.warning) == 1  # said, and the nearest valid depth (22) shown
    assert "6N+4" in at.warning[0].value and "\n" not in at.warning[0].value

    assert at.number_input(key="arch_depth").value == 22
    at.number_input(key="arch_depth").set_value(28).run()
    assert not at.error and not at.warning
    at.number_input(key="arch_image_size").set_value(4).run()
    no_exception(at)
    assert at.error and "image size" in at.error[0].value


def test_train_controls_and_presets():
    at = open_page(new_app(), "train")
    no_exception(at)
    assert at.button(key="train_launch").label == "Launch"
    assert list(at.selectbox(key=F + "optimizer").options) == ["SGD-Nesterov", "Adam", "AdamW", "SGD"]
    assert at.selectbox(key=F + "dataset").value == "synthetic"
    presets = at.selectbox(key=F + "preset").options
    paper = next(p for p in presets if p.startswith("Paper"))
    at.selectbox(key=F + "preset").set_value(paper).run()
    no_exception(at)
    assert at.number_input(key=F + "n").value == 2
    assert at.number_input(key=F + "k").value == 8
    assert at.number_input(key=F + "epochs").value == 200
    assert at.selectbox(key=F + "dataset").value == "cifar10"
    assert any(b.label.startswith("Download") for b in at.button)


def test_train_errors_are_one_line_and_keep_input(tmp_path):
    at = open_page(new_app(), "train")
    at.number_input(key=F + "k").set_value(3)
    at.text_input(key=F + "name").set_value("bad/name")
    at.run()
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "invalid run name" in at.error[0].value
    assert at.text_input(key=F + "name").value == "bad/name"
    assert at.number_input(key=F + "k").value == 3

    # CIFAR files missing: a DataError, shown as one line; the Download failure too.
    at.selectbox(key=F + "dataset").set_value("cifar10").run()
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "nothing-here"))
    at.text_input(key=F + "name").set_value("")
    at.run()
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "CIFAR-10" in at.error[0].value and "\n" not in at.error[0].value
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    at.text_input(key=F + "data_dir").set_value(str(blocker / "sub")).run()
    at.button(key="train_download").click().run()
    no_exception(at)
    assert any("could not download" in e.value for e in at.error)
    assert at.number_input(key=F + "k").value == 3


def test_an_error_shows_its_text_as_written(tmp_path):
    # The folder layout's "*.jpg" would be Markdown emphasis in st.error: it is escaped, not lost.
    (tmp_path / "images" / "test").mkdir(parents=True)  # no train/ folder
    at = open_page(new_app(), "train")
    at.selectbox(key=F + "dataset").set_value("folder").run()
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "images")).run()
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1, [e.value for e in at.error]
    assert r"ROOT/train/<class>/\*.jpg" in at.error[0].value, at.error[0].value


def test_tiny_run_end_to_end(_dashboard_isolation):
    runs_dir = _dashboard_isolation
    at = open_page(new_app(), "train")
    set_tiny_run(at, "tiny")
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("tiny" in s.value for s in at.success)

    metrics = runs_dir / "tiny" / "metrics.jsonl"
    deadline = time.monotonic() + 90
    saw_progress = False
    while time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        no_exception(at)
        saw_progress = saw_progress or bool(at.get("progress"))
        status = json.loads((runs_dir / "tiny" / "status.json").read_text())["status"]
        if metrics.exists() and '"kind":"epoch"' in metrics.read_text() and status not in ("queued", "running"):
            break
    else:
        pytest.fail("the tiny run produced no epoch record within 90 s")
    assert status == "finished", status
    assert saw_progress
    at.run()
    spec = plotly_specs(at)[0]
    titles = [a["text"] for a in spec["layout"]["annotations"]]
    for title in ("Train accuracy", "Train cost", "Test accuracy", "Test cost"):
        assert title in titles
    axes_with_points = {t.get("xaxis", "x") for t in spec["data"] if t.get("x")}
    assert axes_with_points == {"x", "x2", "x3", "x4"}
    assert any("Status: **finished**" in c.value for c in at.caption)
    assert any("finished · epoch 1/1" in p.proto.text for p in at.get("progress"))
    assert any(c.value.startswith("Best test accuracy **") for c in at.caption)

    # The Runs page lists it, draws the comparison, and offers both exports.
    open_page(at, "runs")
    no_exception(at)
    table = at.dataframe[0].value
    assert "tiny" in list(table["name"])
    kinds = [{t.get("type", "scatter") for t in spec["data"]} for spec in plotly_specs(at)]
    # Curves, width use per group and accuracy vs parameters; one run has no setting that differs, so
    # nothing is ranked (no parallel coordinates).
    assert kinds == [{"scatter"}, {"scatter"}, {"scatter"}], kinds
    assert any("No setting differs between these runs" in i.value for i in at.info)
    labels = [b.label for b in at.get("download_button")]
    assert any("CSV" in label for label in labels) and any("JSON" in label for label in labels)

    # Delete needs the confirmation box first.
    assert at.button(key="runs_delete").disabled
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    no_exception(at)
    assert not (runs_dir / "tiny").exists()
    assert any("No saved runs" in i.value for i in at.info)



def test_launch_pressed_twice_at_once_starts_one_run(_dashboard_isolation):
    # Streamlit may call the on_click again when a rerun interrupts the run that called it; to the
    # page that is the same as a double click. Either way: one run, "Launched", no error.
    at = open_page(new_app(), "train")
    set_tiny_run(at, "")
    at.button(key="train_launch").click().run()
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    runs = sorted(p.name for p in _dashboard_isolation.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    assert any(s.value == f"Launched {runs[0]}" for s in at.success)
    wait_status(_dashboard_isolation, runs[0], ("finished",))


def test_stop_queue_and_resume(_dashboard_isolation):
    runs_dir = _dashboard_isolation
    at = open_page(new_app(), "train")
    set_tiny_run(at, "long")
    at.number_input(key=F + "epochs").set_value(50).run()
    at.button(key="train_launch").click().run()
    wait_status(runs_dir, "long", ("running",))
    at.text_input(key=F + "name").set_value("second").run()
    at.button(key="train_launch").click().run()
    no_exception(at)
    assert at.session_state["train_run"] == "second"
    assert any("second" in c.value and "waiting" in c.value for c in at.caption), "queued job listed"

    # Stop the queued one (dropped at once), then watch and stop the running one.
    at.button(key="train_stop").click().run()
    assert wait_status(runs_dir, "second", ("stopped",)) == "stopped"
    at.session_state["train_run"] = "long"
    at.run()
    at.button(key="train_stop").click().run()
    assert wait_status(runs_dir, "long", ("stopped", "finished")) == "stopped"
    at.run()
    no_exception(at)
    resume = at.button(key="train_resume")
    assert not resume.disabled
    resume.click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    wait_status(runs_dir, "long", ("running", "queued"), timeout=10)
    at.run()
    at.button(key="train_stop").click().run()
    assert wait_status(runs_dir, "long", ("stopped", "finished")) == "stopped"  # 50 epochs: stopped, not run out


def test_failed_and_interrupted_runs_show_their_message(_dashboard_isolation):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    store = RunStore(_dashboard_isolation)
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), epochs=2)
    store.create(config, "oom").write_status("failed", "CUDA out of memory: try a smaller batch size")
    store.create(config, "crashed").write_status("running", "training", pid=2**22 + 12345)
    at = new_app()
    at.session_state["train_run"] = "oom"
    open_page(at, "train")
    no_exception(at)
    assert any("out of memory" in e.value for e in at.error)
    at.session_state["train_run"] = "crashed"
    at.run()
    assert any("interrupted" in w.value for w in at.warning)
    assert not at.button(key="train_resume").disabled


def test_compile_warm_up_is_shown(_dashboard_isolation):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    run = RunStore(_dashboard_isolation).create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), compile=True), "compiled")
    run.append_metrics([{"kind": "event", "event": "compile", "step": 1, "epoch": 0, "time": 41.5, "seconds": 41.5,
                         "message": "torch.compile warm-up and first step took 41.5 s"}])
    run.write_status("stopped", "stopped at epoch 0.01")
    at = new_app()
    at.session_state["train_run"] = "compiled"
    open_page(at, "train")
    no_exception(at)
    assert any("torch.compile warm-up and first step took 41.5 s" in c.value for c in at.caption)


def test_runs_page_health_badges_command_flops_and_references(_dashboard_isolation):
    from wrn_core.cli import command_for
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.reference import OFFICIAL_LOG_LABEL, PAPER_CAPTION
    from wrn_core.store import RunStore

    store = RunStore(_dashboard_isolation)
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2)
    add_epochs(store.create(config, "healthy"), test_acc=0.5)
    broken = store.create(config.replace(seed=1), "chance")
    add_epochs(broken, test_acc=0.1)
    broken.write_status("finished", "finished 2 epochs", best_test_acc=0.1, params=77850)

    at = open_page(new_app(), "runs")  # the newest run, "chance", is shown
    no_exception(at)
    badges = [md.value for md in at.markdown if "-badge[" in md.value]
    assert any(b.startswith(":red-badge[") and "at chance" in b for b in badges), badges
    assert any("BatchNorm" in c.value for c in at.caption)  # the advice under the badge
    shown = [c.value.replace(" \\\n  ", " ") for c in at.code]  # one flag per line on the page
    assert shown == [command_for(config.replace(seed=1), runs_dir=str(_dashboard_isolation))]
    assert at.code[0].language == "bash"
    assert any(PAPER_CAPTION in c.value for c in at.caption)
    params_chart = plotly_specs(at)[1]
    # The paper's CIFAR-10 points stand only beside CIFAR-10 runs; these two trained on synthetic shapes.
    assert not any(t.get("name") == PAPER_CAPTION for t in params_chart["data"])

    at.radio(key="runs_v_x").set_value("flops").run()
    at.toggle(key="runs_v_reference").set_value(True).run()
    no_exception(at)
    curves = plotly_specs(at)[0]
    assert curves["layout"]["xaxis3"]["title"]["text"].startswith("training FLOPs")
    reference = [t for t in curves["data"] if t.get("name") == OFFICIAL_LOG_LABEL]
    assert len(reference) == 1 and len(reference[0]["x"]) == 200
    assert any("Sergey Zagoruyko" in c.value for c in at.caption)  # the attribution
    at.radio(key="runs_v_x").set_value("time").run()
    no_exception(at)
    assert not [t for t in plotly_specs(at)[0]["data"] if t.get("name") == OFFICIAL_LOG_LABEL]
    assert any("epochs, images seen or FLOPs only" in c.value for c in at.caption)

    # The Train page's live view shows the same badge for the watched run, and none for a healthy one.
    at.session_state["train_run"] = "chance"
    open_page(at, "train")
    no_exception(at)
    assert any("at chance" in md.value for md in at.markdown)
    at.session_state["train_run"] = "healthy"
    at.run()
    assert any(":green-badge[" in md.value and "No training problems" in md.value for md in at.markdown)
    assert not any("at chance" in md.value for md in at.markdown)
    # A run with too few steps to judge says so, never "No training problems found".
    short = store.create(config.replace(seed=2), "short")
    short.append_metrics([{"kind": "epoch", "epoch": 1, "step": 5, "images_seen": 640, "time": 1.0, "train_loss": 2.3,
                           "train_acc": 0.1, "test_loss": 2.3, "test_acc": 0.1}])
    at.session_state["train_run"] = "short"
    at.run()
    assert any(":blue-badge[" in md.value and "too early to judge" in md.value for md in at.markdown)
    assert not any("No training problems" in md.value for md in at.markdown)


def test_resume_and_extend_controls_on_the_train_and_runs_pages(_dashboard_isolation):
    # The same controls on both pages: disabled (saying why) until epochs are added, then a resume each.
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50,
                         epochs=1, batch_size=32, eval_batch_size=50, device="cpu")
    RunStore(_dashboard_isolation).create(config, "done").write_status("finished", "finished 1 epoch", epoch=1)
    at = new_app()
    at.session_state["train_run"] = "done"
    for page, prefix, epochs in (("runs", "runs_", 1), ("train", "train_", 2)):
        open_page(at, page)
        no_exception(at)
        button = at.button(key=prefix + "resume")
        assert button.disabled and f"finished its {epochs} epochs" in button.help, button.help
        assert at.radio(key=prefix + "resume_extend").disabled  # nothing to add yet
        at.number_input(key=prefix + "resume_extra").set_value(1).run()
        assert not at.button(key=prefix + "resume").disabled and not at.radio(key=prefix + "resume_extend").disabled
        at.button(key=prefix + "resume").click().run()
        no_exception(at)
        assert not at.error, [e.value for e in at.error]
        if page == "runs":
            assert [x.value for x in at.success] == ["Resumed done; watch it on the Train page."]
        assert at.session_state["train_run"] == "done"
        assert wait_status(_dashboard_isolation, "done", ("finished", "failed"), timeout=120) == "finished"
        assert json.loads((_dashboard_isolation / "done" / "status.json").read_text())["epoch"] == epochs + 1


def test_architecture_shows_the_measured_peak_of_a_run_of_that_model(_dashboard_isolation):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    run = RunStore(_dashboard_isolation).create(
        TrainConfig(model=WRNConfig(depth=16, widen_factor=8), batch_size=128, device="cuda"), "gpu-run")
    run.append_metrics([{"kind": "system", "step": 10, "epoch": 0.1, "time": 1.0, "cuda_peak_mb": 2345.0, "rss_mb": 3000.0}])
    run.write_status("stopped", "stopped", device="cuda")
    at = new_app()
    no_exception(at)
    assert any("2.29 GiB" in c.value and "peak CUDA memory" in c.value and "gpu-run" in c.value for c in at.caption)


# ---------------------------------------------------------------------------------------------
# Sweep page


def heatmap_z(at: AppTest) -> list[list]:
    spec = next(s for s in plotly_specs(at) if s["data"] and s["data"][0].get("type") == "heatmap")
    return spec["data"][0]["z"]


def sweep_statuses(runs_dir: Path, name: str) -> dict[str, str]:
    from wrn_core.store import RunStore
    from wrn_core.sweeps import cell_statuses, load_sweep

    return cell_statuses(RunStore(runs_dir), load_sweep(runs_dir, name))


def wait_sweep(at: AppTest, runs_dir: Path, name: str, done, timeout: float = 300) -> dict[str, str]:
    """Re-run the page until done(statuses) holds; fails after `timeout` seconds (a deadline, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
        no_exception(at)
        statuses = sweep_statuses(runs_dir, name)
        if done(statuses):
            return statuses
    pytest.fail(f"sweep {name} did not get there within {timeout} s: {sweep_statuses(runs_dir, name)}")


def test_sweep_page_without_sweeps_and_preflight():
    at = open_page(new_app(), "sweep")
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key=S + "open").value == NEW_SWEEP
    assert at.multiselect(key=S + "blocks").value == [1, 2] and at.multiselect(key=S + "widen").value == [1, 2]
    assert list(at.multiselect(key=S + "widen").options) == ["1", "2", "4", "8", "10", "12"]
    assert at.button(key="sweep_launch").label == "Launch"
    assert S + "n" not in [w.key for w in at.number_input]  # N and k come from the grid, not the form
    assert any("Pre-flight" in i.value for i in at.info)

    # A preset fills the base config, as on the Train page.
    paper = next(p for p in at.selectbox(key=S + "preset").options if p.startswith("Paper"))
    at.selectbox(key=S + "preset").set_value(paper).run()
    assert at.number_input(key=S + "epochs").value == 200 and at.number_input(key=S + "dropout").value == 0.3

    set_tiny_sweep(at, "plan", blocks=(1, 2), widen=(1,))
    at.button(key="sweep_preflight").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    plan = next(d.value for d in at.dataframe)
    assert list(plan["run"]) == ["plan-n1-k1-s0", "plan-n2-k1-s0"]  # the name does not matter to a plan
    assert list(plan["params"]) == [77850, 175066] and plan["fits"].all() and (plan["predicted (s)"] > 0).all()
    assert any("2 cell(s)" in md.value and "predicted" in md.value for md in at.markdown)
    at.multiselect(key=S + "widen").set_value([1, 2]).run()
    assert any("form changed" in c.value for c in at.caption)  # a stale plan says so


def test_sweep_bad_input_is_one_line_and_keeps_the_form():
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "nok", widen=())
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "widen factor" in at.error[0].value and "\n" not in at.error[0].value
    assert at.multiselect(key=S + "widen").value == [] and at.text_input(key=S + "name").value == "nok"
    at.button(key="sweep_preflight").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "widen factor" in at.error[0].value  # Pre-flight says the same, once

    at.multiselect(key=S + "widen").set_value([1])
    at.text_input(key=S + "name").set_value("bad/name").run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and "invalid sweep name 'bad/name'" in at.error[0].value  # the field's words
    assert at.text_input(key=S + "name").value == "bad/name" and at.number_input(key=S + "epochs").value == 1
    assert at.selectbox(key=S + "open").value == NEW_SWEEP  # nothing was saved or opened


def test_tiny_sweep_end_to_end_stop_resume_and_reopen(_dashboard_isolation):
    runs_dir = _dashboard_isolation
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "grid")
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key=S + "open").value == "grid"  # the page opens the launched sweep
    assert any("Launched grid" in s.value for s in at.success)
    assert (runs_dir / "grid.sweep.json").exists()

    # Stop at once: the first cell stops, the others stay pending; Resume sweep continues.
    at.button(key="sweep_stop").click().run()
    no_exception(at)
    statuses = wait_sweep(at, runs_dir, "grid", lambda s: not set(s.values()) & {"queued", "running"}, timeout=120)
    assert list(statuses.values()).count("pending") >= 3, statuses
    at.run()
    assert not [b for b in at.button if b.key == "sweep_stop"]
    assert not any("Launched grid" in s.value for s in at.success)  # stopped: the launch is over
    at.button(key="sweep_resume").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == ["Resumed grid: its remaining cells train one after another."]

    statuses = wait_sweep(at, runs_dir, "grid", lambda s: set(s.values()) == {"finished"})
    assert list(statuses) == ["grid-n1-k1-s0", "grid-n1-k2-s0", "grid-n2-k1-s0", "grid-n2-k2-s0"]
    at.run()
    no_exception(at)
    assert not at.success, [s.value for s in at.success]  # every cell ended: no Launched, Resumed or Stopping left
    table = at.dataframe[0].value
    assert list(table["status"]) == ["finished"] * 4 and table["best test acc (%)"].notna().all()
    z = heatmap_z(at)
    assert len(z) == 2 and all(len(row) == 2 and all(v is not None for v in row) for row in z)
    assert any("4/4 cells ended" in p.proto.text for p in at.get("progress"))
    tradeoff = plotly_specs(at)[1]
    assert any(t.get("name") == "paper, 200 epochs" for t in tradeoff["data"])
    assert any(t.get("name") == "Pareto front" and t["x"] for t in tradeoff["data"])
    multiples = plotly_specs(at)[2]
    assert {t.get("xaxis") for t in multiples["data"] if t.get("y")} == {"x", "x2", "x3", "x4"}
    assert any("badge[" in md.value for md in at.markdown)  # training health of the cells

    # The heatmap switches metric, the trade-off its x axis, and the authors' curve can be overlaid.
    at.radio(key="sweep_v_metric").set_value("train_seconds").run()
    at.radio(key="sweep_v_x").set_value("macs").run()
    at.toggle(key="sweep_v_reference").set_value(True).run()
    no_exception(at)
    specs = plotly_specs(at)
    assert specs[0]["layout"]["title"]["text"].startswith("training time")
    assert specs[1]["layout"]["xaxis"]["title"]["text"] == "multiply-accumulates per image"
    assert sum(t.get("name") == "WRN-40-4, authors' log (CIFAR-10)" for t in specs[2]["data"]) == 4
    assert not [b for b in at.button if b.key in ("sweep_stop", "sweep_resume")]  # done: nothing to resume

    # Another session reopens it from the selector (the newest sweep opens by default).
    again = open_page(new_app(), "sweep")
    no_exception(again)
    assert again.selectbox(key=S + "open").options == [NEW_SWEEP, "grid"]
    assert again.selectbox(key=S + "open").value == "grid"
    assert list(again.dataframe[0].value["status"]) == ["finished"] * 4
    again.selectbox(key=S + "open").set_value(NEW_SWEEP).run()
    assert again.button(key="sweep_launch")
    again.selectbox(key=S + "open").set_value("grid").run()
    no_exception(again)
    assert all(v is not None for row in heatmap_z(again) for v in row)



def test_sweep_with_seeds_shows_spread_and_health_badges(_dashboard_isolation):
    """A saved 1 × 2 × 2-seed sweep whose cells were written straight into the run store (no training)."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore
    from wrn_core.sweeps import make_sweep, save_sweep

    store = RunStore(_dashboard_isolation)
    base = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2)
    sweep = make_sweep("seeds", base, [1], [1, 2], seeds=[0, 1])
    save_sweep(store.root, sweep)
    for cell, acc in zip(sweep.cells(), (0.5, 0.7, 0.1, 0.1)):  # k=2 stays at chance: a health finding
        run = store.create(cell.config, cell.run, sweep="seeds")
        add_epochs(run, test_acc=acc)
        run.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=acc, final_test_acc=acc, train_seconds=4.0)

    at = open_page(new_app(), "sweep")
    no_exception(at)
    assert at.selectbox(key=S + "open").value == "seeds"
    assert heatmap_z(at)[0] == [pytest.approx(60.0), pytest.approx(10.0)]  # the mean over the seeds, in percent
    heat = next(s for s in plotly_specs(at) if s["data"][0].get("type") == "heatmap")
    assert heat["data"][0]["text"][0] == ["60.0% ± 14.1", "10.0%"]
    tradeoff = plotly_specs(at)[1]
    means = next(t for t in tradeoff["data"] if t.get("name") == "mean ± std over seeds")
    assert means["error_y"]["visible"] and means["error_y"]["array"][0] == pytest.approx(14.142, abs=1e-3)
    multiples = plotly_specs(at)[2]
    assert sum(t.get("fill") == "tonexty" for t in multiples["data"]) == 2  # a band per (N, k)
    assert any("mean over the seeds" in c.value for c in at.caption)
    badges = [md.value for md in at.markdown if "-badge[" in md.value]
    assert any(":red-badge[" in b and "at chance" in b for b in badges), badges
    assert any("seeds-n1-k2-s0" in md.value for md in at.markdown)  # the badge names its cell
    assert not [b for b in at.button if b.key in ("sweep_stop", "sweep_resume")]  # every cell ended


def test_sweep_small_multiples_follow_cell_status(_dashboard_isolation):
    """The cached small multiples are rebuilt when a cell's status changes, even if its metrics do not."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore
    from wrn_core.sweeps import make_sweep, save_sweep

    store = RunStore(_dashboard_isolation)
    sweep = make_sweep("titles", TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2), [1], [1])
    save_sweep(store.root, sweep)
    run = store.create(sweep.cells()[0].config, sweep.cells()[0].run, sweep="titles")
    add_epochs(run, test_acc=0.5)
    run.write_status("stopped", "stopped at epoch 2")
    at = open_page(new_app(), "sweep")
    assert [a["text"] for a in plotly_specs(at)[2]["layout"]["annotations"]] == ["WRN-10-1 · stopped"]
    run.write_status("finished", "finished 2 epochs", best_test_acc=0.5)
    at.run()
    no_exception(at)
    assert [a["text"] for a in plotly_specs(at)[2]["layout"]["annotations"]] == ["WRN-10-1"]
