"""Width use over training in a real browser: the Train page's map gains a column per epoch while its run trains."""

from __future__ import annotations

import time

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, new_page, open_page, set_number, settle, shot  # noqa: E402
from harness.fixtures import browser, server  # noqa: E402,F401 - fixtures are found by name
from test_browser_jobs import name_the_run, status_of

from playwright.sync_api import expect

from wrn_core.store import RunStore
from wrn_core.store.records import WIDTH, of_kind

# The map's measured epochs as drawn: the x array of the heatmap titled "Width use by layer..." (-1: no map). The
# title arrives wrapped in <b>; the last such plot is the current one (Streamlit keeps the old one while it redraws).
MAP_COLUMNS_JS = """() => {
    const map = [...document.querySelectorAll('.js-plotly-plot')]
        .filter(d => (((d.layout || {}).title || {}).text || '').includes('Width use by layer')).pop();
    return map && map.data && map.data[0].x ? Array.from(map.data[0].x).length : -1;
}"""
EPOCHS = 3


def test_the_map_gains_a_column_per_epoch_while_the_run_trains(server, browser):
    runs = server["runs"]
    page = new_page(browser)  # 1440 x 900
    try:
        open_page(page, f"{server['url']}/train", "Train")
        set_number(page, "synthetic train images", 1024)
        set_number(page, "synthetic test images", 128)
        set_number(page, "epochs", EPOCHS)
        name_the_run(page, "width-live")
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_text("Launched width-live")).to_be_visible(timeout=30_000)
        page.get_by_role("tab", name="Width use").click()
        settle(page)
        run = RunStore(runs).get("width-live")
        seen: list[int] = []  # the map's column count at each look while the run trains
        deadline = time.monotonic() + 600
        while status_of(runs, "width-live") not in ("finished", "failed", "stopped"):
            assert time.monotonic() < deadline, f"width-live did not finish in 600 s (map columns seen: {seen})"
            columns = page.evaluate(MAP_COLUMNS_JS)
            measured = len(list(of_kind(run.read_metrics(), WIDTH)))  # read after the page: never behind it
            assert columns <= measured, (columns, measured)
            if columns >= 0 and (not seen or columns != seen[-1]):
                seen.append(columns)
                if columns == 1:
                    shot(page, "train-width-map-live")
            time.sleep(0.2)  # polling interval, not the condition under test
        assert status_of(runs, "width-live") == "finished"
        page.wait_for_function(f"() => ({MAP_COLUMNS_JS})() === {EPOCHS}", timeout=60_000)
        assert seen == sorted(seen) and {1, 2} <= set(seen), seen  # drawn epoch by epoch, never going back
        assert page.locator(NO_EXCEPTION).count() == 0
        shot(page, "train-width-map-1440x900")
    finally:
        page.context.close()
