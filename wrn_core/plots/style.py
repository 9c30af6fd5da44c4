"""Colours, the run palette and the small pieces every figure shares (placeholder text, the paper's points)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from wrn_core.reference import PAPER_CAPTION

PALETTE = qualitative.Plotly + qualitative.D3

WIDTH_COLORS = ("#636efa", "#00a36c", "#ab63fa", "#ffa15a")  # never red: red marks the width jumps
STEP_COLOR = "rgba(99, 110, 250, 0.45)"
TRAIN_COLOR = "#636efa"
TEST_COLOR = "#ef553b"
BEST_COLOR = "#00a36c"
REFERENCE_COLOR = "rgba(40, 40, 40, 0.75)"  # dark grey: references never take a run's colour


def run_color(index: int) -> str:
    """The index-th run's colour, cycling through PALETTE."""
    return PALETTE[index % len(PALETTE)]


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
