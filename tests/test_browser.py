"""The dashboard in a real browser: `streamlit run` on 127.0.0.1 driven by Debian's chromium via playwright."""

from __future__ import annotations

from pathlib import Path

from harness.fixtures import require_browser

require_browser()

from harness.browser import (  # noqa: E402 - after the check above
    ALL_FOUR_PANELS_JS,
    NO_EXCEPTION,
    open_page,
    pick,
    set_number,
    settle,
    shot,
)
from harness.fixtures import browser, page, server  # noqa: E402,F401 - fixtures are found by name
from harness.server import listening_addresses  # noqa: E402
from playwright.sync_api import expect  # noqa: E402


def test_server_listens_on_loopback_only(server):
    """The address comes from .streamlit/config.toml alone (start_streamlit passes none)."""
    addresses = listening_addresses(server["port"])
    assert addresses, "no listening socket found for the streamlit port"
    assert set(addresses) == {"0100007F"}, addresses  # 127.0.0.1 only, no 0.0.0.0 or IPv6


def test_architecture_page(server, page):
    open_page(page, server["url"], "Architecture")
    assert page.locator(NO_EXCEPTION).count() == 0
    expect(page.get_by_text("WRN-16-8", exact=False).first).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    shot(page, "architecture")

    page.get_by_text("Compare two configs").click()
    expect(page.get_by_text("36,479,194").first).to_be_visible(timeout=60_000)
    settle(page)
    assert page.locator(NO_EXCEPTION).count() == 0
    shot(page, "architecture-compare")


def test_train_launch_shows_live_charts(server, page):
    open_page(page, f"{server['url']}/train", "Train")
    assert page.locator(NO_EXCEPTION).count() == 0
    expect(page.get_by_role("button", name="Launch")).to_be_visible()
    set_number(page, "synthetic train images", 256)
    set_number(page, "synthetic test images", 64)
    set_number(page, "epochs", 1)
    set_number(page, "batch size", 32)
    set_number(page, "eval batch size", 64)
    set_number(page, "log every (steps)", 2)
    name = page.get_by_label("run name (optional)")
    name.fill("browser-tiny")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text("Launched browser-tiny")).to_be_visible(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(d => (d.data || []).some(t => t.x && t.x.length > 0))",
        timeout=60_000,
    )
    shot(page, "train-first-points")  # usually mid-run: progress bar, ETA, per-step points

    page.wait_for_function(ALL_FOUR_PANELS_JS, timeout=90_000)
    expect(page.get_by_text("finished", exact=True).first).to_be_visible(timeout=60_000)
    settle(page)
    for title in ("Train accuracy", "Train cost", "Test accuracy", "Test cost"):
        expect(page.locator(".js-plotly-plot").get_by_text(title).first).to_be_visible()
    assert page.locator(NO_EXCEPTION).count() == 0
    shot(page, "train")


def alert(page, kind: str, text: str):
    """The st.error / st.warning … boxes (kind: Error, Warning, …) whose text contains `text`."""
    return page.locator(f'[data-testid="stAlertContent{kind}"]').filter(has_text=text)


def test_train_messages_are_in_view_when_made_and_go_with_their_cause(server, browser):
    """At 1440×900, as the user sees it: every message about Launch is in the window when it appears, is said
    once, and goes once what it is about is put right."""
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.set_default_timeout(30_000)
    try:
        open_page(page, f"{server['url']}/train", "Train")
        set_number(page, "epochs", 0)
        page.get_by_role("button", name="Launch").click()
        settle(page)
        epochs_error = alert(page, "Error", "epochs must be")
        expect(epochs_error).to_have_count(1)
        expect(epochs_error).to_be_in_viewport(ratio=1.0)
        shot(page, "train-message-epochs")
        set_number(page, "epochs", 2)
        expect(epochs_error).to_have_count(0)

        name = page.get_by_label("run name (optional)")
        name.fill("bad/name")
        name.press("Enter")
        settle(page)
        page.get_by_role("button", name="Launch").click()
        settle(page)
        refusal = alert(page, "Error", "invalid run name")
        expect(refusal).to_be_in_viewport(ratio=1.0)
        shot(page, "train-message-refusal")
        name.fill("")
        name.press("Enter")
        settle(page)
        expect(refusal).to_have_count(0)

        pick(page, "Dataset", "CIFAR-10")
        missing = alert(page, "Error", "CIFAR-10 not found")
        expect(missing).to_be_in_viewport()
        link = missing.locator("a")
        # Markdown escaping once put a backslash into this link (%5C~kriz) and its text (\~kriz).
        expect(link).to_have_attribute("href", "https://www.cs.toronto.edu/~kriz/cifar.html")
        expect(link).to_have_text("https://www.cs.toronto.edu/~kriz/cifar.html")
        shot(page, "train-message-cifar")
        pick(page, "Dataset", "Synthetic shapes (built in)")
        expect(missing).to_have_count(0)
        assert page.locator(NO_EXCEPTION).count() == 0
    finally:
        page.context.close()


