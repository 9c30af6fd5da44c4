"""The predicted map in Chromium: a square the map predicts is drawn pale, unlike every measured square, and the next
cell's square is framed red (pixels read from a screenshot at the squares' own positions)."""

from __future__ import annotations

import io
import math

import pytest

from harness.fixtures import require_browser

require_browser()

from harness.browser import NO_EXCEPTION, chromium, new_page, settle  # noqa: E402
from harness.server import serving  # noqa: E402

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.store import RunStore
from wrn_core.sweeps import make_sweep, save_sweep

pytest.importorskip("optuna")
Image = pytest.importorskip("PIL.Image")
from playwright.sync_api import expect  # noqa: E402

BASE = TrainConfig(model=WRNConfig(depth=10, widen_factor=1), synthetic_train=160, synthetic_test=50, epochs=2,
                   device="cpu")
MEASURED = {"blocks": [1, 2, 3], "k": {1: (1, 4), 2: (2, 8), 3: (1, 4)}}  # N -> the k trained in that row

# Each square of the heatmap, in pixels of the chart's div: {"N,k": [x, y, width, height]} (category indices).
SQUARES_JS = """
() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')].find(d => (d.data || []).some(t => t.type === 'heatmap'));
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const box = gd.getBoundingClientRect();
    const w = Math.abs(xa.l2p(1) - xa.l2p(0)), h = Math.abs(ya.l2p(1) - ya.l2p(0));
    const out = {};
    xa._categories.forEach((kx, j) => ya._categories.forEach((ny, i) => {
        out[ny + '|' + kx] = [box.left + xa._offset + xa.l2p(j), box.top + ya._offset + ya.l2p(i), w, h];
    }));
    return {squares: out, scrollX: window.scrollX, scrollY: window.scrollY};
}
"""


def accuracy(n: int, k: int) -> float:
    return 0.45 + 0.05 * n + 0.06 * math.log2(k)


def make_runs(root) -> None:
    store = RunStore(root)
    sweep = make_sweep("map", BASE, [1, 2, 3], [1, 2, 4, 8])
    save_sweep(root, sweep)
    for cell in sweep.cells():
        n, k = cell.values["blocks"], cell.values["widen_factor"]
        if k not in MEASURED["k"][n]:
            continue
        acc = accuracy(n, k)
        run = store.create(cell.config, cell.run, sweep="map")
        run.append_metrics([{"kind": "epoch", "epoch": e, "step": 5 * e, "images_seen": 160 * e, "time": float(e),
                             "train_loss": 1.0, "train_acc": acc, "test_loss": 1.5, "test_acc": acc} for e in (1, 2)])
        run.write_status("finished", "finished", epoch=2, best_test_acc=acc, final_test_acc=acc, train_seconds=4.0)


def test_predicted_squares_are_pale_and_the_next_square_is_framed_red(tmp_path):
    runs = tmp_path / "runs"
    make_runs(runs)
    with serving(runs, tmp_path / "streamlit.log") as url, chromium() as browser:
        page = new_page(browser, timeout_ms=90_000)  # 1440 x 900
        page.goto(f"{url}/sweep")
        expect(page.get_by_text("the map is off by about").first).to_be_visible(timeout=120_000)
        settle(page)
        assert page.locator(NO_EXCEPTION).count() == 0
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        settle(page)
        found = page.evaluate(SQUARES_JS)
        shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
        page.screenshot(path="/tmp/sweep-map-browser.png")

    def corner(key: str) -> tuple[int, int, int]:
        """The colour a quarter in from the square's top-left corner (clear of its centred label)."""
        x, y, w, h = found["squares"][key]
        return shot.getpixel((int(x - w / 4), int(y - h / 4)))

    measured = [f"N={n} (depth {6 * n + 4})|k={k}" for n in (1, 2, 3) for k in MEASURED["k"][n]]
    predicted = [f"N={n} (depth {6 * n + 4})|k={k}" for n in (1, 2, 3) for k in (1, 2, 4, 8)
                 if k not in MEASURED["k"][n]]
    # Viridis has a dark channel everywhere (its yellow's blue is 37); at 35 % opacity on white none is below 160.
    assert all(min(corner(key)) < 110 for key in measured), {k: corner(k) for k in measured}
    assert all(min(corner(key)) > 150 for key in predicted), {k: corner(k) for k in predicted}

    def red_frame(key: str) -> bool:
        x, y, w, h = found["squares"][key]
        left = int(x - 0.47 * w)
        return any((lambda c: c[0] > 170 and c[1] < 90 and c[2] < 90)(shot.getpixel((left + dx, int(y))))
                   for dx in range(0, 4))  # inward: the square to its left has its own right edge 5 px away

    framed = [key for key in predicted if red_frame(key)]
    assert len(framed) == 1, framed  # the next cell's square, and no measured one
    assert not any(red_frame(key) for key in measured)
