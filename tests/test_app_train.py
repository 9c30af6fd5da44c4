"""The Train page as a first-time user meets it: extend defaults, launch refusals, messages that
belong to their run, the config summary, the resume row and the small labels."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.apptest import APP, F, TIMEOUT, wait_status
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.presets import FAST_GPU
from wrn_core.store import RunStore

TINY = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50,
                   epochs=1, batch_size=32, eval_batch_size=50, device="cpu")


@pytest.fixture
def runs_dir(_dashboard_isolation):
    """The fresh runs directory conftest gives this module (no job manager or trainer outlives a test)."""
    return _dashboard_isolation


def train_page(watch: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if watch:
        at.session_state["train_run"] = watch
    at.run()
    at.switch_page("../pages/2_train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def tiny_form(at: AppTest, name: str) -> None:
    for key, value in {"n": 1, "k": 1, "synthetic_train": 160, "synthetic_test": 50, "epochs": 1, "batch_size": 32,
                       "eval_batch_size": 50, "log_every": 2}.items():
        at.number_input(key=F + key).set_value(value)
    at.selectbox(key=F + "dataset").set_value("synthetic")
    at.selectbox(key=F + "device").set_value("cpu")
    at.text_input(key=F + "name").set_value(name)
    at.run()


def finished(runs: Path, name: str, **changes) -> None:
    RunStore(runs).create(TINY.replace(**changes), name).write_status("finished", "finished 1 epoch", epoch=1)


def wait_finished(runs: Path, name: str) -> None:
    """The launched job ran to its end and that end is `finished` (a failed job fails the test with its message)."""
    if wait_status(runs, name, ("finished", "failed", "stopped", "interrupted", "diverged"), timeout=120) != "finished":
        pytest.fail(f"run {name} ended {json.loads((runs / name / 'status.json').read_text())}")


def texts(elements) -> list[str]:
    return [e.value for e in elements]


# -- extending a one-cycle run ---------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, mode", [("onecycle", "restart"), ("cosine", "restart"), ("step", "continue")])
def test_resume_preselects_restart_where_the_schedule_ended_at_lr_0(runs_dir, schedule, mode):
    finished(runs_dir, "done", schedule=schedule)
    at = train_page("done")
    assert at.radio(key="train_resume_extend").value == mode
    said = any("ended at lr 0" in c for c in texts(at.caption))
    assert said == (mode == "restart")  # said next to the choice before anything trains


def test_choosing_continue_on_a_one_cycle_run_warns_before_resume(runs_dir):
    finished(runs_dir, "done", schedule="onecycle")
    at = train_page("done")
    at.number_input(key="train_resume_extra").set_value(2).run()
    at.radio(key="train_resume_extend").set_value("continue").run()
    assert any("continuing trains the added epochs at lr 0" in w for w in texts(at.warning))


# -- the resume row says why Resume is off, and the config summary sits above Launch ---------------------

def test_a_disabled_resume_says_why_in_a_caption(runs_dir):
    finished(runs_dir, "done")
    at = train_page("done")
    assert at.button(key="train_resume").disabled
    assert any(c.startswith("Resume is off: it already finished its 1 epochs") for c in texts(at.caption))


def test_a_one_line_summary_of_the_config_above_launch(runs_dir):
    at = train_page()
    tiny_form(at, "")
    summary = [c for c in texts(at.caption) if c.startswith("**Launch trains**")]
    assert summary == ["**Launch trains** WRN-10-1 · Synthetic shapes (built in) · 1 epochs · batch 32 · cpu"]
    at.number_input(key=F + "batch_size").set_value(64).run()
    assert any("· batch 64 ·" in c for c in texts(at.caption))


# -- a value the browser would refuse is refused by the server, in one line ------------------------------

def test_zero_epochs_is_refused_not_replaced_by_the_last_valid_value(runs_dir):
    at = train_page()
    tiny_form(at, "zero")
    at.number_input(key=F + "epochs").set_value(0).run()
    assert any("epochs must be >= 1, got 0" in e for e in texts(at.error))  # before Launch is pressed
    at.button(key="train_launch").click().run()
    assert not (runs_dir / "zero").exists()
    assert any("epochs must be >= 1, got 0" in e for e in texts(at.error))


# -- the memory pre-flight before Launch, and the reason a job failed -------------------------------------

NEED = "predicted training memory 9,000 MiB against 100 MiB free on RAM"


def test_launch_refuses_a_run_predicted_not_to_fit_unless_forced(runs_dir, monkeypatch):
    import wrn_core.engine.resume as resume
    from wrn_core.jobs import JobManager

    monkeypatch.setattr(resume, "memory_refusal", lambda config: NEED)
    forced = []
    submit = JobManager.submit
    monkeypatch.setattr(JobManager, "submit", lambda self, *a, **kw: forced.append(kw.get("force")) or submit(self, *a, **kw))
    at = train_page()
    tiny_form(at, "big")
    at.button(key="train_launch").click().run()
    assert not (runs_dir / "big").exists() and not at.success
    assert any(NEED in e and "launch anyway" in e for e in texts(at.error))
    at.checkbox(key="train_force").check().run()
    at.button(key="train_launch").click().run()
    assert forced == [True] and (runs_dir / "big").exists()
    assert any(s == "Launched big" for s in texts(at.success))
    wait_finished(runs_dir, "big")


def test_a_failed_job_shows_the_last_line_of_its_log(runs_dir):
    RunStore(runs_dir).create(TINY, "broke").write_status(
        "failed", f"the training process exited with code 2 before recording an end (see {runs_dir}/broke/job.log)")
    (runs_dir / "broke" / "job.log").write_text(f"error: {NEED}: it would not fit; use --force\n\n")
    at = train_page("broke")
    assert any(c == f"job.log ends: error: {NEED}: it would not fit; use --force" for c in texts(at.caption))


# -- messages belong to the run they speak of -----------------------------------------------------------

def test_launched_goes_when_another_run_is_watched(runs_dir):
    finished(runs_dir, "other")
    at = train_page()
    tiny_form(at, "new")
    at.button(key="train_launch").click().run()
    assert "Launched new" in texts(at.success)
    at.session_state["train_run"] = "other"
    at.run()
    assert "Launched new" not in texts(at.success)
    wait_finished(runs_dir, "new")
    at.session_state["train_run"] = "new"
    at.run()
    assert "Launched new" not in texts(at.success)  # it has ended: its status speaks now


def test_a_resume_message_stays_with_its_run(runs_dir):
    finished(runs_dir, "done", schedule="onecycle")
    finished(runs_dir, "other")
    at = train_page("done")
    at.number_input(key="train_resume_extra").set_value(1).run()
    at.radio(key="train_resume_extend").set_value("continue").run()
    at.button(key="train_resume").click().run()
    assert any("ended at learning rate 0" in w for w in texts(at.warning))
    assert json.loads((runs_dir / "done" / "status.json").read_text())["status"] in ("queued", "running")  # not the old end
    wait_finished(runs_dir, "done")
    assert json.loads((runs_dir / "done" / "status.json").read_text())["epoch"] == 2  # the extra epoch was trained
    at.session_state["train_run"] = "other"
    at.run()
    assert not any("ended at learning rate 0" in w for w in texts(at.warning))


# -- small labels ----------------------------------------------------------------------------------------

def test_momentum_is_labelled_for_the_optimizer_in_use(runs_dir):
    at = train_page()
    at.selectbox(key=F + "optimizer").set_value("sgd").run()
    assert at.number_input(key=F + "momentum").label == "momentum"
    at.selectbox(key=F + "optimizer").set_value("adam").run()
    assert at.number_input(key=F + "momentum").label == "β1"


def test_the_watching_run_picker_has_a_visible_label(runs_dir):
    finished(runs_dir, "done")
    at = train_page("done")
    picker = [s for s in at.selectbox if s.label == "Watching run"]
    assert len(picker) == 1 and picker[0].proto.label_visibility.value == picker[0].proto.label_visibility.VISIBLE


def test_a_gpu_preset_on_a_cpu_only_machine_says_it_will_be_slow(runs_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the GPU preset suits it")
    at = train_page()
    assert not any("CUDA GPU recipe" in w for w in texts(at.warning))
    at.selectbox(key=F + "preset").set_value(FAST_GPU).run()
    assert any("CUDA GPU recipe" in w and "no CUDA GPU" in w for w in texts(at.warning))


def test_a_queued_run_is_marked_with_an_icon_that_renders(runs_dir):
    run = RunStore(runs_dir).create(TINY, "waiting", hold="queued")  # this process holds it, queued
    try:
        at = train_page()
        marks = [c for c in texts(at.sidebar.caption) if "waiting" in c]
        assert marks and marks[0].startswith(":material/pause_circle:") and "⏸" not in marks[0]
    finally:
        run.release()


def test_restart_stays_preselected_after_the_run_trained_in_between(runs_dir):
    """The choice is not drawn while the run trains, and Streamlit forgets an undrawn widget's value."""
    store = RunStore(runs_dir)
    store.create(TINY.replace(schedule="onecycle"), "done").write_status("stopped", "stopped at epoch 0.5", epoch=0)
    at = train_page("done")
    assert at.radio(key="train_resume_extend").value == "restart"
    run = store.get("done")
    run.acquire("training")  # a trainer holds it: the page shows Stop, and no resume controls
    run.write_status("running", "training")
    at.run()
    assert not at.radio  # not drawn while it trains
    run.write_status("finished", "finished 1 epoch", epoch=1)
    run.release()
    at.run()
    assert at.radio(key="train_resume_extend").value == "restart"


