"""Sweep figures: the N × k heatmap, accuracy trade-off with its Pareto front, small multiples per cell."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrn_core.analysis import metrics_frames
from wrn_core.analysis.width import WIDTH_METRICS
from wrn_core.config import WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.plots.style import BEST_COLOR, REFERENCE_COLOR, TEST_COLOR, log_axis, paper_trace, placeholder, run_color
from wrn_core.reference import OFFICIAL_LOG_LABEL, paper_points
from wrn_core.store.records import FINISHED
from wrn_core.store.records import ENDED_STATUSES
from wrn_core.sweeps import (
    final_mask,
    group_columns,
    group_label,
    seed_band,
    tradeoff_points,
    unfinished_points,
)

# cells_frame metric -> (title, unit); accuracies are fractions in the frame and percent on charts.
SWEEP_METRICS = {
    "best_test_acc": ("best test accuracy", "%"),
    "final_test_acc": ("final test accuracy", "%"),
    "train_seconds": ("training time", "s"),
    "images_per_s": ("training images/s", "img/s"),
    "params": ("parameters", ""),
    # Effective ÷ allocated width of each group at the last measured epoch (analysis.width.width_metrics).
    **{column: (f"effective width, {group}", "% of allocated") for column, group in WIDTH_METRICS.items()},
}
TRADEOFF_X_TITLES = {
    "params": "parameters",
    "macs": "multiply-accumulates per image",
    "train_seconds": "training time (s)",
}
FRONT_COLOR = BEST_COLOR
OFF_FRONT_COLOR = "rgba(99, 110, 250, 0.55)"
BAND_FILL = "rgba(99, 110, 250, 0.18)"


def _is_percent(metric: str) -> bool:
    return metric.endswith("_acc") or metric in WIDTH_METRICS


def _metric_text(value: float | None, metric: str, spread: float | None = None) -> str:
    """A heatmap cell's label: '45.2%', '12.3 s', '1,234', '0.30 M'; ' ± spread' where seeds differ."""
    if value is None or value != value:  # NaN: no value yet
        return ""
    if _is_percent(metric):
        text = f"{value:.1f}%"
    elif metric == "train_seconds":
        text = f"{value:.1f} s"
    elif metric == "images_per_s":
        text = f"{value:,.0f}"
    else:
        text = f"{value / 1e6:.2f} M" if value >= 1e4 else f"{value:,.0f}"
    if spread is not None and spread == spread and spread > 0:
        text += f" ± {spread:.1f}" if _is_percent(metric) or metric == "train_seconds" else f" ± {spread:,.0f}"
    return text


def _heat_cells(grid: pd.DataFrame, metric: str, spread: pd.DataFrame | None) -> tuple[list[list[float | None]], list[list[str]]]:
    """(z, text) rows in grid order: values on the chart's scale (percent for accuracies), None where missing."""
    scale = 100.0 if _is_percent(metric) else 1.0
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    for n in grid.index:
        row, labels = [], []
        for k in grid.columns:
            value = grid.loc[n, k]
            value = None if value is None or pd.isna(value) else float(value) * scale
            std = None
            if spread is not None and n in spread.index and k in spread.columns and pd.notna(spread.loc[n, k]):
                std = float(spread.loc[n, k]) * scale
            row.append(value)
            labels.append(_metric_text(value, metric, std))
        z.append(row)
        text.append(labels)
    return z, text


UNFINISHED_FILL = "#eeeeee"  # a square that is not a result yet: pale grey, off the colour scale
UNFINISHED_TEXT = "#555555"
UNFINISHED_NAME = "not finished (no result yet)"


