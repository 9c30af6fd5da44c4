"""Runs figure: best test accuracy against parameter count, one point per run, beside the paper's results."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from wrn_core.plots.style import paper_trace, run_color
from wrn_core.reference import paper_points


def acc_vs_params_figure(frame: pd.DataFrame, paper: bool = True) -> go.Figure:
    """Best test accuracy (%) against parameter count (log x), one point per run (a runs_frame).

    paper: also mark the paper's published CIFAR-10 results (wrn_core.reference), labelled by model.
    """
    fig = go.Figure()
    if paper:
        points = paper_points()
        fig.add_trace(paper_trace(points, points["params"].astype("float64").tolist(), "%{x:,.0f} params"))
    if not frame.empty:
        data = frame.dropna(subset=["params", "best test acc (%)"])
    else:
        data = frame
    for index, (model, part) in enumerate(data.groupby("model", sort=True) if not data.empty else []):
        fig.add_trace(
            go.Scatter(
                x=part["params"].astype("float64").tolist(),
                y=part["best test acc (%)"].tolist(),
                mode="markers",
                marker={"size": 11, "color": run_color(index)},
                name=str(model),
                text=part["name"].tolist(),
                customdata=part[["optimizer", "dataset"]].to_numpy().tolist(),
                hovertemplate=(
                    "%{text}<br>%{x:,.0f} params<br>best test %{y:.2f}%"
                    "<br>%{customdata[0]}, %{customdata[1]}<extra>" + str(model) + "</extra>"
                ),
            )
        )
    if data.empty:
        fig.add_annotation(
            text="no run with a test accuracy yet" + (" (◇ the paper's results)" if paper else ""),
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"size": 14, "color": "gray"},
        )
    fig.update_layout(
        height=380,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "parameters", "type": "log"},
        yaxis={"title": "best test accuracy (%)"},
        showlegend=paper or len(fig.data) > 1,  # the legend names the paper's points
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return fig