# -- a message is in view when it is made and goes once its cause is gone -----------------------------------

def test_a_corrected_value_takes_its_error_away(runs_dir):
    at = train_page()
    tiny_form(at, "fixed")
    at.number_input(key=F + "epochs").set_value(0).run()
    at.button(key="train_launch").click().run()
    # Said once, above Launch, though Launch was pressed too.
    assert [e for e in texts(at.error) if "epochs must be" in e] == ["epochs must be >= 1, got 0"]
    at.number_input(key=F + "epochs").set_value(2).run()
    assert not at.error
    assert any(c.startswith("**Launch trains**") and "· 2 epochs ·" in c for c in texts(at.caption))


def test_a_launch_refusal_goes_when_the_form_changes(runs_dir):
    at = train_page()
    tiny_form(at, "bad/name")
    at.button(key="train_launch").click().run()
    assert len(at.error) == 1 and "invalid run name 'bad/name'" in at.error[0].value
    at.run()  # a rerun of the same form (the live view polls) keeps it
    assert len(at.error) == 1
    at.text_input(key=F + "name").set_value("good-name").run()
    assert not at.error


def test_a_cifar_error_goes_when_the_dataset_is_synthetic_again(runs_dir, tmp_path):
    at = train_page()
    tiny_form(at, "")
    at.selectbox(key=F + "dataset").set_value("cifar10").run()
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "empty")).run()
    # Before Launch is pressed, and said once after it.
    assert len(at.error) == 1 and at.error[0].value.startswith("CIFAR-10 not found in")
    at.button(key="train_launch").click().run()
    assert len(at.error) == 1 and at.error[0].value.startswith("CIFAR-10 not found in")
    at.selectbox(key=F + "dataset").set_value("synthetic").run()
    assert not at.error


