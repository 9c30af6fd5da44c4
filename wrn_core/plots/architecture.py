"""Architecture figure: feature-map width per layer of one or more WRN configs (from summary.layer_table)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from wrn_core.plots.style import WIDTH_COLORS

_GROUP_SHADES = {
    "stem": "rgba(150, 150, 150, 0.12)",
    "group 1": "rgba(99, 110, 250, 0.10)",
    "group 2": "rgba(0, 204, 150, 0.10)",
    "group 3": "rgba(239, 85, 59, 0.10)",
    "head": "rgba(150, 150, 150, 0.12)",
}


def _group_spans(table: pd.DataFrame) -> list[tuple[str, float, float, int]]:
    """(group, first index, last index, widest out_channels) in forward order."""
    spans = []
    for group in pd.unique(table["group"]):
        part = table[table["group"] == group]
        spans.append((str(group), float(part["index"].min()), float(part["index"].max()), int(part["out_channels"].max())))
    return sorted(spans, key=lambda span: span[1])


def _width_trace(table: pd.DataFrame, label: str, color: str, show_legend: bool) -> go.Scatter:
    """out_channels per layer index as a step line, the layer, kind and output shape on hover."""
    hover = [
        f"{layer}<br>{kind}<br>{shape}"
        for layer, kind, shape in zip(table["layer"], table["kind"], table["output_shape"])
    ]
    return go.Scatter(
        x=table["index"].tolist(),
        y=table["out_channels"].tolist(),
        mode="lines",
        line={"shape": "hv", "color": color, "width": 3},
        name=label or "width",
        text=hover,
        hovertemplate="layer %{x}: %{y} channels<br>%{text}<extra>" + (label or "") + "</extra>",
        showlegend=show_legend,
    )


def _mark_groups(fig: go.Figure, table: pd.DataFrame, position: int, color: str) -> None:
    """The first config's groups shaded and named; each other config's group starts as dashed lines."""
    for group, start, end, width in _group_spans(table):
        if position == 0:
            fig.add_vrect(
                x0=start - 0.5,
                x1=end + 0.5,
                fillcolor=_GROUP_SHADES.get(group, "rgba(150,150,150,0.08)"),
                line_width=0,
                layer="below",
                annotation_text=f"{group}<br>{width} ch" if group.startswith("group") else ("" if group == "stem" else group),
                annotation_position="bottom left",
                annotation_font_size=11,
            )
        elif group != "stem":
            fig.add_vline(
                x=start - 0.5,
                line={"color": color, "width": 1, "dash": "dash"},
                annotation_text=group.replace("group ", "g"),
                annotation_position="bottom right",
                annotation_font={"size": 10, "color": color},
            )


def _box_jumps(fig: go.Figure, table: pd.DataFrame, position: int, color: str) -> None:
    """Box each width jump (where a group's first conv widens the features): the "red box"."""
    widths = table["out_channels"].tolist()
    indices = table["index"].tolist()
    for i in range(1, len(widths)):
        if widths[i] > widths[i - 1] and table["group"].iloc[i] != "head":
            fig.add_shape(
                type="rect",
                x0=indices[i] - 1.2,
                x1=indices[i] + 1.2,
                y0=widths[i - 1] * 0.9,
                y1=widths[i] * 1.05,
                line={"color": "red" if position == 0 else color, "width": 2},
                fillcolor="rgba(0,0,0,0)",
            )
            fig.add_annotation(
                x=indices[i],
                y=widths[i] * 1.05,
                text=f"{widths[i - 1]}→{widths[i]}",
                showarrow=False,
                yshift=10 + 14 * position,  # pixels: each config's labels one line higher
                font={"color": "red" if position == 0 else color, "size": 11},
            )


def width_figure(tables: pd.DataFrame | Sequence[tuple[str, pd.DataFrame]]) -> go.Figure:
    """Feature-map width (out_channels) per layer as a step chart, groups shaded and width jumps boxed.

    Pass one layer table, or a list of (label, table) pairs to overlay configs.
    """
    if isinstance(tables, pd.DataFrame):
        pairs: list[tuple[str, pd.DataFrame]] = [("", tables)]
    else:
        pairs = list(tables)
    fig = go.Figure()
    for position, (label, table) in enumerate(pairs):
        if "index" not in table.columns:
            table = table.assign(index=range(len(table)))
        table = table.sort_values("index", kind="stable")
        color = WIDTH_COLORS[position % len(WIDTH_COLORS)]
        fig.add_trace(_width_trace(table, label, color, show_legend=len(pairs) > 1))
        _mark_groups(fig, table, position, color)
        _box_jumps(fig, table, position, color)
    fig.update_layout(
        height=380,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        xaxis_title="layer (forward order)",
        yaxis_title="feature-map width (channels)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="closest",
    )
    return fig
