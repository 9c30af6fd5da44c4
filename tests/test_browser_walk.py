"""A first-time user's whole walk in Chromium on a fresh runs directory: Architecture compare,
a Quick CPU demo Launch, Stop, Resume, an extension, the Runs overlay with smoothing, Delete, a 2 × 2 sweep, reopen.

It asserts no exception and no stale message on any page, and the facts the walk relies on: the extension
trains at lr > 0, the smoothed Runs chart keeps a raw test curve, and Delete leaves no ghost ticks.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, chromium, new_page, open_page, set_number, settle, shot  # noqa: E402
from harness.server import serving  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

TRACEBACK = "text=Traceback"


def status_of(runs: Path, name: str) -> str | None:
    path = runs / name / "status.json"
    return json.loads(path.read_text())["status"] if path.exists() else None


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll condition() until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def clean(page) -> None:
    """No Streamlit exception box and no traceback text on the page now."""
    assert page.locator(NO_EXCEPTION).count() == 0
    assert page.locator(TRACEBACK).count() == 0


# The walk's run: 4 steps an epoch, long enough (about 15 s here) that a Stop pressed once it runs lands before its end.
WALK_EPOCHS = 12


def fill_tiny_form(page, name: str, epochs: int) -> None:
    """The Train form, tiny: a few synthetic images, small batches, the run name."""
    set_number(page, "synthetic train images", 128)
    set_number(page, "synthetic test images", 32)
    set_number(page, "epochs", epochs)
    set_number(page, "batch size", 32)
    set_number(page, "eval batch size", 32)
    set_number(page, "log every (steps)", 1)
    field = page.get_by_label("run name (optional)")
    field.fill(name)
    field.press("Enter")
    settle(page)


# Whether the runs table's row at aria-rowindex `row` is ticked.
ROW_TICKED_JS = ("row => document.querySelector('[data-testid=\"stDataFrame\"] [role=\"row\"][aria-rowindex=\"' + row + '\"]')"
                 ".getAttribute('aria-selected') === 'true'")


def row_marker(page, name: str) -> tuple[int, float, float]:
    """(aria-rowindex, x, y) of the row marker of the runs table's row that shows this run (found by its
    text; the grid itself is a canvas)."""
    cell = page.locator('[role="gridcell"]', has_text=name).first
    row = int(cell.evaluate("e => e.parentElement.getAttribute('aria-rowindex')"))  # 1 is the header
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    return row, box["x"] + 18, box["y"] + 35 * (row - 1) + 17


def tick_row(page, name: str) -> None:
    """Tick (or untick) the runs table's row that shows this run, and wait until the table shows it.

    Waiting for the row itself, not only for a rerun: the sidebar's live view reruns every second, so
    settle() may see one of its runs end while a loaded browser has not yet handled the click (it can
    take seconds); the click is not lost (test_a_click_while_a_live_view_reruns_is_taken), only late.
    """
    row, x, y = row_marker(page, name)
    ticked = page.evaluate(f"({ROW_TICKED_JS})", row)
    page.mouse.click(x, y)
    page.wait_for_function(f"row => ({ROW_TICKED_JS})(row) === {'false' if ticked else 'true'}", arg=row,
                           timeout=60_000)
    settle(page)


def ticked_rows(page) -> list[str]:
    """The run names (first cell) of the runs table's ticked rows."""
    rows = page.locator('[data-testid="stDataFrame"]').first.locator('[role="row"][aria-selected="true"]').all()
    return [r.locator('[role="gridcell"]').first.inner_text() for r in rows]