def test_the_cifar_hint_links_to_the_cifar_page(runs_dir, tmp_path):
    at = train_page()
    at.selectbox(key=F + "dataset").set_value("cifar10").run()
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "empty")).run()
    message = at.error[0].value
    # An <autolink>: Markdown leaves its ~ alone (escaped, the backslash landed in the link as %5C).
    assert "<https://www.cs.toronto.edu/~kriz/cifar.html>" in message and "\\~" not in message


def test_each_dataset_keeps_its_own_path(runs_dir, tmp_path):
    at = train_page()
    at.selectbox(key=F + "dataset").set_value("folder").run()
    assert at.text_input(key=F + "data_dir").value == ""
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "images")).run()
    at.selectbox(key=F + "dataset").set_value("cifar10").run()
    from wrn_core.data import DEFAULT_DATA_DIR

    assert at.text_input(key=F + "data_dir").value == DEFAULT_DATA_DIR  # not the image folder
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "cifar")).run()
    at.selectbox(key=F + "dataset").set_value("folder").run()
    assert at.text_input(key=F + "data_dir").value == str(tmp_path / "images")
    at.selectbox(key=F + "dataset").set_value("cifar10").run()
    assert at.text_input(key=F + "data_dir").value == str(tmp_path / "cifar")


def test_the_paper_preset_says_its_time_and_missing_data_before_launch(runs_dir, tmp_path, monkeypatch):
    import sys

    import torch

    import wrn_core.sweeps
    from wrn_core.presets import PAPER
    from wrn_core.sweeps.probe import Probe

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the prediction would be timed there")
    timed = []

    def fake_probe(sweep, steps=3, measure_startup=True, import_seconds=None):
        # Times whatever model it is asked about, as the real probe does (0.5 s a step, 1 ms a test image): the
        # default preset's WRN-10-1 is timed too, as soon as the page opens.
        model, batch = sweep.base.model, sweep.base.batch_size
        timed.append(model.name)
        return Probe({(model.blocks, model.widen_factor, model.dropout, batch): 0.5},
                     {(model.blocks, model.widen_factor, model.dropout): 0.001}, 0.0)

    monkeypatch.setattr(wrn_core.sweeps, "probe", fake_probe)
    monkeypatch.setattr(sys.modules["wrn_core.sweeps.probe"], "interpreter_seconds", lambda: 2.0)
    at = train_page()
    at.selectbox(key=F + "preset").set_value(PAPER).run()
    at.text_input(key=F + "data_dir").set_value(str(tmp_path / "empty")).run()
    assert any(e.startswith("CIFAR-10 not found in") for e in texts(at.error))
    deadline = time.monotonic() + 60
    while not any("Predicted time" in w for w in texts(at.warning)) and time.monotonic() < deadline:
        time.sleep(0.2)  # the probe runs beside the page; a rerun shows its answer
        at.run()
    # 2 s start-up + 200 epochs × (390 steps × 0.5 s + 10,000 test images × 1 ms) = 41,002 s, past an hour: a warning.
    assert any("Predicted time **≈ 11h 23m** on the CPU" in w for w in texts(at.warning)), texts(at.warning)
    assert timed[-1] == "WRN-16-8"  # after the default preset's WRN-10-1
    probes = len(timed)
    at.number_input(key=F + "epochs").set_value(2).run()  # the same model: nothing timed again
    assert any("Predicted time **≈ 6m 52s**" in c for c in texts(at.caption)) and len(timed) == probes