def add_fake_run(runs_dir: Path, name: str) -> None:
    """A finished Adam run written straight into the run store, to compare against."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.store import RunStore

    run = RunStore(runs_dir).create(TrainConfig(model=WRNConfig(depth=10, widen_factor=2), optimizer="adam", epochs=2), name)
    records = []
    for epoch in (1, 2):
        for step in (2, 4):
            global_step = (epoch - 1) * 4 + step
            records.append({"kind": "step", "step": global_step, "epoch": epoch - 1 + step / 4, "images_seen": 32 * global_step,
                            "time": 0.5 * global_step, "train_loss": 2.3 - 0.1 * global_step, "train_acc": 0.1 + 0.02 * global_step, "lr": 1e-3})
        records.append({"kind": "epoch", "epoch": epoch, "step": 4 * epoch, "images_seen": 128 * epoch, "time": 2.0 * epoch,
                        "train_loss": 2.0 - 0.2 * epoch, "train_acc": 0.1 * epoch, "test_loss": 2.1 - 0.2 * epoch,
                        "test_acc": 0.12 * epoch, "lr": 1e-3, "epoch_seconds": 2.0, "images_per_s": 64.0, "peak_mem_mb": None})
    run.append_metrics(records)
    run.write_status("finished", "finished 2 epochs", epoch=2, best_test_acc=0.24, final_test_acc=0.24, params=300_000, train_seconds=4.0)


def select_run_rows(page, names: list[str]) -> None:
    """Tick the row markers of the runs table's rows that show these run names. The table is a canvas;
    its accessible rows (aria-rowindex 1 = the header) say which row holds a name, and the marker of
    row r is drawn at r row heights below the grid's top."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    rows = grid.locator('[role="row"]')
    expect(rows.first).to_be_attached(timeout=30_000)
    box = grid.bounding_box()
    row_height = box["height"] / rows.count()
    for name in names:
        row = grid.locator('[role="row"]', has=page.locator('[role="gridcell"]', has_text=name)).first
        index = int(row.get_attribute("aria-rowindex")) - 1  # 0 is the header
        page.mouse.click(box["x"] + 18, box["y"] + row_height * (index + 0.5))
        settle(page)


def train_tiny_run(runs_dir: Path, name: str) -> None:
    """A real run trained to finished in this process: WRN-10-1, 2 epochs of 64 synthetic images."""
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.engine.loop import train_run
    from wrn_core.store import RunStore

    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=64, synthetic_test=32,
                         batch_size=32, eval_batch_size=32, epochs=2, device="cpu", log_every=1)
    assert train_run(RunStore(runs_dir).create(config, name)) == "finished"


def test_runs_page(server, page):
    train_tiny_run(server["runs"], "runs-tiny")
    add_fake_run(server["runs"], "adam-k2")
    open_page(page, f"{server['url']}/runs", "Runs")
    assert page.locator(NO_EXCEPTION).count() == 0
    expect(page.get_by_role("button", name="Download CSV (per epoch)")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Download JSON (all records)")).to_be_visible()
    page.wait_for_function(ALL_FOUR_PANELS_JS, timeout=30_000)
    # The table is a canvas grid; its accessible cells carry the run name.
    expect(page.locator('[role="gridcell"]', has_text="runs-tiny").first).to_be_attached(timeout=30_000)
    # adam-k2 was created last, so it is the default; tick both rows to compare and diff them.
    expect(page.get_by_text("Yes, delete adam-k2 and its files")).to_be_visible()
    select_run_rows(page, ["adam-k2", "runs-tiny"])
    # Compare shows one column per ticked run and, by default, only the settings that differ.
    expect(page.get_by_text("Select two or more runs to see them side by side")).to_have_count(0, timeout=30_000)
    expect(page.locator('[role="gridcell"]', has_text="model.widen_factor").first).to_be_attached(timeout=30_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(d => new Set((d.data || []).map(t => t.name)).size >= 2 && (d.data || []).some(t => t.name === 'runs-tiny'))",
        timeout=30_000,
    )
    assert page.locator(NO_EXCEPTION).count() == 0
    shot(page, "runs")


# The sweep page's heatmap has a value in every square (z without nulls).
HEATMAP_FILLED_JS = """
(squares) => [...document.querySelectorAll('.js-plotly-plot')].some(div => (div.data || []).some(t => {
    if (t.type !== 'heatmap' || !t.z) return false;
    const values = t.z.flat();
    return values.length === squares && values.every(v => typeof v === 'number' && isFinite(v));
}))
"""


def test_sweep_page_launches_a_2x2_sweep_and_fills_the_heatmap(server, page):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.sweeps import make_sweep, save_sweep

    # A saved sweep that never ran: the page opens the newest sweep, so "New sweep…" is picked by hand.
    save_sweep(server["runs"], make_sweep("browser-saved", TrainConfig(model=WRNConfig(depth=10, widen_factor=1)), [1], [1]))
    open_page(page, f"{server['url']}/sweep", "Sweep")
    assert page.locator(NO_EXCEPTION).count() == 0
    expect(page.get_by_text("0/1 cells ended").first).to_be_visible()  # browser-saved is open
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="New sweep…").click()
    settle(page)
    expect(page.get_by_role("button", name="Launch")).to_be_visible()
    expect(page.get_by_role("button", name="Pre-flight")).to_be_visible()
    # N = 1, 2 and k = 1, 2 are the defaults: four WRNs, one epoch of 64 synthetic images each (one
    # batch of the Quick CPU preset's 64).
    set_number(page, "synthetic train images", 64)
    set_number(page, "synthetic test images", 32)
    set_number(page, "epochs", 1)
    name = page.get_by_label("sweep name", exact=True)
    name.fill("browser-sweep")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text("Launched browser-sweep").first).to_be_visible(timeout=30_000)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(d => (d.data || []).some(t => t.type === 'heatmap'))",
                           timeout=30_000)
    shot(page, "sweep-launched")

    # A running cell is drawn too (pale, with its latest value), so the squares fill before the cells end:
    # the progress line is what says they all have.
    expect(page.get_by_text("4/4 cells ended").first).to_be_visible(timeout=240_000)
    page.wait_for_function(HEATMAP_FILLED_JS, arg=4, timeout=30_000)
    settle(page)
    assert page.locator('[role="gridcell"]', has_text="browser-sweep-n2-k2-s0").count() >= 1
    assert page.locator(NO_EXCEPTION).count() == 0
    shot(page, "sweep")
