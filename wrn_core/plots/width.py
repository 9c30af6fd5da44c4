"""Width use over training: the layers × epochs map of one run, and several runs' per-group effective width by epoch."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrn_core.model.names import GROUP_ORDER
from wrn_core.plots.style import placeholder

COLOR_BY = {
    "effective": ("effective_fraction", "effective ÷ allocated width", "Viridis"),
    "dead": ("dead_fraction", "dead channels ÷ allocated", "Reds"),
}
DEAD_SCALE_MIN = 0.1  # the dead map's colour scale runs to at least 10%, so a few dead channels are not full red
ROW_PX = 22  # height of one layer's row of the map
MAP_CHROME_PX = 130  # title, axis labels and margins around the rows
GROUP_LINE = "rgba(255, 255, 255, 0.9)"  # between two groups' rows


def _map_height(layers: int) -> int:
    return max(260, MAP_CHROME_PX + ROW_PX * max(1, layers))


def _layer_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each measured ReLU once, in forward order: order, layer, group, channels."""
    return frame.drop_duplicates("order").sort_values("order")[["order", "layer", "group", "channels"]]


def _grid(frame: pd.DataFrame, column: str, epochs: list[int], layers: pd.DataFrame) -> np.ndarray:
    """(layers, epochs) of a column; NaN at an epoch that was not measured."""
    table = frame.pivot_table(index="order", columns="epoch", values=column, aggfunc="first")
    return table.reindex(index=layers["order"].tolist(), columns=epochs).to_numpy(dtype=float)


def _hover(frame: pd.DataFrame, epochs: list[int], layers: pd.DataFrame) -> np.ndarray:
    """(layers, epochs, 5) customdata: effective, channels, dead, effective %, dead %."""
    columns = ("effective", "channels", "dead", "effective_fraction", "dead_fraction")
    planes = [_grid(frame, column, epochs, layers) for column in columns]
    planes[3], planes[4] = planes[3] * 100.0, planes[4] * 100.0
    return np.stack(planes, axis=-1)


def _mark_groups(fig: go.Figure, layers: pd.DataFrame, x_end: float) -> None:
    """A line between two groups' rows and each group's name left of its rows, as the layer table groups them."""
    groups = layers["group"].tolist()
    for i in range(1, len(groups)):
        if groups[i] != groups[i - 1]:
            fig.add_shape(type="line", x0=0.5, x1=x_end, y0=i - 0.5, y1=i - 0.5, line={"color": GROUP_LINE, "width": 3})
    for group in dict.fromkeys(groups):
        rows = [i for i, g in enumerate(groups) if g == group]
        fig.add_annotation(x=0, xref="paper", xanchor="right", xshift=-112, y=(rows[0] + rows[-1]) / 2, text=f"<b>{group}</b>",
                           showarrow=False, font={"size": 11})


def width_map(frame: pd.DataFrame, color_by: str = "effective", planned_epochs: int | None = None) -> go.Figure:
    """The layers × epochs map of one run (analysis.width.width_frame): one row per ReLU in forward order, named as
    in the layer table and grouped (a line between groups, the group named at the left), one column per epoch.

    Coloured by effective ÷ allocated width (color_by "effective", 0–1) or by the dead channels' share ("dead");
    the hover says both. The x axis runs to the planned epochs, so the map gains a column per epoch in a fixed
    frame; an epoch that was not measured (--width-every) stays blank.
    """
    column, title, scale = COLOR_BY[color_by]
    last = int(frame["epoch"].max()) if not frame.empty else 0
    end = max(last, planned_epochs or 0, 1)
    fig = go.Figure()
    if frame.empty:
        placeholder(fig, "width use appears after the first epoch's test pass")
        fig.update_layout(height=_map_height(7), xaxis={"range": [0.5, end + 0.5], "title": "epoch"},
                          yaxis={"visible": False})
        return fig
    layers = _layer_rows(frame)
    epochs = list(range(1, last + 1))
    z = _grid(frame, column, epochs, layers)
    zmax = 1.0 if color_by == "effective" else max(DEAD_SCALE_MIN, float(np.nanmax(z)) if np.isfinite(z).any() else 0.0)
    names = layers["layer"].tolist()
    fig.add_trace(go.Heatmap(
        z=z, x=epochs, y=list(range(len(names))), zmin=0.0, zmax=zmax, colorscale=scale, xgap=1, ygap=1,
        customdata=_hover(frame, epochs, layers), text=[[name] * len(epochs) for name in names], hoverongaps=False,
        colorbar={"title": {"text": title, "side": "right"}, "tickformat": ".0%"},
        hovertemplate=("%{text} · epoch %{x}<br>effective %{customdata[0]:.1f} of %{customdata[1]:.0f} channels "
                       "(%{customdata[3]:.0f}%)<br>dead %{customdata[2]:.0f} (%{customdata[4]:.0f}%)<extra></extra>"),
    ))
    _mark_groups(fig, layers, end + 0.5)
    fig.update_layout(
        height=_map_height(len(names)),
        margin={"l": 170, "r": 20, "t": 40, "b": 40},
        title={"text": f"Width use by layer and epoch: {title}", "font": {"size": 14}},
        xaxis={"title": "epoch", "range": [0.5, end + 0.5], "dtick": max(1, round(end / 20)), "showgrid": False},
        yaxis={"tickvals": list(range(len(names))), "ticktext": names, "range": [len(names) - 0.5, -0.5],
               "showgrid": False},
    )
    return fig


def group_width_figure(runs: Sequence[tuple[str, pd.DataFrame, str]]) -> go.Figure:
    """Per-group effective ÷ allocated width (%) over epochs of several runs: one panel per group in forward order
    (so runs of different k line up by group, as the Architecture page lines models up), one line per run and group
    in the run's colour. runs: (label, analysis.width.group_frame, colour)."""
    present = {group for _, groups, _ in runs for group in groups["group"]}
    panels = [g for g in GROUP_ORDER if g in present] + sorted(present - set(GROUP_ORDER))
    fig = make_subplots(rows=1, cols=max(1, len(panels)), shared_yaxes=True, subplot_titles=panels or [""],
                        horizontal_spacing=0.03)
    for label, groups, color in runs:
        shown = False
        for col, group in enumerate(panels, start=1):
            part = groups[groups["group"] == group].sort_values("epoch")
            if part.empty:
                continue
            fig.add_trace(go.Scatter(
                x=part["epoch"].tolist(), y=(part["effective_fraction"] * 100.0).tolist(), mode="lines+markers",
                line={"color": color, "width": 2}, marker={"size": 6}, name=label, legendgroup=label, showlegend=not shown,
                customdata=np.stack([part["channels"], part["dead"]], axis=-1),
                hovertemplate=(f"{label} · {group}<br>epoch %{{x}}: %{{y:.1f}}% of its width"
                               "<br>%{customdata[1]} of %{customdata[0]} channels dead<extra></extra>"),
            ), row=1, col=col)
            shown = True
    fig.update_yaxes(range=[0, 105], title_text="effective ÷ allocated width (%)", row=1, col=1)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_layout(height=380, margin={"l": 60, "r": 20, "t": 50, "b": 40}, hovermode="closest",
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    if not runs or not panels:
        placeholder(fig, "no width records: runs measure width use on each epoch's test pass (--width-every)")
    return fig