def _unfinished_trace(grid: pd.DataFrame, z: list[list[float | None]], unfinished: pd.DataFrame | None,
                      x_labels: list[str], y_labels: list[str]) -> go.Heatmap | None:
    """The squares without a result but with a cell on its way, pale grey and labelled with where it is
    ('stopped at 1/2'); None when there are none."""
    if unfinished is None:
        return None
    pale: list[list[float | None]] = []
    labels: list[list[str]] = []
    for i, n in enumerate(grid.index):
        row, texts = [], []
        for j, k in enumerate(grid.columns):
            label = unfinished.loc[n, k] if n in unfinished.index and k in unfinished.columns else None
            shown = z[i][j] is None and isinstance(label, str)
            row.append(0.0 if shown else None)
            texts.append(label if shown else "")
        pale.append(row)
        labels.append(texts)
    if all(v is None for row in pale for v in row):
        return None
    return go.Heatmap(
        z=pale, x=x_labels, y=y_labels, text=labels, texttemplate="%{text}",
        textfont={"size": 12, "color": UNFINISHED_TEXT}, colorscale=[[0, UNFINISHED_FILL], [1, UNFINISHED_FILL]],
        showscale=False, hoverongaps=False, name=UNFINISHED_NAME, xgap=1, ygap=1,
        hovertemplate="%{y}, %{x}<br>%{text}: not a result yet<extra></extra>",
    )


PREDICTED_OPACITY = 0.35  # a predicted square: its colour on the measured scale, paled
PREDICTED_NAME = "≈ predicted by the map (no result yet), ± its std"
NEXT_NAME = "next: the cell the search trains next"


def _predicted_trace(grid: pd.DataFrame, z: list[list[float | None]], predicted: pd.DataFrame,
                     unfinished: pd.DataFrame | None, x_labels: list[str], y_labels: list[str],
                     scale: tuple[float, float]) -> go.Heatmap | None:
    """The squares without a result that the map predicts: on the measured colour scale but pale, labelled
    '≈ 71 ± 4%' over where their cells are ('pending', 'running 1/2'); None when there are none."""
    by_square = {(r["blocks"], r["widen_factor"]): r for r in predicted.to_dict("records") if pd.notna(r["mean"])}
    values: list[list[float | None]] = []
    labels: list[list[str]] = []
    for i, n in enumerate(grid.index):
        row, texts = [], []
        for j, k in enumerate(grid.columns):
            guess = by_square.get((n, k)) if z[i][j] is None else None
            row.append(None if guess is None else 100.0 * guess["mean"])
            state = unfinished.loc[n, k] if unfinished is not None and n in unfinished.index and k in unfinished.columns else None
            text = "" if guess is None else f"≈ {100 * guess['mean']:.0f} ± {100 * guess['std']:.0f}%"
            texts.append(text + (f"<br><i>{state}</i>" if text and isinstance(state, str) else ""))
        values.append(row)
        labels.append(texts)
    if all(v is None for row in values for v in row):
        return None
    return go.Heatmap(
        z=values, x=x_labels, y=y_labels, text=labels, texttemplate="%{text}", zmin=scale[0], zmax=scale[1],
        textfont={"size": 11, "color": UNFINISHED_TEXT}, colorscale="Viridis", opacity=PREDICTED_OPACITY,
        showscale=False, hoverongaps=False, name=PREDICTED_NAME, xgap=1, ygap=1,
        hovertemplate="%{y}, %{x}<br>%{text}: predicted, not a result<extra></extra>",
    )


def _legend_square(name: str, color: str, line: str, symbol: str = "square") -> go.Scatter:
    """A legend entry only (its one point is None: nothing drawn)."""
    return go.Scatter(x=[None], y=[None], mode="markers", name=name, hoverinfo="skip",
                      marker={"size": 12, "symbol": symbol, "color": color, "line": {"width": 2, "color": line}})


NEXT_COLOR = "#d62728"


def _frame_next(fig: go.Figure, predicted: pd.DataFrame, grid: pd.DataFrame) -> bool:
    """Frame the square holding the next cell in red (a shape at its category index), named in the legend; False
    when no cell is next."""
    nexts = predicted[predicted["next"].astype(bool)] if len(predicted) else predicted
    if not len(nexts):
        return False
    i = list(grid.index).index(nexts.iloc[0]["blocks"])
    j = list(grid.columns).index(nexts.iloc[0]["widen_factor"])
    fig.add_shape(type="rect", x0=j - 0.47, x1=j + 0.47, y0=i - 0.45, y1=i + 0.45, name="next",
                  line={"color": NEXT_COLOR, "width": 3}, fillcolor="rgba(0,0,0,0)")
    fig.add_trace(_legend_square(NEXT_NAME, NEXT_COLOR, NEXT_COLOR, "square-open"))
    return True


