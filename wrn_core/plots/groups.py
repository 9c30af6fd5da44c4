"""Figures of grouped runs: mean curves with ±std bands per group, and parallel coordinates of configs against accuracy."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import hex_to_rgb

from wrn_core.analysis.importance import TARGET_ALIASES
from wrn_core.plots.style import placeholder, run_color
from wrn_core.plots.training import X_TITLES

BAND_OPACITY = 0.18  # the ±std band: faint enough that overlapping groups stay readable
MEMBER_OPACITY = 0.35  # a member run's own curve under its group's band: visible, never mistaken for the mean
MAX_INTEGER_TICKS = 12  # an integer parallel-coordinates axis labels each value up to this many, else a stride
METRIC_TITLES = {"train_acc": "train accuracy", "test_acc": "test accuracy", "train_loss": "train loss",
                 "test_loss": "test loss"}
TARGET_TITLES = {"best_test_acc": "best test acc (%)", "final_test_acc": "final test acc (%)",
                 "best test acc (%)": "best test acc (%)", "final test acc (%)": "final test acc (%)"}
FRACTION_TARGETS = ("best_test_acc", "final_test_acc")  # cells_frame's fractions: drawn in percent like every chart
LABEL_ANGLE = -25  # degrees: the parallel coordinates' axis names, tilted so that neighbours do not overlap


def _fill(color: str) -> str:
    """A palette colour ('#636efa' or 'rgb(...)') as the band's translucent rgba."""
    if color.startswith("#"):
        r, g, b = hex_to_rgb(color)
    else:
        r, g, b = (int(float(v)) for v in color[color.index("(") + 1: color.index(")")].split(",")[:3])
    return f"rgba({r}, {g}, {b}, {BAND_OPACITY})"


def _member_traces(members: pd.DataFrame, group: str, metric: str, scale: float, colors: Mapping[str, str],
                   fallback: str) -> list[go.Scatter]:
    """The group's member runs' own curves of the metric (analysis.member_curves rows), thin and faint, each in
    its run's colour (the group's where it has none); no legend entries: the group's legend toggles them."""
    part = members[(members["group"] == group) & (members["metric"] == metric)]
    traces = []
    for run, curve in part.groupby("run", sort=False):
        curve = curve.sort_values("x", kind="stable")
        traces.append(go.Scatter(
            x=curve["x"].astype("float64").tolist(), y=(curve["value"].astype("float64") * scale).tolist(),
            mode="lines", line={"color": colors.get(run, fallback), "width": 1}, opacity=MEMBER_OPACITY,
            name=str(run), legendgroup=str(group), showlegend=False,
            hovertemplate="%{y:.2f}" + ("%" if scale != 1.0 else "") + " at x=%{x}<extra>" + str(run) + "</extra>",
        ))
    return traces


def group_curves_figure(banded: pd.DataFrame, metric: str, colors: Mapping[str, str] | None = None,
                        members: pd.DataFrame | None = None, x: str = "epoch") -> go.Figure:
    """One mean line per group of analysis.group_curves' table, over a filled mean ± std band (no band
    where a group has one run). Accuracies (fractions there) are drawn in percent. Per group: its members'
    own curves when `members` (analysis.member_curves' rows) is given, the band's upper edge, its lower edge
    filled up to it, then the mean line, all in the group's colour but the members', which take their runs'.

    colors: group label or run name -> colour (a group without one cycles the palette), so that a run drawn
    alone here has the colour it has in the per-run view. x: what the curves' x is (training.X_TITLES), for the
    axis title with its unit, as the per-run view titles it."""
    fig = go.Figure()
    colors = colors or {}
    mean_col, std_col = f"{metric}_mean", f"{metric}_std"
    percent = metric.endswith("acc")
    scale = 100.0 if percent else 1.0
    data = banded.dropna(subset=[mean_col]) if mean_col in banded.columns else banded.iloc[0:0]
    for index, (group, part) in enumerate(data.groupby("group", sort=False)):
        color = colors.get(group) or run_color(index)
        xs = part["x"].astype("float64").to_numpy()
        mean = part[mean_col].astype("float64").to_numpy() * scale
        std = part[std_col].astype("float64").fillna(0.0).to_numpy() * scale if std_col in part else np.zeros_like(mean)
        n = int(part["n"].iloc[0]) if "n" in part.columns else 1
        label = f"{group} (n={n})"
        if members is not None:
            for trace in _member_traces(members, group, metric, scale, colors, color):
                fig.add_trace(trace)
        if n > 1:
            fig.add_trace(go.Scatter(x=xs, y=mean + std, mode="lines", line={"width": 0}, legendgroup=str(group),
                                     showlegend=False, hoverinfo="skip", name=f"{label} +std"))
            fig.add_trace(go.Scatter(x=xs, y=mean - std, mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor=_fill(color), legendgroup=str(group), showlegend=False,
                                     hoverinfo="skip", name=f"{label} -std"))
        fig.add_trace(go.Scatter(
            x=xs, y=mean, mode="lines+markers" if len(xs) < 30 else "lines", line={"color": color, "width": 2},
            marker={"size": 5}, name=label, legendgroup=str(group), customdata=std,
            hovertemplate="%{y:.2f}" + ("%" if percent else "") + " ± %{customdata:.2f} at x=%{x}<extra>" + label
                          + "</extra>",
        ))
    if not fig.data:
        placeholder(fig, "no group has points of this metric at the same x in every run")
    title = METRIC_TITLES.get(metric, metric)
    fig.update_layout(
        height=380,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        yaxis={"title": f"{title} (%)" if percent else title},
        xaxis={"title": X_TITLES[x]},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="x unified",
    )
    return fig


