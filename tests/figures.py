"""Figure inspection helpers shared by the plot tests: traces per subplot, annotation texts."""

from __future__ import annotations

import plotly.graph_objects as go


def traces_by_axis(fig: go.Figure) -> dict[str, list]:
    """The figure's traces by x axis ("x", "x2", …): one list per subplot."""
    axes: dict[str, list] = {}
    for trace in fig.data:
        axes.setdefault(trace.xaxis or "x", []).append(trace)
    return axes


def titles(fig: go.Figure) -> list[str]:
    """Every annotation's text: subplot titles, labels and placeholders."""
    return [a.text for a in fig.layout.annotations]