def sweep_heatmap(grid: pd.DataFrame, metric: str = "best_test_acc", spread: pd.DataFrame | None = None,
                  unfinished: pd.DataFrame | None = None, predicted: pd.DataFrame | None = None) -> go.Figure:
    """Depth × width heatmap of a metric (grid_frame: N rows × k columns; accuracies as fractions).

    spread: the same grid's std over seeds (grid_frame(..., agg="std")), written as ± in each cell.
    unfinished: sweeps.unfinished_grid's labels; a square without a value that has one is drawn pale grey,
    off the colour scale, labelled with it ('stopped at 1/2'). Other squares without a value are blank.
    predicted (an accuracy metric only): sweeps.predict.predicted_grid; a square without a result that the map
    predicts is drawn pale on the measured colour scale, '≈ 71 ± 4%' over where it is, and the square of the
    next cell is framed red; both are named in the legend.
    """
    title, unit = SWEEP_METRICS.get(metric, (metric, ""))
    z, text = _heat_cells(grid, metric, spread)
    guessed = predicted is not None and _is_percent(metric)
    measured = [v for row in z for v in row if v is not None]
    if guessed:
        measured += [100.0 * v for v in predicted["mean"].dropna()]
    scale = (min(measured), max(measured)) if measured else (0.0, 100.0)
    # Category labels, so that k = 1, 2, 4, 8 are evenly spaced and N reads with its depth.
    x_labels = [f"k={int(k)}" for k in grid.columns]
    y_labels = [f"N={int(n)} (depth {6 * int(n) + 4})" for n in grid.index]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=x_labels, y=y_labels, text=text, texttemplate="%{text}", textfont={"size": 13},
            colorscale="Viridis", hoverongaps=False, name=title,
            colorbar={"title": {"text": unit or title}},
            # A width share on its whole 0–100% scale: cells at 96.33% and 96.34% would read as opposite ends.
            **({"zmin": 0.0, "zmax": 100.0} if metric in WIDTH_METRICS else {}),
            **({"zmin": scale[0], "zmax": scale[1]} if guessed else {}),
            hovertemplate="%{y}, %{x}<br>" + title + ": %{text}<extra></extra>",
        )
    )
    guess = _predicted_trace(grid, z, predicted, unfinished, x_labels, y_labels, scale) if guessed else None
    if guess is not None:  # the grey 'not finished' squares are those the map does not predict
        z_grey = [[v if v is not None else (0.0 if g is not None else None) for v, g in zip(row, grow)]
                  for row, grow in zip(z, guess.z)]
    else:
        z_grey = z
    pale = _unfinished_trace(grid, z_grey, unfinished, x_labels, y_labels)
    if pale is not None:
        fig.add_trace(pale)
    if guess is not None:
        fig.add_trace(guess)
        fig.add_trace(_legend_square(PREDICTED_NAME, "rgba(33, 145, 140, 0.35)", UNFINISHED_TEXT))
    framed = _frame_next(fig, predicted, grid) if guessed else False
    legend = guess is not None or framed
    fig.update_layout(
        height=140 + 90 * max(1, len(y_labels)) + (50 if legend else 0),
        margin={"l": 50, "r": 20, "t": 40, "b": 90 if legend else 40},
        title={"text": title + (f" ({unit})" if unit else ""), "font": {"size": 14}},
        # Explicit categories and ranges: the squares' labels show before any cell has a value.
        xaxis={"title": "widen factor k", "type": "category", "categoryarray": x_labels,
               "range": [-0.5, len(x_labels) - 0.5]},
        yaxis={"title": "blocks per group N", "type": "category", "categoryarray": y_labels,
               "range": [len(y_labels) - 0.5, -0.5]},  # N = 1 on top
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
    )
    if all(v is None for row in z for v in row) and pale is None:
        placeholder(fig, f"no cell has a {title} yet")
    return fig


