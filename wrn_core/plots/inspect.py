"""Inspect figures from an evaluation (wrn_core.inspect): confusion heatmap, per-class bars, reliability, width use."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from wrn_core.plots.architecture import layer_x, width_figure
from wrn_core.plots.style import TEST_COLOR, TRAIN_COLOR, WIDTH_COLORS

Evaluation = Mapping[str, Any]
DEAD_COLOR = "#d62728"  # dead channels: red crosses, as the Architecture chart marks its jumps in red


def confusion_figure(evaluation: Evaluation, normalise: bool = False) -> go.Figure:
    """Heatmap of the confusion matrix (rows true, columns predicted), counts or fractions of each true class."""
    counts = np.asarray(evaluation["confusion"], dtype=np.float64)
    classes = list(evaluation["classes"])
    support = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0) if normalise else counts
    text = [[f"{v:.0%}" if normalise else f"{int(v)}" for v in row] for row in values]
    fig = go.Figure(go.Heatmap(
        z=values.tolist(), x=classes, y=classes, colorscale="Blues", text=text, texttemplate="%{text}",
        customdata=counts.tolist(), zmin=0, zmax=1 if normalise else None,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata:.0f} images<extra></extra>",
        colorbar={"title": "share of true class" if normalise else "images"},
    ))
    size = max(360, 36 * len(classes) + 160)  # pixels: one readable cell per class
    fig.update_layout(height=size, margin={"l": 80, "r": 20, "t": 30, "b": 80}, xaxis_title="predicted class",
                      yaxis_title="true class", yaxis={"autorange": "reversed"})
    return fig


def per_class_figure(evaluation: Evaluation) -> go.Figure:
    """Precision and recall per class as grouped bars (fractions)."""
    rows = pd.DataFrame(evaluation["per_class"])
    fig = go.Figure([
        go.Bar(x=rows["class"], y=rows["precision"], name="precision", marker_color=TRAIN_COLOR),
        go.Bar(x=rows["class"], y=rows["recall"], name="recall", marker_color=TEST_COLOR),
    ])
    fig.update_layout(barmode="group", height=320, yaxis={"range": [0, 1], "tickformat": ".0%"},
                      margin={"l": 50, "r": 20, "t": 30, "b": 60},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})
    return fig


def reliability_figure(evaluation: Evaluation) -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration, bin sizes on hover."""
    bins = [b for b in evaluation["reliability"] if b["images"]]
    centres = [(b["lower"] + b["upper"]) / 2 for b in bins]
    width = bins[0]["upper"] - bins[0]["lower"] if bins else 1 / 15
    fig = go.Figure([
        go.Bar(x=centres, y=[b["accuracy"] for b in bins], width=width * 0.95, name="accuracy",
               marker_color=TRAIN_COLOR, customdata=[[b["images"], b["confidence"]] for b in bins],
               hovertemplate="confidence %{customdata[1]:.2f}<br>accuracy %{y:.1%}<br>%{customdata[0]} images<extra></extra>"),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line={"dash": "dash", "color": "grey"}),
    ])
    fig.update_layout(height=340, xaxis={"range": [0, 1], "title": "confidence"},
                      yaxis={"range": [0, 1], "title": "accuracy"}, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      title={"text": f"ECE {evaluation['ece']:.3f}", "x": 0.01, "font": {"size": 13}},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0.3})
    return fig


def width_use_figure(runs: Sequence[tuple[str, pd.DataFrame, Sequence[Mapping[str, Any]]]]) -> go.Figure:
    """The Architecture page's width chart (allocated width per layer, groups shaded) with, per ReLU, the
    effective width and the dead channels marked. runs: (label, layer table, evaluation's width_use rows)."""
    fig = width_figure([(label or "allocated", table) for label, table, _ in runs])
    for position, (label, table, rows) in enumerate(runs):
        # The allocated width is drawn at each layer's group-aligned x, so its use must be too.
        xs = layer_x(table)
        use = [r for r in rows if r["layer"] in xs]
        x = [xs[r["layer"]] for r in use]
        color = WIDTH_COLORS[position % len(WIDTH_COLORS)]
        name = f"{label} " if label else ""
        fig.add_trace(go.Scatter(
            x=x, y=[r["effective_width"] for r in use], mode="markers+lines", name=f"{name}effective width",
            line={"dash": "dot", "color": color}, marker={"symbol": "circle", "size": 7, "color": color},
            customdata=[[r["layer"], r["channels"], r["dead_channels"]] for r in use],
            hovertemplate="%{customdata[0]}<br>effective %{y:.1f} of %{customdata[1]} channels"
                          "<br>%{customdata[2]} dead<extra></extra>",
        ))
        dead = [r for r in use if r["dead_channels"] > 0]
        fig.add_trace(go.Scatter(
            x=[xs[r["layer"]] for r in dead], y=[r["channels"] - r["dead_channels"] for r in dead],
            mode="markers+text", name=f"{name}live channels (dead marked)",
            marker={"symbol": "x", "size": 10, "color": DEAD_COLOR}, text=[f"{r['dead_channels']} dead" for r in dead],
            textposition="bottom center", textfont={"color": DEAD_COLOR, "size": 10}, customdata=[r["layer"] for r in dead],
            hovertemplate="%{customdata}<br>%{text}: %{y} channels alive<extra></extra>", showlegend=True,
        ))
    # Half the page wide on Inspect (the over-training map beside it): the Architecture page's longer title is cut.
    fig.update_layout(yaxis_title="channels (allocated, effective, alive)", xaxis_title="layers in forward order, by group",
                      showlegend=True)
    return fig


def top_classes_figure(top: Sequence[tuple[str, float]]) -> go.Figure:
    """One image's top classes as horizontal bars of probability, the most probable on top."""
    fig = go.Figure(go.Bar(x=[p for _, p in top][::-1], y=[c for c, _ in top][::-1], orientation="h",
                           marker_color=TRAIN_COLOR, text=[f"{p:.1%}" for _, p in top][::-1], textposition="auto"))
    fig.update_layout(height=40 * len(top) + 60, xaxis={"range": [0, 1], "tickformat": ".0%"},
                      margin={"l": 90, "r": 10, "t": 10, "b": 30})
    return fig
