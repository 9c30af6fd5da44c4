"""pytest's side of the browser harness: a module-level skip without chromium, and the server, browser and page fixtures.

A test module imports `require_browser` and calls it before importing playwright, and imports the fixtures it uses by name."""

from __future__ import annotations

import pytest

from harness.browser import chromium, new_page, unavailable
from harness.server import app_exceptions, start_streamlit, stop_streamlit
from missing import missing


def require_browser() -> None:
    """Skip the importing module (fail it under CI=true) when chromium or playwright is missing."""
    reason = unavailable()
    if reason:
        missing(reason, module_level=True)


require_browser()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dashboard server over a fresh runs dir for the module: url, port, runs, log; no app exception in its log after."""
    runs = tmp_path_factory.mktemp("browser-runs")
    log_path = tmp_path_factory.mktemp("browser-log") / "streamlit.log"
    proc, url, port = start_streamlit(runs, log_path)
    try:
        yield {"url": url, "port": port, "runs": runs, "log": log_path}
    finally:
        stop_streamlit(proc)  # a job still training would be its test's leak (conftest)
    assert not app_exceptions(log_path), f"the server logged an exception in the app:\n{log_path.read_text()}"


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    """A tall page (1500 x 2200 px, 30 s per action) in its own context: a test's charts all in view."""
    page = new_page(browser, 1500, 2200, 30_000)
    try:
        yield page
    finally:
        page.context.close()
