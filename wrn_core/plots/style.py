"""Colours, the run palette and the small pieces every figure shares (placeholder text, the paper's points)."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from wrn_core.reference import PAPER_CAPTION

PALETTE = qualitative.Plotly + qualitative.D3

WIDTH_COLORS = ("#636efa", "#00a36c", "#ab63fa", "#ffa15a")  # one per compared model; its width jumps take its colour
STEP_COLOR = "rgba(99, 110, 250, 0.45)"
TRAIN_COLOR = "#636efa"
TEST_COLOR = "#ef553b"
BEST_COLOR = "#00a36c"
REFERENCE_COLOR = "rgba(40, 40, 40, 0.75)"  # dark grey: references never take a run's colour


def run_color(index: int) -> str:
    """The index-th run's colour, cycling through PALETTE."""
    return PALETTE[index % len(PALETTE)]


def color_map(names: Sequence[str]) -> dict[str, str]:
    """One colour per name, in the given order (e.g. runs oldest first, so a new run never recolours the others)."""
    return {name: run_color(index) for index, name in enumerate(dict.fromkeys(names))}


def placeholder(fig: go.Figure, text: str) -> None:
    """Grey text across an empty figure."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font={"size": 16, "color": "gray"})


def paper_trace(points: pd.DataFrame, xs: Sequence[float], x_hover: str) -> go.Scatter:
    """The paper's published CIFAR-10 results (reference.paper_points) at xs, labelled by model.

    x_hover: how the hover text shows x, e.g. "%{x:,.0f} params".
    """
    return go.Scatter(
        x=list(xs),
        y=points["test_acc"].tolist(),
        mode="markers+text",
        marker={"symbol": "diamond-open", "size": 13, "color": REFERENCE_COLOR, "line": {"width": 2}},
        text=points["model"].tolist(),
        # WRN-40-4 and WRN-16-8 sit close together (8.9M, 11.0M): one label below, one above.
        textposition=["bottom center", "top center", "bottom center"][: len(points)],
        textfont={"size": 11, "color": REFERENCE_COLOR},
        cliponaxis=False,  # a label at the widest model may reach past the axis
        name=PAPER_CAPTION,
        legendgroup="paper",
        hovertemplate=(
            "%{text}<br>" + x_hover + "<br>test %{y:.2f}%<br>"
            "CIFAR-10, median of 5 runs<extra>" + PAPER_CAPTION + "</extra>"
        ),
    )


# Tick mantissas per decade for a log axis, by how many decades it spans: every digit under one decade,
# 1-2-5 up to three, the decades alone beyond.
_FINE, _MEDIUM, _COARSE = (1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 5), (1,)
_SI_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def tick_label(value: float) -> str:
    """A tick value in full: 20000 -> '20k', 1.5e6 -> '1.5M', 0.9 -> '0.9', 5 -> '5'."""
    for divisor, prefix in _SI_PREFIXES:
        if abs(value) >= divisor:
            return f"{value / divisor:.3g}{prefix}"
    return f"{value:.3g}"


def log_ticks(values: Sequence[float]) -> list[float]:
    """Tick values for a log axis over these values (positive, finite ones count): 1-2-5 style, at least two."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if not finite:
        return []
    lo, hi = min(finite), max(finite)
    span = math.log10(hi) - math.log10(lo)
    mantissas = _FINE if span < 1 else _MEDIUM if span <= 3 else _COARSE
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    # float(f"{m}e{d}") is the decimal value exactly as written (3 * 10**-1 would be 0.30000000000000004).
    ticks = [float(f"{m}e{d}") for d in range(first, last + 1) for m in mantissas]
    if sum(lo <= t <= hi for t in ticks) < 2:  # a narrow range (0.92 to 0.98): a few values across it
        steps = 3
        return sorted({float(f"{lo * (hi / lo) ** (i / steps):.2g}") for i in range(steps + 1)})
    return [t for t in ticks if lo / 1.1 <= t <= hi * 1.1]  # plotly pads the range a little


def log_axis(values: Sequence[float]) -> dict:
    """Axis settings for a log axis over these values with every tick labelled in full (plotly's own log
    ticks label 2 and 5 of each decade by their first digit alone: '2, 5, 1, 2, 5')."""
    ticks = log_ticks(values)
    if not ticks:
        return {"type": "log"}
    return {"type": "log", "tickmode": "array", "tickvals": ticks, "ticktext": [tick_label(t) for t in ticks]}
