"""The sweep's small multiples: one panel per cell (seeds as a band), its test accuracy over epochs."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrn_core.analysis import metrics_frames
from wrn_core.plots.style import REFERENCE_COLOR, TEST_COLOR, placeholder, run_color
from wrn_core.reference import OFFICIAL_LOG_LABEL
from wrn_core.store.records import ENDED_STATUSES, FINISHED
from wrn_core.sweeps import group_columns, group_label, seed_band

BAND_FILL = "rgba(99, 110, 250, 0.18)"


def _panel_grid(cells: pd.DataFrame, groups: list[tuple]) -> tuple[int, int, dict[tuple, tuple[int, int]]]:
    """(rows, cols, group -> (row, col)): N down and k across when only N and k vary, else wrapped by 4."""
    keys = group_columns(cells)
    if keys == ["blocks", "widen_factor"]:
        ns = sorted({g[0] for g in groups})
        ks = sorted({g[1] for g in groups})
        return len(ns), len(ks), {g: (ns.index(g[0]) + 1, ks.index(g[1]) + 1) for g in groups}
    cols = min(4, max(1, len(groups)))
    rows = -(-len(groups) // cols)
    return rows, cols, {g: (i // cols + 1, i % cols + 1) for i, g in enumerate(groups)}


def _panel_title(keys: list[str], group: tuple, members: list[dict[str, Any]]) -> str:
    """The cell's model name, and what it waits for unless all its runs finished: pending, running, 1/3 ended…"""
    statuses = [r["status"] for r in members]
    title = group_label(dict(zip(keys, group)))
    if set(statuses) != {FINISHED}:
        ended = sum(status in ENDED_STATUSES for status in statuses)
        title += f" · {statuses[0]}" if len(statuses) == 1 else f" · {ended}/{len(statuses)} ended"
    return title


