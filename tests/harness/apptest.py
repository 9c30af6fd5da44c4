"""The dashboard under streamlit.testing.v1.AppTest: open the app and its pages, read what they drew, fill the Train and Sweep forms."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .server import ROOT

APP = ROOT / "dashboard" / "app.py"
PAGES = {
    "architecture": "../pages/1_architecture.py",
    "train": "../pages/2_train.py",
    "runs": "../pages/3_runs.py",
    "sweep": "../pages/4_sweep.py",
}
F = "train_f_"  # the Train page's form keys
S = "sweep_f_"  # the Sweep page's form keys
NEW_SWEEP = "New sweep…"
TIMEOUT = 60  # seconds per script run; the first run imports torch and builds a model


def new_app() -> AppTest:
    """The app, run once (its landing page)."""
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def open_page(at: AppTest, page: str) -> AppTest:
    """Switch to a page of PAGES by its short name and run it."""
    return at.switch_page(PAGES[page]).run()


def no_exception(at: AppTest) -> None:
    """Assert the last run showed no exception (listing those it showed)."""
    assert not at.exception, [e.value for e in at.exception]


def metric_values(at: AppTest) -> list[str]:
    return [m.value for m in at.metric]


def plotly_specs(at: AppTest) -> list[dict]:
    """The figure (data, layout) of every plotly chart drawn, as dicts."""
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def set_tiny_run(at: AppTest, name: str) -> None:
    """A WRN-10-1 on 256 synthetic images, one epoch on the CPU: a few seconds."""
    values = {
        "n": 1,
        "k": 1,
        "synthetic_train": 256,
        "synthetic_test": 64,
        "epochs": 1,
        "batch_size": 32,
        "eval_batch_size": 64,
        "log_every": 2,
    }
    for key, value in values.items():
        at.number_input(key=F + key).set_value(value)
    at.selectbox(key=F + "dataset").set_value("synthetic")
    at.selectbox(key=F + "device").set_value("cpu")
    at.text_input(key=F + "name").set_value(name)
    at.run()


def set_tiny_sweep(at: AppTest, name: str, blocks=(1, 2), widen=(1, 2)) -> None:
    """N × k WRNs on 160 synthetic images, one epoch each on the CPU."""
    at.selectbox(key=S + "dataset").set_value("synthetic").run()  # draws the synthetic image counts
    values = {"synthetic_train": 160, "synthetic_test": 50, "epochs": 1, "batch_size": 32, "eval_batch_size": 50,
              "log_every": 2, "seeds": 1}
    for key, value in values.items():
        at.number_input(key=S + key).set_value(value)
    at.selectbox(key=S + "device").set_value("cpu")
    at.multiselect(key=S + "blocks").set_value(list(blocks))
    at.multiselect(key=S + "widen").set_value(list(widen))
    at.text_input(key=S + "name").set_value(name)
    at.run()


def wait_status(runs_dir: Path, name: str, wanted: tuple[str, ...], timeout: float = 60) -> str:
    """The run's status once it is one of `wanted`; fails after `timeout` seconds (a deadline, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = runs_dir / name / "status.json"
        if path.exists():
            status = json.loads(path.read_text())["status"]
            if status in wanted:
                return status
        time.sleep(0.2)
    pytest.fail(f"run {name} did not reach {wanted} within {timeout} s")


def add_epochs(run, test_acc: float, epochs: int = 2) -> None:
    """Epoch records whose train accuracy climbs (30%, 60%, ...) after 200 steps each."""
    run.append_metrics([
        {"kind": "epoch", "epoch": e, "step": 200 * e, "images_seen": 6400 * e, "time": float(e),
         "train_loss": 2.0 / e, "train_acc": 0.3 * e, "test_loss": 2.3, "test_acc": test_acc}
        for e in range(1, epochs + 1)
    ])