def _integer_ticks(values: Sequence[float]) -> list[int]:
    """Whole-number ticks for an axis of whole numbers: each value, or an even stride when there are many."""
    distinct = sorted({int(v) for v in values})
    if len(distinct) <= MAX_INTEGER_TICKS:
        return distinct
    low, high = distinct[0], distinct[-1]
    stride = max(1, math.ceil((high - low) / (MAX_INTEGER_TICKS - 1)))
    return list(range(low, high + 1, stride))


def _dimension(series: pd.Series, label: str) -> dict:
    """A Parcoords dimension: numbers as they are (whole numbers, such as k, N or epochs, ticked at whole numbers
    only); text (optimizer, dataset) and flags as integer ticks 0..k-1 labelled with their values."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = pd.to_numeric(series, errors="coerce").astype("float64")
        dimension = {"label": label, "values": values.tolist()}
        known = values.dropna()
        if not known.empty and (known == known.round()).all():
            ticks = _integer_ticks(known.tolist())
            dimension.update(tickvals=ticks, ticktext=[f"{t:,}" for t in ticks])
            if len(ticks) == 1:  # one value: centred, not at the foot of an empty axis
                dimension["range"] = [ticks[0] - 1, ticks[0] + 1]
        return dimension
    text = series.astype("object").map(lambda v: "missing" if v is None or v != v else str(v))
    labels = sorted(text.unique())
    codes = text.map({value: i for i, value in enumerate(labels)}).astype("int64")
    return {"label": label, "values": codes.tolist(), "tickvals": list(range(len(labels))), "ticktext": labels,
            "range": [-0.25, len(labels) - 0.75] if len(labels) > 1 else [-1, 1]}


def parallel_coordinates_figure(frame: pd.DataFrame, params: Sequence[str], target: str = "best_test_acc") -> go.Figure:
    """One line per run across the params' axes and the target's last axis, coloured by the target
    (runs_frame or sweeps.cells_frame; best_test_acc/final_test_acc also mean runs_frame's percent columns).
    Categorical params are integer ticks labelled with their values; runs without a target are left out."""
    column = target if target in frame.columns else TARGET_ALIASES.get(target, target)
    params = [p for p in params if p in frame.columns]
    fig = go.Figure()
    if column not in frame.columns or not params:
        placeholder(fig, "nothing to draw: no such target or parameters in this table")
        return fig
    scale = 100.0 if column in FRACTION_TARGETS else 1.0
    data = frame.assign(_y=pd.to_numeric(frame[column], errors="coerce").astype("float64") * scale)
    data = data[np.isfinite(data["_y"].to_numpy())]
    if data.empty:
        placeholder(fig, "no run with a test accuracy yet")
        return fig
    title = TARGET_TITLES.get(column, column)
    dimensions = [_dimension(data[p], p) for p in params] + [{"label": title, "values": data["_y"].tolist(),
                                                                "tickformat": ".2f"}]
    fig.add_trace(go.Parcoords(
        line={"color": data["_y"].tolist(), "colorscale": "Viridis", "showscale": True, "colorbar": {"title": title}},
        dimensions=dimensions,
        # Angled: six or more axes in half a page put level names (planned_epochs, synthetic_train) over each other.
        labelangle=LABEL_ANGLE, labelside="top",
    ))
    fig.update_layout(height=430, margin={"l": 60, "r": 40, "t": 80, "b": 30})
    return fig
