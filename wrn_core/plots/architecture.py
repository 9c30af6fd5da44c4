"""Architecture figure: feature-map width per layer of one or more WRN configs (from model.tables.layer_table)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from wrn_core.model.names import GROUP_ORDER  # one unit of x each, so models line up by group
from wrn_core.plots.style import WIDTH_COLORS

_GROUP_SHADES = {
    "stem": "rgba(150, 150, 150, 0.12)",
    "group 1": "rgba(99, 110, 250, 0.10)",
    "group 2": "rgba(0, 204, 150, 0.10)",
    "group 3": "rgba(239, 85, 59, 0.10)",
    "head": "rgba(150, 150, 150, 0.12)",
}


_JUMP_HALF_WIDTH = 0.04  # x units (a group is 1): half the width of a jump's box
JUMP_LABEL_SIZE = 11  # px
JUMP_LABEL_BACKDROP = "rgba(255, 255, 255, 0.85)"
Y_HEADROOM = 1.12  # the y axis runs from 0 to this × the widest layer: room for the jump boxes (1.05 ×)


def _aligned_x(table: pd.DataFrame) -> list[float]:
    """Each layer's x: its group's slot (stem 0, group 1 at 1, …) plus its place within the group, spread evenly,
    so WRN-10-8 and WRN-28-10 reach group 3 at the same x however many layers each group holds."""
    slots = {group: i for i, group in enumerate(GROUP_ORDER)}
    counts = table.groupby("group", sort=False).size().to_dict()
    seen: dict[str, int] = {}
    xs = []
    for group in table["group"]:
        place = seen.get(group, 0)
        seen[group] = place + 1
        xs.append(slots.get(group, len(GROUP_ORDER)) + (place + 0.5) / counts[group])
    return xs


def _in_order(table: pd.DataFrame) -> pd.DataFrame:
    """The layer table in forward order (an `index` column added where a table lacks one)."""
    if "index" not in table.columns:
        table = table.assign(index=range(len(table)))
    return table.sort_values("index", kind="stable")


def layer_x(table: pd.DataFrame) -> dict[str, float]:
    """Each layer's x on width_figure's axis, by layer name: what a trace drawn over the chart must use so
    that a point of a layer sits on that layer's allocated width, inside its group's band."""
    table = _in_order(table)
    return dict(zip(table["layer"], _aligned_x(table)))


def _width_trace(table: pd.DataFrame, xs: list[float], label: str, color: str, show_legend: bool) -> go.Scatter:
    """out_channels per layer as a step line, the layer, its type and output shape on hover."""
    hover = [
        f"{layer}<br>{layer_type}<br>{shape}"
        for layer, layer_type, shape in zip(table["layer"], table["kind"], table["output_shape"])
    ]
    return go.Scatter(
        x=xs,
        y=table["out_channels"].tolist(),
        mode="lines",
        line={"shape": "hv", "color": color, "width": 3},
        name=label or "width",
        text=hover,
        hovertemplate="%{y} channels<br>%{text}<extra>" + (label or "") + "</extra>",
        showlegend=show_legend,
    )


def _mark_groups(fig: go.Figure, widths: list[dict[str, int]]) -> None:
    """Each group shaded, its name (and widest channels per model) above the plot area, never on a line."""
    for slot, group in enumerate(GROUP_ORDER):
        fig.add_vrect(x0=slot, x1=slot + 1, fillcolor=_GROUP_SHADES[group], line_width=0, layer="below")
        text = group
        if group.startswith("group"):
            text += "<br>" + " / ".join(f"{w[group]} ch" for w in widths if group in w)
        fig.add_annotation(x=slot + 0.5, y=1.0, xref="x", yref="paper", yanchor="bottom", text=text,
                           showarrow=False, font={"size": 11})


def _box_jumps(fig: go.Figure, table: pd.DataFrame, xs: list[float], position: int, color: str) -> None:
    """Box each width jump (where a group's first conv widens the features) in the model's own colour, and label
    it half-way up the jump: the first model's labels right of their boxes (where its line runs at the new
    width, above the label), the second's left of theirs (where its line runs at the old width, below), so two
    models' labels of the same group never sit on each other."""
    widths = table["out_channels"].tolist()
    right = position % 2 == 0
    for i in range(1, len(widths)):
        if widths[i] > widths[i - 1] and table["group"].iloc[i] != "head":
            fig.add_shape(
                type="rect",
                x0=xs[i] - _JUMP_HALF_WIDTH,
                x1=xs[i] + _JUMP_HALF_WIDTH,
                y0=widths[i - 1] * 0.9,
                y1=widths[i] * 1.05,
                line={"color": color, "width": 2},
                fillcolor="rgba(0,0,0,0)",
            )
            # The backdrop keeps it legible where another model's line passes.
            fig.add_annotation(
                x=xs[i] + _JUMP_HALF_WIDTH if right else xs[i] - _JUMP_HALF_WIDTH,
                y=(widths[i - 1] + widths[i]) / 2,
                text=f"{widths[i - 1]}→{widths[i]}",
                showarrow=False,
                xanchor="left" if right else "right",
                yanchor="middle",
                bgcolor=JUMP_LABEL_BACKDROP,
                font={"color": color, "size": JUMP_LABEL_SIZE},
            )


def width_figure(tables: pd.DataFrame | Sequence[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Feature-map width (out_channels) per layer as a step chart, groups shaded and named above the plot,
    width jumps boxed in each model's colour.

    Pass one layer table, or a list of (label, table) pairs to overlay configs; they line up by group.
    """
    if isinstance(tables, pd.DataFrame):
        pairs: list[tuple[str, pd.DataFrame]] = [("", tables)]
    else:
        pairs = list(tables)
    fig = go.Figure()
    widths = []
    widest = 1
    for position, (label, table) in enumerate(pairs):
        table = _in_order(table)
        xs = _aligned_x(table)
        color = WIDTH_COLORS[position % len(WIDTH_COLORS)]
        fig.add_trace(_width_trace(table, xs, label, color, show_legend=len(pairs) > 1))
        _box_jumps(fig, table, xs, position, color)
        widths.append(table.groupby("group")["out_channels"].max().to_dict())
        widest = max(widest, int(table["out_channels"].max()))
    _mark_groups(fig, widths)
    fig.update_layout(
        height=400,
        margin={"l": 50, "r": 20, "t": 60, "b": 70},  # the top margin holds the group labels, the bottom the legend
        xaxis={"title": "layers in forward order, each group the same width (models aligned by group)",
               "range": [0, len(GROUP_ORDER)], "showticklabels": False, "showgrid": False},
        yaxis={"title": "feature-map width (channels)", "range": [0, Y_HEADROOM * widest]},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
        hovermode="closest",
    )
    return fig
