"""The Inspect page in Debian's chromium: upload a PNG under "Ask the model" and see the top 5; download an export."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, app_page, settle  # noqa: E402
from harness.server import serving  # noqa: E402
from inspect_runs import trained_run  # noqa: E402
from playwright.sync_api import expect  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("inspect-runs")
    trained_run(runs, "tiny")
    log_path = tmp_path_factory.mktemp("inspect-log") / "streamlit.log"
    with serving(runs, log_path) as url:
        yield {"url": url, "log": log_path, "runs": runs}


def test_uploading_a_png_shows_the_top_5(server, tmp_path):
    image = tmp_path / "red-square.png"
    buffer = io.BytesIO()
    Image.fromarray(np.full((48, 48, 3), (220, 40, 40), dtype=np.uint8)).save(buffer, format="PNG")
    image.write_bytes(buffer.getvalue())
    with app_page(f"{server['url']}/inspect", "Inspect", height=1800) as page:
        expect(page.get_by_text("test accuracy").first).to_be_visible(timeout=90_000)
        settle(page)
        page.get_by_text("Ask the model", exact=True).first.click()
        settle(page)
        page.locator('input[type="file"]').first.set_input_files(str(image))
        rows = page.locator('[data-testid="stTable"] tbody tr')
        expect(rows).to_have_count(5, timeout=60_000)
        probabilities = [rows.nth(i).locator("td").last.inner_text() for i in range(5)]
        assert all(p.endswith("%") for p in probabilities)
        values = [float(p.rstrip("%")) for p in probabilities]
        assert values == sorted(values, reverse=True) and 0 < sum(values) <= 100.05
        assert page.locator(NO_EXCEPTION).count() == 0
        # The export view's download is made when clicked, and is a state dict build_model loads.
        page.get_by_text("Export", exact=True).first.click()
        settle(page)
        with page.expect_download(timeout=120_000) as download:
            page.get_by_text("Download safetensors").click()
        assert download.value.suggested_filename == "tiny.safetensors"
        from safetensors.torch import load_file

        from wrn_core.model import build_model
        from wrn_core.store import RunStore

        config = RunStore(server["runs"]).get("tiny").read_config()
        build_model(config.model).load_state_dict(load_file(download.value.path()))