def _paper_xs(published: pd.DataFrame, x: str) -> list[float]:
    """The paper's models on the trade-off's x axis: parameters, or MACs per image."""
    if x == "params":
        return published["params"].astype("float64").tolist()
    # The paper trained on 32×32 CIFAR images.
    return [float(macs_per_image(WRNConfig(depth=int(d), widen_factor=int(k)), 32))
            for d, k in zip(published["depth"], published["widen_factor"])]


def _seed_dots(cells: pd.DataFrame, x: str, metric: str) -> go.Scatter:
    """Every seed's own result as a faint dot (accuracy in percent)."""
    seeds = cells.dropna(subset=[metric]).copy()
    seeds["x"] = pd.to_numeric(seeds[x], errors="coerce")
    seeds = seeds.dropna(subset=["x"])
    return go.Scatter(
        x=seeds["x"].astype("float64").tolist(), y=(seeds[metric].astype("float64") * 100.0).tolist(),
        mode="markers", marker={"size": 6, "color": "rgba(120, 120, 120, 0.45)"},
        text=seeds["run"].tolist(), name="each seed",
        hovertemplate="%{text}<br>%{x:,.4g}<br>%{y:.2f}%<extra></extra>",
    )


def _tradeoff_traces(points: pd.DataFrame, title: str, several: bool) -> list[go.Scatter]:
    """The cells (mean ± std over seeds where several, front points coloured) and the dashed Pareto front."""
    means = (points["mean"].astype("float64") * 100.0).tolist()
    cells = go.Scatter(
        x=points["x"].astype("float64").tolist(), y=means, mode="markers+text",
        marker={"size": 11, "color": [FRONT_COLOR if p else OFF_FRONT_COLOR for p in points["pareto"]]},
        error_y={"type": "data", "array": (points["std"].astype("float64") * 100.0).tolist(),
                 "visible": several, "thickness": 1.5, "width": 4},
        text=points["label"].tolist(), textposition="top center", textfont={"size": 10},
        customdata=points["count"].astype(int).tolist(),
        name="mean ± std over seeds" if several else "cell",
        showlegend=several,  # one seed: the two colour entries below say what a point is
        hovertemplate="%{text}<br>%{x:,.4g}<br>" + title + " %{y:.2f}%"
                      + ("<br>%{customdata} seeds" if several else "") + "<extra></extra>",
    )
    front = points[points["pareto"].astype(bool)]
    line = go.Scatter(
        x=front["x"].astype("float64").tolist(), y=(front["mean"].astype("float64") * 100.0).tolist(),
        mode="lines", line={"color": FRONT_COLOR, "width": 2, "dash": "dash"},
        name="Pareto front", hoverinfo="skip",
    )
    return [cells, line, *_colour_legend()]


# What the cells' two marker colours mean, as legend entries only (their one point is None: nothing drawn).
FRONT_LEGEND = "on the Pareto front"
OFF_FRONT_LEGEND = "off the front (something cheaper is as accurate)"


def _colour_legend() -> list[go.Scatter]:
    return [go.Scatter(x=[None], y=[None], mode="markers", marker={"size": 11, "color": color}, name=name,
                       hoverinfo="skip")
            for color, name in ((FRONT_COLOR, FRONT_LEGEND), (OFF_FRONT_COLOR, OFF_FRONT_LEGEND))]


def _unfinished_markers(rest: pd.DataFrame, title: str) -> go.Scatter:
    """Cells without a result yet, at their value so far: hollow grey, labelled with where they are, apart
    from the front and its colours."""
    return go.Scatter(
        x=rest["x"].astype("float64").tolist(), y=(rest["value"].astype("float64") * 100.0).tolist(),
        mode="markers+text", marker={"size": 10, "symbol": "circle-open", "color": UNFINISHED_TEXT, "line": {"width": 1.5}},
        text=rest["label"].tolist(), textposition="bottom center", textfont={"size": 10, "color": UNFINISHED_TEXT},
        name="not finished (so far; not a result)",
        hovertemplate="%{text}<br>%{x:,.4g}<br>" + title + " so far %{y:.2f}%<extra></extra>",
    )