def test_the_live_read_outs_say_one_position(runs_dir):
    import dataclasses

    from wrn_core.store.records import Progress

    run = RunStore(runs_dir).create(TINY.replace(epochs=2), "live", hold="training")  # this process trains it
    try:
        # status.json as written at the start; the heartbeat says the first epoch is being evaluated.
        run.write_status("running", "training", epochs=2, epoch=0, step=0, images_seen=0)
        run.write_heartbeat(dataclasses.asdict(Progress("live", "evaluating", 0, 2, 9, 18, 9, 288, 3.0, 100.0, 2.0,
                                                        2.0, 0.2, None, "cpu")))
        at = train_page("live")
        bar = at.get("progress")[0].proto.text
        side = [c for c in texts(at.sidebar.caption) if "**live**" in c]
        assert bar.startswith("evaluating · epoch 1/2 · step 9/18 ·")
        assert side == [":material/play_circle: **live**: evaluating · epoch 1/2 · step 9/18"]
        assert any("images seen 288" in c and "training time 3.0s" in c for c in texts(at.caption))
        shown = texts(at.caption) + texts(at.markdown) + texts(at.sidebar.caption)
        assert not any("None" in text for text in shown)
    finally:
        run.release()


def test_long_predictions_read_in_days():
    from dashboard.formatting import fmt_seconds

    assert fmt_seconds(41_002) == "11h 23m"
    assert fmt_seconds(200 * 86_400 + 3_600) == "200d 01h"  # not "4801h 00m"
