"""The Runs page in Debian's chromium at 1440×900: picked filter values read in full, the runs table fits without
cutting columns off, and ticking rows updates the curves without re-creating the charts below them."""

from __future__ import annotations

import pytest

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, chromium, new_page, settle  # noqa: E402
from harness.server import serving  # noqa: E402
from playwright.sync_api import expect  # noqa: E402
from test_app_runs_annotations import TINY, finished_run  # noqa: E402

from wrn_core.config import WRNConfig
from wrn_core.store import RunStore

ROW_PX = 35  # the data grid's header and row height (Streamlit's default row height)
# (name, optimizer, k, best test accuracy), oldest first: the table lists "wide-adam" first.
RUNS = (("narrow-sgd", "sgd-nesterov", 1, 0.50), ("narrow-adam", "adam", 1, 0.55), ("wide-sgd", "sgd-nesterov", 2, 0.62),
        ("wide-adam", "adam", 2, 0.66))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs-page") / "runs"
    store = RunStore(runs)
    for name, optimizer, k, acc in RUNS:
        finished_run(store, TINY.replace(optimizer=optimizer, model=WRNConfig(depth=10, widen_factor=k)), name, acc)
        store.get(name).annotate(tags=["a-rather-long-tag", f"k{k}"], note=f"{name}: what it tried, and what it showed")
    log_path = tmp_path_factory.mktemp("runs-page-log") / "streamlit.log"
    with serving(runs, log_path) as url:
        yield url


@pytest.fixture
def page(server):
    with chromium() as browser:
        page = new_page(browser, timeout_ms=60_000)  # 1440 x 900
        page.goto(f"{server}/runs")
        expect(page.get_by_role("heading", name="Curves", exact=True).first).to_be_visible(timeout=90_000)
        settle(page)
        yield page


def pick(page, label: str, value: str) -> None:
    page.locator('[data-testid="stMultiSelect"]').filter(has_text=label).first.locator("input").click()
    page.get_by_role("option", name=value, exact=True).click()
    page.keyboard.press("Escape")
    settle(page)


def test_a_picked_filter_value_reads_in_full(page):
    pick(page, "optimizer", "sgd-nesterov")
    chip = page.locator('[data-testid="stMultiSelect"]').filter(has_text="optimizer").first \
        .locator('[data-tag] span[title="sgd-nesterov"]')
    expect(chip).to_have_text("sgd-nesterov")
    shown, whole = chip.evaluate("e => [e.clientWidth, e.scrollWidth]")
    assert shown > 40 and shown >= whole, (shown, whole)  # not an ✕ alone, not cut to "sgd-nes…"
    assert page.locator(NO_EXCEPTION).count() == 0


def test_the_runs_table_shows_every_column_at_1440_px(page):
    grid = page.locator('[data-testid="stDataFrame"]').first
    scroller = grid.locator(".dvn-scroller").first
    shown, whole = scroller.evaluate("e => [e.clientWidth, e.scrollWidth]")
    assert whole <= shown, f"the table is {whole} px wide in {shown} px: its right-hand columns are cut off"


def test_ticking_rows_redraws_the_curves_and_keeps_the_charts_below(page):
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(div =>
        (div.data || []).some(t => t.type === 'parcoords'))""")
    # A mark on each chart's element: a chart the browser re-creates comes back without it.
    kinds = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map((div, i) => {
        div.__kept = i; return (div.data || []).map(t => t.type || 'scatter')[0] || 'empty'; })""")
    assert "parcoords" in kinds
    box = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    for row in (1, 2):  # the table lists the newest first: rows 1 and 2 are wide-sgd and narrow-adam
        page.mouse.click(box["x"] + 16, box["y"] + ROW_PX * (1 + row) + ROW_PX / 2)
        settle(page)
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(div =>
        (div.layout.annotations || []).some(a => a.text === 'Train accuracy') &&
        new Set((div.data || []).map(t => t.legendgroup)).size === 2)""")
    after = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(div =>
        [(div.layout.annotations || []).some(a => a.text === 'Train accuracy') ? 'curves' :
         ((div.data || []).map(t => t.type || 'scatter')[0] || 'empty'), div.__kept === undefined ? 'new' : 'kept'])""")
    assert ["parcoords", "kept"] in after, after  # the WebGL chart is not made again
    assert all(state == "kept" for kind, state in after if kind != "curves"), after  # nor any chart but the curves
    assert page.locator(NO_EXCEPTION).count() == 0
