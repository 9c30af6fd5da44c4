"""Runs figure: best test accuracy against parameter count, one colour per dataset, the paper's results beside CIFAR-10 runs."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from wrn_core.plots.style import log_axis, paper_trace, run_color
from wrn_core.reference import paper_points

PAPER_DATASET = "cifar10"  # the paper's points are CIFAR-10 results: comparable with CIFAR-10 runs only
DATASET_NAMES = {"synthetic": "synthetic", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "folder": "image folder"}
DATASET_SYMBOLS = {"cifar10": "circle", "cifar100": "square", "synthetic": "x", "folder": "triangle-up"}


def acc_vs_params_figure(frame: pd.DataFrame, paper: bool = True) -> go.Figure:
    """Best test accuracy (%) against parameter count (log x), one point per run (a runs_frame),
    one colour and symbol per dataset, so runs on different data are never read as one series.

    paper: also mark the paper's published CIFAR-10 results (wrn_core.reference), labelled by model,
    when there is a CIFAR-10 run to compare them with.
    """
    fig = go.Figure()
    data = frame.dropna(subset=["params", "best test acc (%)"]) if not frame.empty else frame
    datasets = sorted(data["dataset"].dropna().unique().tolist()) if not data.empty else []
    show_paper = paper and PAPER_DATASET in datasets
    xs: list[float] = []
    if show_paper:
        points = paper_points()
        xs += points["params"].astype("float64").tolist()
        fig.add_trace(paper_trace(points, points["params"].astype("float64").tolist(), "%{x:,.0f} params"))
    for index, dataset in enumerate(datasets):
        part = data[data["dataset"] == dataset]
        label = DATASET_NAMES.get(dataset, str(dataset))
        xs += part["params"].astype("float64").tolist()
        fig.add_trace(
            go.Scatter(
                x=part["params"].astype("float64").tolist(),
                y=part["best test acc (%)"].tolist(),
                mode="markers",
                marker={"size": 11, "color": run_color(index), "symbol": DATASET_SYMBOLS.get(dataset, "circle")},
                name=f"{label} runs",
                text=part["name"].tolist(),
                customdata=part[["model", "optimizer"]].to_numpy().tolist(),
                hovertemplate=(
                    "%{text}<br>%{customdata[0]}, %{x:,.0f} params<br>best test %{y:.2f}%"
                    "<br>%{customdata[1]}<extra>" + label + "</extra>"
                ),
            )
        )
    if data.empty:
        fig.add_annotation(
            text="no run with a test accuracy yet",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"size": 14, "color": "gray"},
        )
    elif paper and not show_paper:
        fig.add_annotation(
            text="the paper's CIFAR-10 results show beside CIFAR-10 runs",
            xref="paper", yref="paper", x=1.0, y=0.0, xanchor="right", yanchor="bottom", showarrow=False,
            font={"size": 11, "color": "gray"},
        )
    fig.update_layout(
        height=380,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "parameters", **log_axis(xs)},
        yaxis={"title": "best test accuracy (%)"},
        showlegend=len(fig.data) > 0,  # the legend names each dataset (and the paper's points)
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
