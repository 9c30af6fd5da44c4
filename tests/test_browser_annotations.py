"""The Runs page's annotations table in Debian's chromium: a note typed into a cell and a tag typed into the tags cell land in meta.json."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, app_page, settle  # noqa: E402
from harness.server import serving  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore

ROW_PX = 35  # the data grid's header and row height (Streamlit's default row height)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("annotated-runs")
    store = RunStore(runs)
    for name in ("older", "newer"):  # listed newest first: "newer" is the first row
        store.create(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu", epochs=2), name)
        time.sleep(0.01)
    store.get("older").annotate(tags=["base"])
    log_path = tmp_path_factory.mktemp("annotated-log") / "streamlit.log"
    with serving(runs, log_path) as url:
        yield {"url": url, "log": log_path, "store": store}


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@contextmanager
def first_row_cell(server, column: float):
    """The Runs page with its annotations table shown; yields (page, store) once the cell of the first row
    ("newer") at `column` (fraction of the grid's width: tags 0.5, note 0.85) is open for editing. After the
    with-block: it was saved for "newer" alone, as the page says."""
    store = server["store"]
    with app_page(f"{server['url']}/runs", "Runs", height=1400) as page:
        settle(page)
        page.get_by_text("Edit tags and notes in a table").click()
        settle(page)
        grid = page.locator('[data-testid="stDataFrame"]').nth(1)  # below the runs table
        expect(grid).to_be_visible()
        box = grid.bounding_box()
        # Columns: name, tags, note; two rows, counted from the grid's bottom edge (a toolbar may sit above
        # it): the first row, "newer", is 1.5 rows up.
        page.mouse.dblclick(box["x"] + box["width"] * column, box["y"] + box["height"] - ROW_PX * 1.5)
        yield page, store
        settle(page)
        expect(page.get_by_text("Saved the tags and notes of newer.")).to_be_visible()
        assert store.get("older").read_annotations().tags == ("base",)  # the other row is untouched
        assert page.locator(NO_EXCEPTION).count() == 0


def test_a_note_typed_into_the_annotations_table_is_saved(server):
    with first_row_cell(server, 0.85) as (page, store):
        editor = page.locator("textarea.gdg-input")  # the cell's editor, opened by the double click
        editor.fill("typed into the grid")
        editor.press("Enter")
        saved = _wait_for(lambda: store.get("newer").read_annotations().note == "typed into the grid")
        assert saved, (store.get("newer").read_annotations(), store.get("older").read_annotations())


def test_a_tag_typed_into_the_tags_cell_is_saved(server):
    with first_row_cell(server, 0.5) as (page, store):
        editor = page.locator("input[id^='react-select-']")  # the cell's multiselect, opened by the double click
        editor.fill("typed-tag")  # a tag no run has yet: typed, not picked
        editor.press("Enter")
        page.get_by_role("heading", name="Runs", exact=True).first.click()  # leaving the cell saves it
        saved = _wait_for(lambda: store.get("newer").read_annotations().tags == ("typed-tag",))
        assert saved, (store.get("newer").read_annotations(), store.get("older").read_annotations())
