"""Sweep figures: the N × k heatmap and the accuracy trade-off with its Pareto front (small multiples: sweep_curves)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from wrn_core.analysis.width import WIDTH_METRICS
from wrn_core.config import WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.plots.style import BEST_COLOR, log_axis, paper_trace, placeholder
from wrn_core.reference import paper_points
from wrn_core.sweeps import (
    final_mask,
    group_columns,
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
    guessed = predicted is not None and metric.endswith("_acc")  # the map predicts accuracy, not width
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
            # Predicted accuracies share the measured scale.
            **({"zmin": 0.0, "zmax": 100.0} if metric in WIDTH_METRICS else
               {"zmin": scale[0], "zmax": scale[1]} if guessed else {}),
            hovertemplate="%{y}, %{x}<br>" + title + ": %{text}<extra></extra>",
        )
    )
    guess = _predicted_trace(grid, z, predicted, unfinished, x_labels, y_labels, scale) if guessed else None
    # The grey 'not finished' squares are those the map does not predict.
    z_grey = z if guess is None else [[v if v is not None else (0.0 if g is not None else None)
                                       for v, g in zip(row, grow)] for row, grow in zip(z, guess.z)]
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
