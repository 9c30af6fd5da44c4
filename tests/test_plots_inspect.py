"""wrn_core.plots.inspect: where the width-use figure draws each layer's effective width and dead channels."""

from __future__ import annotations

import pytest
import torch

from wrn_core.config import WRNConfig
from wrn_core.engine.width import WidthMeter
from wrn_core.model import build_model
from wrn_core.model.tables import layer_table
from wrn_core.plots.architecture import GROUP_ORDER
from wrn_core.plots.inspect import width_use_figure


def width_rows(model_config: WRNConfig) -> list[dict]:
    """The width meter's rows for a fresh model on a few random images, with dead channels on every ReLU
    (a fresh model rarely has any), so both traces have a point per layer."""
    torch.manual_seed(0)
    model = build_model(model_config).eval()
    meter = WidthMeter(model)
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    meter.remove()
    return [row | {"dead_channels": 1 + i % 3} for i, row in enumerate(meter.rows())]


def drawn_bands(fig) -> dict[str, tuple[float, float]]:
    """Each group's band as drawn: its shaded rectangle's x0..x1, named by the label drawn over its middle."""
    labels = {a.text.split("<br>")[0]: a.x for a in fig.layout.annotations if a.yref == "paper"}
    rects = [s for s in fig.layout.shapes if s.type == "rect" and s.yref == "y domain"]  # vrects span the plot
    return {group: next((r.x0, r.x1) for r in rects if r.x0 < x < r.x1) for group, x in labels.items()}


def allocated_points(trace) -> dict[str, tuple[float, int]]:
    """layer -> (x, channels) of the allocated-width trace (its hover text starts with the layer's name)."""
    return {text.split("<br>")[0]: (x, y) for text, x, y in zip(trace.text, trace.x, trace.y)}


@pytest.mark.parametrize("models", [
    [("WRN-10-2", WRNConfig(depth=10, widen_factor=2))],
    [("WRN-10-2", WRNConfig(depth=10, widen_factor=2)), ("WRN-16-1", WRNConfig(depth=16, widen_factor=1))],
])
def test_each_layers_use_is_drawn_on_its_allocated_width_inside_its_group(models):
    runs = [(label, layer_table(config), width_rows(config)) for label, config in models]
    fig = width_use_figure(runs)
    bands = drawn_bands(fig)
    assert set(bands) == set(GROUP_ORDER)
    traces = {t.name: t for t in fig.data}
    for label, table, rows in runs:
        allocated = allocated_points(traces[label])
        groups = dict(zip(table["layer"], table["group"]))
        effective = traces[f"{label} effective width"]
        dead = traces[f"{label} live channels (dead marked)"]
        assert [c[0] for c in effective.customdata] == [r["layer"] for r in rows]  # every ReLU drawn, none lost
        for layer, x, y in zip([c[0] for c in effective.customdata], effective.x, effective.y):
            low, high = bands[groups[layer]]
            assert x == allocated[layer][0], f"{label} {layer}: effective width at x={x}, its allocated width at {allocated[layer][0]}"
            assert low < x < high, f"{label} {layer} drawn at x={x}, outside {groups[layer]} ({low}..{high})"
            assert 0 < y <= allocated[layer][1]  # no more effective channels than allocated
        assert list(dead.customdata) == [r["layer"] for r in rows]
        for layer, x, y in zip(dead.customdata, dead.x, dead.y):
            low, high = bands[groups[layer]]
            assert x == allocated[layer][0] and low < x < high
            assert y == allocated[layer][1] - next(r["dead_channels"] for r in rows if r["layer"] == layer)