@pytest.fixture
def walk(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    with serving(runs, tmp_path / "streamlit.log") as url, chromium() as browser:
        yield new_page(browser, 1500, 1000, 30_000), url, runs


def test_first_time_users_walk(walk):
    page, url, runs = walk

    # Architecture, reached by its own name, then compare: A is the model just set.
    open_page(page, f"{url}/architecture", "Architecture")
    expect(page.get_by_text("Page not found")).to_have_count(0)
    page.get_by_text("Compare two configs").click()
    expect(page.get_by_text("36,479,194").first).to_be_visible(timeout=60_000)
    settle(page)
    clean(page)
    assert page.get_by_text("WRN-16-8").count() >= 1
    shot(page, "walk-architecture-compare")

    # Quick CPU demo (the default preset), tiny: Launch, Stop, Resume to the end.
    open_page(page, f"{url}/train", "Train")
    fill_tiny_form(page, "walk", epochs=WALK_EPOCHS)
    page.get_by_role("button", name="Launch").click()
    wait_for(lambda: status_of(runs, "walk") == "running", "walk to run")
    page.get_by_role("button", name="Stop").click()
    # WALK_EPOCHS cannot end before the Stop lands: a run that finished here means Stop did nothing.
    assert wait_for(lambda: status_of(runs, "walk") in ("stopped", "finished") and status_of(runs, "walk"),
                    "walk to stop", timeout=60) == "stopped"
    page.get_by_role("button", name="Resume").click()
    wait_for(lambda: status_of(runs, "walk") in ("queued", "running", "finished"), "walk to resume", timeout=30)
    wait_for(lambda: status_of(runs, "walk") == "finished", "walk to finish")
    settle(page)
    clean(page)

    # Extend the finished one-cycle run by one epoch (the page's default choice for the added epochs).
    set_number(page, "extra epochs", 1)
    page.get_by_role("button", name="Resume").click()
    wait_for(lambda: json.loads((runs / "walk" / "status.json").read_text()).get("epoch") == WALK_EPOCHS + 1
             and status_of(runs, "walk") == "finished", "the extension to finish")
    records = [json.loads(line) for line in (runs / "walk" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    extension_lrs = [r["lr"] for r in records if r.get("kind") == "step" and r.get("epoch", 0) > WALK_EPOCHS]
    assert extension_lrs and max(extension_lrs) > 0, "the extension trained at lr 0"

    # A second tiny run to delete later.
    open_page(page, f"{url}/train", "Train")
    fill_tiny_form(page, "spare", epochs=1)
    page.get_by_role("button", name="Launch").click()
    wait_for(lambda: status_of(runs, "spare") == "finished", "spare to finish")
    settle(page)
    clean(page)

    # Runs: both overlaid, smoothed; the raw test curve stays beside the smoothed one.
    open_page(page, f"{url}/runs", "Runs")
    tick_row(page, "walk")
    tick_row(page, "spare")
    slider = page.get_by_role("slider").first
    slider.focus()
    slider.press("End")  # smoothing 0.99
    settle(page)
    clean(page)
    # The test-accuracy panel (row 2, column 1: axis y3) draws the epochs as measured, smoothing or not.
    # Only the curves chart (its panels are titled): the width chart below it has a y3 panel of its own.
    drawn = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')]"
                          ".filter(d => ((d.layout || {}).annotations || []).some(a => a.text === 'Test accuracy'))"
                          ".flatMap(d => (d.data || []).filter(t => t.name === 'walk' && t.yaxis === 'y3').map(t => t.y))")
    tested = [100.0 * r["test_acc"] for r in records if r.get("kind") == "epoch"]
    assert drawn and drawn[-1][-1] == pytest.approx(tested[-1]), (
        f"the smoothed chart rewrote the test curve: drawn {drawn}, recorded {tested[-1]:.2f}")
    shot(page, "walk-runs-smoothed")

    # Delete spare: untick walk, so spare is the one run shown; no tick may then move onto another run.
    tick_row(page, "walk")
    assert ticked_rows(page) == ["spare"]
    page.get_by_text("Yes, delete spare and its files").click()
    settle(page)
    page.get_by_role("button", name="Delete run").click()
    expect(page.get_by_text("Deleted spare.")).to_be_visible()
    settle(page)
    clean(page)
    assert page.locator('[role="gridcell"]', has_text="spare").count() == 0
    assert ticked_rows(page) == [], ticked_rows(page)
    expect(page.get_by_text("Nothing selected").first).to_be_visible()
    shot(page, "walk-runs-after-delete")

    # No stale message: the Train page no longer speaks of the deleted run.
    open_page(page, f"{url}/train", "Train")
    assert page.get_by_text("Launched spare").count() == 0, "a message about a deleted run outlived it"
    clean(page)

    # Sweep 2 × 2 (the default N and k), tiny, then reopen it in a new page.
    open_page(page, f"{url}/sweep", "Sweep")
    fill = [("synthetic train images", 64), ("synthetic test images", 32), ("epochs", 1), ("batch size", 32),
            ("eval batch size", 32)]
    for label, value in fill:
        set_number(page, label, value)
    field = page.get_by_label("sweep name", exact=True)
    field.fill("walk-sweep")
    field.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text("Launched walk-sweep").first).to_be_visible(timeout=30_000)
    cells = [f"walk-sweep-n{n}-k{k}-s0" for n in (1, 2) for k in (1, 2)]
    wait_for(lambda: all(status_of(runs, c) == "finished" for c in cells), "the sweep's four cells", timeout=180)
    expect(page.get_by_text("4/4 cells ended").first).to_be_visible(timeout=30_000)
    clean(page)
    legend = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(d => (d.data || []).map(t => String(t.name || '')))")
    assert any(n.startswith("off the front") for n in legend), legend

    page.goto(f"{url}/sweep")
    expect(page.get_by_text("4/4 cells ended").first).to_be_visible(timeout=60_000)
    settle(page)
    clean(page)
    shot(page, "walk-sweep-reopened")


def test_zero_epochs_typed_in_the_browser_is_refused_not_replaced(walk):
    """What the browser sends is what Launch uses: a 0 typed into epochs is refused in one line, and no run
    trains the last valid number instead."""
    page, url, runs = walk
    open_page(page, f"{url}/train", "Train")
    set_number(page, "epochs", 0)
    settle(page)
    page.get_by_role("button", name="Launch").click()
    settle(page)
    expect(page.get_by_text("epochs must be").first).to_be_visible(timeout=30_000)
    clean(page)
    assert [p.name for p in runs.iterdir()] == []  # nothing was created, nothing trains


def finished_run(runs: Path, name: str, test_acc: float) -> None:
    """A finished run written straight into the store: two epochs, no training."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    run = RunStore(runs).create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2), name)
    run.append_metrics([{"kind": "epoch", "epoch": e, "step": 10 * e, "images_seen": 320 * e, "time": float(e),
                         "train_loss": 2.0 / e, "train_acc": 0.3 * e, "test_loss": 2.0, "test_acc": test_acc}
                        for e in (1, 2)])
    run.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=test_acc, final_test_acc=test_acc)


# The script state stApp shows now, and (installed on first use) the state it showed at the last pointerdown.
STATE_JS = "() => document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state')"
STATE_AT_PRESS_JS = f"""() => {{
    if (window.__stateAtPress === undefined) {{
        window.__stateAtPress = null;
        document.addEventListener('pointerdown', () => {{ window.__stateAtPress = ({STATE_JS})(); }}, {{capture: true}});
    }}
    return window.__stateAtPress;
}}"""


def click_during_a_fragment_run(page, name: str) -> None:
    """Click the row's marker while a script run is in progress: the sidebar's live view (a fragment that
    reruns every second) when nothing else runs. Tries again until the press landed inside such a run."""
    page.evaluate(STATE_AT_PRESS_JS)
    for _ in range(20):
        row, x, y = row_marker(page, name)
        page.wait_for_function(f"() => ({STATE_JS})() === 'running'", timeout=30_000)
        page.mouse.click(x, y)
        if page.evaluate(STATE_AT_PRESS_JS) == "running":
            return
        settle(page)
        page.mouse.click(x, y)  # that press came after the run ended: undo it and try again
        settle(page)
    pytest.fail("never pressed while a fragment run was in progress")


def test_a_click_while_a_live_view_reruns_is_taken(walk):
    """Streamlit 1.67 keeps a widget change that arrives during a fragment's rerun (the newer widget states
    win when reruns coalesce, and a full-app rerun supersedes a fragment one): ticks made while the
    sidebar's live view reruns all reach the table and the page."""
    page, url, runs = walk
    finished_run(runs, "first", 0.3)
    finished_run(runs, "second", 0.4)
    open_page(page, f"{url}/runs", "Runs")
    for name in ("first", "second", "first"):  # tick, tick, untick
        click_during_a_fragment_run(page, name)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stDataFrame\"] [role=\"row\"][aria-selected=\"true\"]')"
                           ".length === 1", timeout=60_000)
    assert ticked_rows(page) == ["second"]
    # The server ran with the same selection: the compared curves are the second run's alone.
    page.wait_for_function("() => { const names = [...document.querySelectorAll('.js-plotly-plot')].flatMap(d => (d.data || [])"
                           ".map(t => t.name)); return names.includes('second') && !names.includes('first'); }",
                           timeout=60_000)
    clean(page)