PREDICTED_POINTS_NAME = "≈ predicted by the map (no result yet) ± std"


def _predicted_markers(predicted: pd.DataFrame, title: str) -> go.Scatter:
    """The map's predictions beside the measured points: open triangles with ± std bars, the next cell's red; never
    part of the front (the paper's points are the diamonds)."""
    return go.Scatter(
        x=predicted["x"].astype("float64").tolist(), y=(predicted["mean"].astype("float64") * 100.0).tolist(),
        mode="markers", name=PREDICTED_POINTS_NAME, text=predicted["label"].tolist(),
        marker={"size": 10, "symbol": "triangle-up-open", "line": {"width": 1.5},
                "color": [NEXT_COLOR if nxt else UNFINISHED_TEXT for nxt in predicted["next"]]},
        error_y={"type": "data", "array": (predicted["std"].astype("float64") * 100.0).tolist(), "visible": True,
                 "thickness": 1, "width": 3, "color": "rgba(85, 85, 85, 0.6)"},
        hovertemplate="%{text}<br>%{x:,.4g}<br>" + title + " ≈ %{y:.1f}% (predicted)<extra></extra>",
    )


def sweep_tradeoff_figure(cells: pd.DataFrame, x: str = "params", metric: str = "best_test_acc",
                          paper: bool = True, predicted: pd.DataFrame | None = None) -> go.Figure:
    """Test accuracy (%) against parameters, MACs per image or training time, one point per (N, k).

    Several seeds: the mean with ± std error bars, each seed a faint dot. The Pareto front (no other
    point is cheaper and at least as accurate) is a dashed line through its points. Only groups whose
    cells all finished are points and on or off the front; a cell still on its way (running, stopped,
    interrupted…) is a hollow grey marker at its value so far, labelled with where it is. paper (params
    or MACs only): the paper's published CIFAR-10 results, labelled, named PAPER_CAPTION. predicted
    (sweeps.predict.predicted_points, on the same x): the map's predictions as open triangles with ± std bars
    (the next cell's red), beside the measured points and off the front.
    """
    points = tradeoff_points(cells, x, metric)
    rest = unfinished_points(cells, x, metric)
    title = SWEEP_METRICS.get(metric, (metric, ""))[0]
    fig = go.Figure()
    if paper and x in ("params", "macs"):
        published = paper_points()
        fig.add_trace(paper_trace(published, _paper_xs(published, x), "%{x:,.0f}"))
    several = bool(len(points)) and int(points["count"].max()) > 1
    if several:
        fig.add_trace(_seed_dots(cells[final_mask(cells, group_columns(cells))], x, metric))
    if len(points):
        for trace in _tradeoff_traces(points, title, several):
            fig.add_trace(trace)
    if len(rest):
        fig.add_trace(_unfinished_markers(rest, title))
    if predicted is not None and len(predicted):
        fig.add_trace(_predicted_markers(predicted, title))
    if not len(points):
        fig.add_annotation(text="no cell has finished yet" + (" (◇ the paper's results)" if paper and x != "train_seconds" else ""),
                           xref="paper", yref="paper", x=0.5, y=0.2, showarrow=False, font={"size": 14, "color": "gray"})
    fig.update_layout(
        height=400,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        xaxis={"title": TRADEOFF_X_TITLES.get(x, x), "exponentformat": "SI",
               # log ticks labelled in full (20k, 50k, 100k), over every point drawn
               **(log_axis([v for t in fig.data for v in (t.x or ())]) if x in ("params", "macs") else {"type": "linear"})},
        yaxis={"title": title + " (%)"},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        showlegend=True,
    )
    return fig


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
