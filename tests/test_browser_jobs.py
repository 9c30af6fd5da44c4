"""Training jobs through the dashboard in a real browser: stop and resume, the live view in sight, a server killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from harness.fixtures import require_browser

require_browser()

from harness.browser import ALL_FOUR_PANELS_JS, NO_EXCEPTION, new_page, open_page, set_number, settle, shot  # noqa: E402
from harness.fixtures import browser, page, server  # noqa: E402,F401 - fixtures are found by name
from harness.server import app_exceptions, start_streamlit, stop_streamlit  # noqa: E402

from polling import wait_until

from playwright.sync_api import expect

from wrn_core.store import RunStore

HAS_POINTS_JS = "() => [...document.querySelectorAll('.js-plotly-plot')].some(d => (d.data || []).some(t => t.x && t.x.length > 0))"


def status_of(runs, name: str) -> str | None:
    path = runs / name / "status.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def wait_status(runs, name: str, wanted: tuple[str, ...], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_of(runs, name) in wanted:
            return status_of(runs, name)
        time.sleep(0.2)
    pytest.fail(f"{name} did not reach {wanted} within {timeout} s (status {status_of(runs, name)})")


def last_step(run) -> int:
    return max((r["step"] for r in run.read_metrics() if r["kind"] == "step"), default=0)


def wait_for_step(run, step: int, timeout: float = 120) -> None:
    """Poll the run's metrics until it has logged `step`."""
    deadline = time.monotonic() + timeout
    while last_step(run) < step:
        if time.monotonic() > deadline:
            pytest.fail(f"{run.name} did not log step {step} within {timeout} s (last {last_step(run)})")
        time.sleep(0.2)


def name_the_run(page, name: str) -> None:
    field = page.get_by_label("run name (optional)")
    field.fill(name)
    field.press("Enter")
    settle(page)


def test_quick_cpu_demo_stop_then_resume_records_every_epoch_once(server, page):
    """The Quick CPU demo preset as it is: Launch, Stop while it trains, Resume, to finished."""
    runs = server["runs"]
    open_page(page, f"{server['url']}/train", "Train")
    name_the_run(page, "demo-stop")
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text("Launched demo-stop")).to_be_visible(timeout=30_000)
    page.wait_for_function(HAS_POINTS_JS, timeout=90_000)
    wait_status(runs, "demo-stop", ("running",))
    page.get_by_role("button", name="Stop").click()
    assert wait_status(runs, "demo-stop", ("stopped", "finished")) == "stopped"
    run = RunStore(runs).get("demo-stop")
    deadline = time.monotonic() + 30
    while run.owner() is not None and time.monotonic() < deadline:
        time.sleep(0.1)  # its process is exiting
    assert run.has_checkpoint() and run.owner() is None  # checkpointed, and its process has let go
    expect(page.get_by_role("button", name="Resume")).to_be_enabled(timeout=30_000)
    page.get_by_role("button", name="Resume").click()
    assert wait_status(runs, "demo-stop", ("finished",), timeout=600) == "finished"
    page.wait_for_function(ALL_FOUR_PANELS_JS, timeout=60_000)
    records = run.read_metrics()
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    assert epochs == list(range(1, 9)), epochs  # the preset's 8 epochs, each exactly once
    steps = [r["step"] for r in records if r["kind"] == "step"]
    assert steps == sorted(set(steps))
    assert [r["kind"] for r in records].count("resume") == 1
    assert page.locator(NO_EXCEPTION).count() == 0
    shot(page, "train-stop-resume")


def test_after_launch_the_live_chart_is_in_view(server, browser):
    """On a 1440×900 screen, pressing Launch leaves the four live charts in view without scrolling."""
    page = new_page(browser)  # 1440 x 900
    try:
        open_page(page, f"{server['url']}/train", "Train")
        set_number(page, "synthetic train images", 256)
        set_number(page, "epochs", 1)
        name_the_run(page, "in-view")
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_text("Launched in-view")).to_be_visible(timeout=30_000)
        page.wait_for_function(HAS_POINTS_JS, timeout=90_000)
        settle(page)
        # Measured in one script call: the live view redraws every second, and a locator's element can be
        # replaced between finding it and measuring it.
        page.wait_for_function("() => { const e = document.querySelector('.js-plotly-plot');"
                               " return e !== null && e.getBoundingClientRect().height > 0; }")
        box = page.evaluate("() => { const r = document.querySelector('.js-plotly-plot').getBoundingClientRect();"
                            " return {x: r.x, y: r.y, width: r.width, height: r.height}; }")
        assert box["y"] >= 0 and box["x"] >= 0, box
        assert box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1440, box
        shot(page, "train-after-launch-1440x900")
    finally:
        page.context.close()


def test_a_killed_dashboard_leaves_its_run_training_and_a_new_one_shows_it(tmp_path, browser):
    runs = tmp_path / "runs"
    runs.mkdir()
    log_path = tmp_path / "streamlit.log"
    first, url, _ = start_streamlit(runs, log_path)
    context = browser.new_context(viewport={"width": 1500, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(30_000)
    second = None
    try:
        open_page(page, f"{url}/train", "Train")
        set_number(page, "synthetic train images", 1000)
        set_number(page, "epochs", 500)  # still training when the second dashboard looks: it stops it
        name_the_run(page, "survivor")
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_text("Launched survivor")).to_be_visible(timeout=30_000)
        wait_status(runs, "survivor", ("running",))
        run = RunStore(runs).get("survivor")
        wait_for_step(run, 1)
        trainer = run.owner().pid
        assert trainer != first.pid
        os.kill(first.pid, signal.SIGKILL)  # the dashboard dies; its training process must not
        first.wait(timeout=30)
        wait_for_step(run, last_step(run) + 1)  # it goes on training without its dashboard
        assert status_of(runs, "survivor") == "running" and run.owner().pid == trainer

        second, url, _ = start_streamlit(runs, log_path)
        open_page(page, f"{url}/train", "Train")
        # Live: the restarted dashboard watches the run it did not start, and can stop it.
        expect(page.get_by_text("survivor").first).to_be_visible()
        page.wait_for_function(HAS_POINTS_JS, timeout=60_000)
        wait_until(lambda: any(r["kind"] == "epoch" for r in run.read_metrics()), "survivor's first epoch",
                   timeout=300, interval=0.2)
        expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Stop").click()
        assert wait_status(runs, "survivor", ("stopped", "finished")) == "stopped"
        assert status_of(runs, "survivor") == "stopped" and run.has_checkpoint()
        page.wait_for_function(ALL_FOUR_PANELS_JS, timeout=60_000)
        epochs = [r["epoch"] for r in run.read_metrics() if r["kind"] == "epoch"]
        assert epochs and epochs == list(range(1, len(epochs) + 1))
        assert page.locator(NO_EXCEPTION).count() == 0
        shot(page, "train-after-dashboard-restart")
    finally:
        context.close()
        if first.poll() is None:
            first.kill()
        if second is not None:
            stop_streamlit(second)
    assert not app_exceptions(log_path), log_path.read_text()
