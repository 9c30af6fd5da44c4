"""The dashboard in Debian's chromium via playwright: headless, --no-sandbox, pages that wait for the app to settle.

playwright is imported inside the functions, so that a bench can import this module and say what it lacks."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .server import ROOT

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH, HEIGHT = 1440, 900  # a laptop screen, px: the size pages are looked at in unless a check needs more
NO_EXCEPTION = '[data-testid="stException"]'  # a locator that must match nothing: the app showed no exception

# Every plotly chart on the page that has points on all four subplots (x, x2, x3, x4).
ALL_FOUR_PANELS_JS = """
() => [...document.querySelectorAll('.js-plotly-plot')].some(div => {
    const axes = new Set((div.data || []).filter(t => t.x && t.x.length > 0).map(t => t.xaxis || 'x'));
    return ['x', 'x2', 'x3', 'x4'].every(a => axes.has(a));
})
"""

# Counts the script runs that start on the page (stApp's data-test-script-state turning "running");
# installs its observer on first use and returns the count.
SCRIPT_RUNS_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (window.__wrnRuns === undefined && app) {
        window.__wrnRuns = 0;
        new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__wrnRuns++; })
            .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    }
    return window.__wrnRuns || 0;
}"""
SCRIPT_STATE_JS = "() => document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
RERUN_GRACE_MS = 2_000  # how long an action's rerun may take to begin; waiting ends as soon as it does


def unavailable() -> str | None:
    """Why no browser can run here (chromium or playwright missing), or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found: install Debian's chromium package to run browser tests"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright python package is not installed"
    return None


def launch(playwright: Any) -> Any:
    """A headless Debian chromium browser from a started playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium browser for the with-block; closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, width: int = WIDTH, height: int = HEIGHT, timeout_ms: float = 30_000) -> Any:
    """A page in a fresh context (its own Streamlit session) of `width` x `height` px, `timeout_ms` per action;
    close it with page.context.close()."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.set_default_timeout(timeout_ms)
    return page


@contextmanager
def app_page(url: str, heading: str, height: int = 1400) -> Iterator[Any]:
    """A headless Chromium page at url once its heading shows (60 s per action); the browser is closed after."""
    from playwright.sync_api import expect

    with chromium() as browser:
        page = new_page(browser, 1400, height, 60_000)
        page.goto(url)
        expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible(timeout=90_000)
        yield page


def open_page(page: Any, url: str, heading: str) -> None:
    """Go to url and wait until its heading shows and the app is idle."""
    from playwright.sync_api import expect

    page.goto(url)
    expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible(timeout=60_000)
    settle(page)


def settle(page: Any, timeout: float = 30.0) -> None:
    """Wait until the rerun an action caused (if it begins within RERUN_GRACE_MS) has finished and the
    app is idle: conditions on the page's script state, not fixed sleeps."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    started = page.evaluate(SCRIPT_RUNS_JS)
    try:
        page.wait_for_function(f"n => ({SCRIPT_RUNS_JS})() > n || ({SCRIPT_STATE_JS})() !== 'notRunning'",
                               arg=started, timeout=RERUN_GRACE_MS)
    except PlaywrightTimeout:
        pass  # no rerun: the page was already idle
    page.wait_for_function(f"() => ({SCRIPT_STATE_JS})() === 'notRunning'", timeout=timeout * 1000)


def shot(page: Any, name: str) -> None:
    """A full-page screenshot from the top, to SCREENSHOTS/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Streamlit scrolls inside its main section, so full_page alone would not reach the top.
    page.evaluate("document.querySelectorAll('section, [data-testid=stMain]').forEach(e => e.scrollTo(0, 0))")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def pick(page: Any, label: str, option: Any, attempts: int = 3) -> None:
    """Choose `option` (its text, or a compiled pattern) in the selectbox labelled `label`. A click while the box
    still scrolls into view, or while a rerun redraws it, can leave its list closed or close it before the option is
    clicked: then the box is clicked again, up to `attempts` times."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    choice = page.get_by_role("option", name=option, exact=isinstance(option, str)).first
    box.scroll_into_view_if_needed()
    for attempt in range(attempts):
        box.click()
        try:
            choice.click(timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            settle(page)
            if attempt == attempts - 1:
                raise
    settle(page)


def set_number(page: Any, label: str, value: int) -> None:
    """Type `value` into the number field labelled `label`, press Enter, and wait for the rerun."""
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    settle(page)