def _add_seed_band(fig: go.Figure, row: int, col: int, curves: list[pd.DataFrame], shown: set[str]) -> None:
    """A cell's mean ± std over seeds as a shaded band with its mean line, where it has several seeds."""
    band = seed_band(curves)
    if band.empty or int(band["count"].max()) <= 1:
        return
    upper = ((band["mean"] + band["std"]) * 100.0).tolist()
    lower = ((band["mean"] - band["std"]) * 100.0).tolist()
    fig.add_trace(go.Scatter(x=band["epoch"].tolist(), y=upper, mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip", legendgroup="band"), row=row, col=col)
    fig.add_trace(
        go.Scatter(x=band["epoch"].tolist(), y=lower, mode="lines", line={"width": 0}, fill="tonexty",
                   fillcolor=BAND_FILL, name="mean ± std over seeds", legendgroup="band",
                   showlegend="band" not in shown, hoverinfo="skip"),
        row=row, col=col,
    )
    fig.add_trace(
        go.Scatter(x=band["epoch"].tolist(), y=(band["mean"] * 100.0).tolist(), mode="lines",
                   line={"color": TEST_COLOR, "width": 2}, name="mean", legendgroup="band", showlegend=False,
                   hovertemplate="mean %{y:.2f}%<extra></extra>"),
        row=row, col=col,
    )
    shown.add("band")


def _add_cell_panel(fig: go.Figure, row: int, col: int, members: list[dict[str, Any]],
                    records_by_run: Mapping[str, Iterable[Mapping[str, Any]]], seeds: list[Any],
                    shown: set[str]) -> bool:
    """One cell's seed curves (test accuracy, %) and seed band; True when it drew any point.

    shown: the legend entries already drawn, so that each is named once across panels.
    """
    # An empty trace per panel: plotly.js draws no axes for a subplot without traces (a pending cell).
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip"), row=row, col=col)
    curves = []
    any_points = False
    for member in members:
        _, epochs = metrics_frames(records_by_run.get(member["run"], ()))
        epochs = epochs.dropna(subset=["test_acc"])
        curves.append(epochs)
        if epochs.empty:
            continue
        any_points = True
        name = f"seed {member['seed']}"
        color = run_color(seeds.index(member["seed"]))
        fig.add_trace(
            go.Scatter(
                x=epochs["epoch"].tolist(), y=(epochs["test_acc"] * 100.0).tolist(), mode="lines+markers",
                line={"color": color, "width": 1.5 if len(members) > 1 else 2}, marker={"size": 5},
                name=name, legendgroup=name, showlegend=name not in shown,
                hovertemplate=member["run"] + "<br>epoch %{x}: %{y:.2f}%<extra></extra>",
            ),
            row=row, col=col,
        )
        shown.add(name)
    if len(members) > 1:
        _add_seed_band(fig, row, col, curves, shown)
    return any_points


def _reference_trace(reference: pd.DataFrame, name: str, show_legend: bool) -> go.Scatter:
    """A reference curve (x = epoch, test_acc as a fraction) as a thin dashed line, in percent."""
    return go.Scatter(
        x=reference["x"].tolist(), y=(reference["test_acc"] * 100.0).tolist(), mode="lines",
        line={"color": REFERENCE_COLOR, "width": 1.2, "dash": "dash"}, name=name,
        legendgroup="reference", showlegend=show_legend,
        hovertemplate="epoch %{x}: %{y:.2f}%<extra>" + name + "</extra>",
    )


def _share_axes(fig: go.Figure, n_rows: int, epochs_planned: int) -> None:
    """Every panel on the same ranges, tick labels only on the outer axes.

    Set explicitly: plotly.js's linked ("matches") axes lose single-point traces (a 1-epoch cell).
    The x range is the sweep's epochs, so that a 200-epoch reference does not squeeze a short sweep
    against the axis (double-click zooms out to all of it).
    """
    plotted = [y for trace in fig.data if trace.y is not None for y in trace.y if y is not None and y == y]
    top = min(100.0, max(plotted) * 1.08 + 2.0) if plotted else 100.0
    fig.update_yaxes(range=[0.0, top])
    if epochs_planned > 0:
        fig.update_xaxes(range=[0.5, epochs_planned + 0.5])
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(title_text="epoch", showticklabels=True, row=n_rows)
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(title_text="test acc (%)", showticklabels=True, col=1)


def sweep_small_multiples(
    cells: pd.DataFrame,
    records_by_run: Mapping[str, Iterable[Mapping[str, Any]]],
    reference: pd.DataFrame | None = None,
    reference_name: str = OFFICIAL_LOG_LABEL,
) -> go.Figure:
    """Test accuracy (%) per epoch, one small panel per (N, k) (N down, k across), all on shared axes.

    Each seed is a line (one colour per seed across panels); where a panel has several seeds, their
    mean ± std is a shaded band. reference: a curve (columns x = epoch, test_acc as a fraction, e.g.
    reference.official_curve("epoch")) drawn dashed in every panel; the x axes stay on the sweep's
    epochs (zoom out to see the rest of it).
    """
    keys = group_columns(cells)
    rows_of = cells.to_dict("records")
    members_of: dict[tuple, list[dict[str, Any]]] = {}  # (N, k, …) -> its runs, in cells order
    for row in rows_of:
        members_of.setdefault(tuple(row[k] for k in keys), []).append(row)
    groups = list(members_of)
    if not groups:
        fig = go.Figure()
        placeholder(fig, "no cells")
        return fig
    n_rows, n_cols, position = _panel_grid(cells, groups)
    titles = [""] * (n_rows * n_cols)
    for group in groups:
        row, col = position[group]
        titles[(row - 1) * n_cols + (col - 1)] = _panel_title(keys, group, members_of[group])
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles,
                        horizontal_spacing=0.04 if n_cols > 1 else 0.0, vertical_spacing=min(0.12, 0.3 / n_rows))
    seeds = sorted({row["seed"] for row in rows_of})
    shown: set[str] = set()
    any_points = False
    epochs_planned = int(pd.to_numeric(cells["epochs"], errors="coerce").max()) if "epochs" in cells else 0
    for group in groups:
        row, col = position[group]
        any_points |= _add_cell_panel(fig, row, col, members_of[group], records_by_run, seeds, shown)
        if reference is not None and not reference.empty:
            fig.add_trace(_reference_trace(reference, reference_name, "reference" not in shown), row=row, col=col)
            shown.add("reference")
    _share_axes(fig, n_rows, epochs_planned)
    fig.update_layout(
        height=60 + 200 * n_rows,
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0 + 40 / (60 + 200 * n_rows), "x": 0},
        hovermode="closest",
    )
    if not any_points:
        fig.add_annotation(text="waiting for the first epochs…", xref="paper", yref="paper", x=0.5, y=1.0, yshift=-40,
                           showarrow=False, font={"size": 14, "color": "gray"})
    return fig
