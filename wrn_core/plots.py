"""Pure plotly figures from metrics records, run tables and layer tables (no streamlit)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from wrn_core.analysis import curves_frame, metrics_frames
from wrn_core.config import WRNConfig
from wrn_core.model.flops import macs_per_image
from wrn_core.reference import OFFICIAL_LOG_LABEL, PAPER_CAPTION, paper_points
from wrn_core.sweeps import TERMINAL, group_columns, group_label, seed_band, tradeoff_points

PANEL_TITLES = ("Train accuracy", "Train cost", "Test accuracy", "Test cost")
# (row, col, metric) of each panel, in PANEL_TITLES order.
PANELS = ((1, 1, "train_acc"), (1, 2, "train_loss"), (2, 1, "test_acc"), (2, 2, "test_loss"))
X_TITLES = {
    "epoch": "epoch",
    "time": "training time (s)",
    "images_seen": "images seen",
    "flops": "training FLOPs (6 × MACs × images seen)",
}
PALETTE = qualitative.Plotly + qualitative.D3

WIDTH_COLORS = ("#636efa", "#00a36c", "#ab63fa", "#ffa15a")  # never red: red marks the width jumps
STEP_COLOR = "rgba(99, 110, 250, 0.45)"
TRAIN_COLOR = "#636efa"
TEST_COLOR = "#ef553b"
BEST_COLOR = "#00a36c"
REFERENCE_COLOR = "rgba(40, 40, 40, 0.75)"  # dark grey: references never take a run's colour


def _panel_figure(x_title: str, height: int = 560) -> go.Figure:
    fig = make_subplots(
        rows=2, cols=2, subplot_titles=PANEL_TITLES, horizontal_spacing=0.08, vertical_spacing=0.16
    )
    for row, col, metric in PANELS:
        # Only the bottom row names the x axis, so it never collides with the titles below it.
        fig.update_xaxes(title_text=x_title if row == 2 else None, row=row, col=col)
        fig.update_yaxes(title_text="accuracy (%)" if metric.endswith("acc") else "cost (loss)", row=row, col=col)
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
        hovermode="closest",
    )
    return fig


def _values(frame: pd.DataFrame, column: str, percent: bool) -> list[float]:
    values = frame[column]
    if percent:
        values = values * 100.0
    return values.tolist()


def _epoch_trace(epochs: pd.DataFrame, metric: str, percent: bool, color: str, split: str, show_legend: bool) -> go.Scatter:
    """Per-epoch points of one metric, joined by a line."""
    return go.Scatter(
        x=epochs["epoch"].tolist(),
        y=_values(epochs, metric, percent),
        mode="lines+markers",
        line={"color": color, "width": 2},
        marker={"size": 7},
        name=f"{split} (per epoch)",
        legendgroup=split,
        showlegend=show_legend,
    )


def live_figure(records: Iterable[Mapping[str, Any]]) -> go.Figure:
    """The 2x2 live training view: per-step and per-epoch train points, per-epoch test points, best marked."""
    steps, epochs = metrics_frames(records)
    fig = _panel_figure("epoch")
    for row, col, metric in PANELS:
        percent = metric.endswith("acc")
        show_legend = metric.endswith("acc")  # one legend entry per series, from the accuracy panels
        if metric.startswith("train"):
            fig.add_trace(
                go.Scatter(
                    x=steps["epoch"].tolist(),
                    y=_values(steps, metric, percent),
                    mode="lines",
                    line={"color": STEP_COLOR, "width": 1},
                    name="train (per step)",
                    legendgroup="step",
                    showlegend=show_legend,
                ),
                row=row,
                col=col,
            )
            fig.add_trace(_epoch_trace(epochs, metric, percent, TRAIN_COLOR, "train", show_legend), row=row, col=col)
        else:
            fig.add_trace(_epoch_trace(epochs, metric, percent, TEST_COLOR, "test", show_legend), row=row, col=col)
    tested = epochs.dropna(subset=["test_acc"])
    if not tested.empty:
        best = tested.loc[tested["test_acc"].idxmax()]
        best_epoch, best_acc = float(best["epoch"]), 100.0 * float(best["test_acc"])
        fig.add_trace(
            go.Scatter(
                x=[best_epoch],
                y=[best_acc],
                mode="markers",
                marker={"symbol": "star", "size": 16, "color": BEST_COLOR, "line": {"width": 1, "color": "white"}},
                name=f"best test {best_acc:.2f}%",
                legendgroup="best",
            ),
            row=2,
            col=1,
        )
        fig.add_annotation(
            x=best_epoch,
            y=best_acc,
            text=f"best {best_acc:.2f}% (epoch {int(best_epoch)})",
            showarrow=True,
            arrowhead=2,
            ax=0,
            ay=-30,
            row=2,
            col=1,
        )
    if steps.empty and epochs.empty:
        _placeholder(fig, "waiting for the first points…")
    return fig


def _placeholder(fig: go.Figure, text: str) -> None:
    """Grey text across an empty figure."""
    fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                       font={"size": 16, "color": "gray"})


def run_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def compare_figure(
    runs: Mapping[str, Iterable[Mapping[str, Any]]],
    x: str = "epoch",
    smoothing: float = 0.0,
    log_cost: bool = False,
    flops_per_image: Mapping[str, float | None] | None = None,
    reference: pd.DataFrame | None = None,
    reference_name: str = OFFICIAL_LOG_LABEL,
    log_x: bool = False,
) -> go.Figure:
    """The four curves of several runs overlaid, one colour per run (train curves smoothed by EMA).

    x="flops" needs flops_per_image (run -> training FLOPs per image; runs without one are left
    out). reference: a curve (columns x, test_acc as a fraction, e.g. reference.official_curve(x))
    drawn dashed on the test-accuracy panel. log_x: logarithmic x axes (compute spans decades).
    """
    frame = curves_frame(runs, x=x, smoothing=smoothing, flops_per_image=flops_per_image)
    fig = _panel_figure(X_TITLES[x])
    for index, name in enumerate(runs):
        color = run_color(index)
        part = frame[frame["run"] == name]
        for row, col, metric in PANELS:
            curve = part[part["metric"] == metric]
            percent = metric.endswith("acc")
            dense = not curve.empty and curve["source"].iloc[0] == "step"
            fig.add_trace(
                go.Scatter(
                    x=curve["x"].tolist(),
                    y=_values(curve, "value", percent),
                    mode="lines" if dense else "lines+markers",
                    line={"color": color, "width": 2},
                    marker={"size": 5},
                    name=name,
                    legendgroup=name,
                    showlegend=metric == "train_acc",
                ),
                row=row,
                col=col,
            )
    if reference is not None and not reference.empty:
        fig.add_trace(
            go.Scatter(
                x=reference["x"].tolist(),
                y=(reference["test_acc"] * 100.0).tolist(),
                mode="lines",
                line={"color": REFERENCE_COLOR, "width": 1.5, "dash": "dash"},
                name=reference_name,
                legendgroup="reference",
                hovertemplate="%{y:.2f}%<extra>" + reference_name + "</extra>",
            ),
            row=2,
            col=1,
        )
    if log_cost:
        fig.update_yaxes(type="log", row=1, col=2)
        fig.update_yaxes(type="log", row=2, col=2)
    if log_x:
        fig.update_xaxes(type="log")
    if x == "flops":
        fig.update_xaxes(exponentformat="SI")  # 1.2T, not 1.2e+12
    if not runs:
        _placeholder(fig, "select runs to compare")
    return fig


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
        hover = [
            f"{layer}<br>{kind}<br>{shape}"
            for layer, kind, shape in zip(table["layer"], table["kind"], table["output_shape"])
        ]
        fig.add_trace(
            go.Scatter(
                x=table["index"].tolist(),
                y=table["out_channels"].tolist(),
                mode="lines",
                line={"shape": "hv", "color": color, "width": 3},
                name=label or "width",
                text=hover,
                hovertemplate="layer %{x}: %{y} channels<br>%{text}<extra>" + (label or "") + "</extra>",
                showlegend=len(pairs) > 1,
            )
        )
        spans = _group_spans(table)
        for group, start, end, width in spans:
            if position == 0:
                # Shade and name the groups of the first config.
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
                # Other configs: a dashed line in their colour where each group starts.
                fig.add_vline(
                    x=start - 0.5,
                    line={"color": color, "width": 1, "dash": "dash"},
                    annotation_text=group.replace("group ", "g"),
                    annotation_position="bottom right",
                    annotation_font={"size": 10, "color": color},
                )
        # Box each width jump (where a group's first conv widens the features): the "red box".
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
                    yshift=10 + 14 * position,
                    font={"color": "red" if position == 0 else color, "size": 11},
                )
    fig.update_layout(
        height=380,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        xaxis_title="layer (forward order)",
        yaxis_title="feature-map width (channels)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="closest",
    )
    return fig


def acc_vs_params_figure(frame: pd.DataFrame, paper: bool = True) -> go.Figure:
    """Best test accuracy (%) against parameter count (log x), one point per run (a runs_frame).

    paper: also mark the paper's published CIFAR-10 results (wrn_core.reference), labelled by model.
    """
    fig = go.Figure()
    if paper:
        points = paper_points()
        fig.add_trace(
            go.Scatter(
                x=points["params"].astype("float64").tolist(),
                y=points["test_acc"].tolist(),
                mode="markers+text",
                marker={"symbol": "diamond-open", "size": 13, "color": REFERENCE_COLOR, "line": {"width": 2}},
                text=points["model"].tolist(),
                # WRN-40-4 and WRN-16-8 sit close together (8.9M, 11.0M): one label below, one above.
                textposition=["bottom center", "top center", "bottom center"][: len(points)],
                textfont={"size": 11, "color": REFERENCE_COLOR},
                cliponaxis=False,  # a label at the widest model may reach past the axis
                name=PAPER_CAPTION,
                legendgroup="paper",
                hovertemplate=(
                    "%{text}<br>%{x:,.0f} params<br>test %{y:.2f}%<br>"
                    "CIFAR-10, median of 5 runs<extra>" + PAPER_CAPTION + "</extra>"
                ),
            )
        )
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


# (record field, panel title, y-axis title) of the system panel, when the field has values.
SYSTEM_SERIES = (
    ("cpu_percent", "Process CPU", "% of one core"),
    ("rss_mb", "Process memory", "MiB"),
    ("gpu_util", "GPU utilisation", "%"),
    ("cuda_allocated_mb", "CUDA memory allocated", "MiB"),
)


def system_figure(records: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Sparklines of a run's `system` records against training time: CPU %, memory, GPU load where there is one."""
    system = [r for r in records if r.get("kind") == "system"]
    series = [(key, title, unit) for key, title, unit in SYSTEM_SERIES
              if any(isinstance(r.get(key), (int, float)) for r in system)]
    if not series:
        fig = go.Figure()
        _placeholder(fig, "no system readings yet")
        fig.update_layout(height=160, margin={"l": 30, "r": 10, "t": 20, "b": 20})
        return fig
    fig = make_subplots(rows=1, cols=len(series), subplot_titles=[title for _, title, _ in series], horizontal_spacing=0.08)
    for col, (key, _, unit) in enumerate(series, start=1):
        points = [(r.get("time"), r[key]) for r in system if isinstance(r.get(key), (int, float))]
        fig.add_trace(
            go.Scatter(x=[t for t, _ in points], y=[v for _, v in points], mode="lines", line={"color": TRAIN_COLOR, "width": 1.5},
                       showlegend=False, hovertemplate="%{y:.1f} " + unit + " at %{x:.0f} s<extra></extra>"),
            row=1, col=col,
        )
        fig.update_yaxes(title_text=unit, row=1, col=col)
        fig.update_xaxes(title_text="training s", row=1, col=col)
    fig.update_layout(height=220, margin={"l": 40, "r": 10, "t": 30, "b": 30})
    return fig


# ---------------------------------------------------------------------------------------------
# Sweeps: N × k heatmap, accuracy trade-off with its Pareto front, small multiples per cell

# cells_frame metric -> (title, unit); accuracies are fractions in the frame and percent on charts.
SWEEP_METRICS = {
    "best_test_acc": ("best test accuracy", "%"),
    "final_test_acc": ("final test accuracy", "%"),
    "train_seconds": ("training time", "s"),
    "images_per_s": ("training images/s", "img/s"),
    "params": ("parameters", ""),
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
    return metric.endswith("_acc")


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


def sweep_heatmap(grid: pd.DataFrame, metric: str = "best_test_acc", spread: pd.DataFrame | None = None) -> go.Figure:
    """Depth × width heatmap of a metric (grid_frame: N rows × k columns; accuracies as fractions).

    spread: the same grid's std over seeds (grid_frame(..., agg="std")), written as ± in each cell.
    Cells without a value yet are left blank (null in the figure's z).
    """
    title, unit = SWEEP_METRICS.get(metric, (metric, ""))
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
    # Category labels, so that k = 1, 2, 4, 8 are evenly spaced and N reads with its depth.
    x_labels = [f"k={int(k)}" for k in grid.columns]
    y_labels = [f"N={int(n)} (depth {6 * int(n) + 4})" for n in grid.index]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=x_labels, y=y_labels, text=text, texttemplate="%{text}", textfont={"size": 13},
            colorscale="Viridis", hoverongaps=False, name=title,
            colorbar={"title": {"text": unit or title}},
            hovertemplate="%{y}, %{x}<br>" + title + ": %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        height=140 + 90 * max(1, len(y_labels)),
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        title={"text": title + (f" ({unit})" if unit else ""), "font": {"size": 14}},
        # Explicit categories and ranges: the squares' labels show before any cell has a value.
        xaxis={"title": "widen factor k", "type": "category", "categoryarray": x_labels,
               "range": [-0.5, len(x_labels) - 0.5]},
        yaxis={"title": "blocks per group N", "type": "category", "categoryarray": y_labels,
               "range": [len(y_labels) - 0.5, -0.5]},  # N = 1 on top
    )
    if all(v is None for row in z for v in row):
        _placeholder(fig, f"no cell has a {title} yet")
    return fig


def sweep_tradeoff_figure(cells: pd.DataFrame, x: str = "params", metric: str = "best_test_acc",
                          paper: bool = True) -> go.Figure:
    """Test accuracy (%) against parameters, MACs per image or training time, one point per (N, k).

    Several seeds: the mean with ± std error bars, each seed a faint dot. The Pareto front (no other
    point is cheaper and at least as accurate) is a dashed line through its points. paper (params or
    MACs only): the paper's published CIFAR-10 results, labelled, named PAPER_CAPTION.
    """
    points = tradeoff_points(cells, x, metric)
    title = SWEEP_METRICS.get(metric, (metric, ""))[0]
    fig = go.Figure()
    if paper and x in ("params", "macs"):
        published = paper_points()
        if x == "params":
            xs = published["params"].astype("float64").tolist()
        else:  # the paper trained on 32×32 CIFAR images
            xs = [float(macs_per_image(WRNConfig(depth=int(d), widen_factor=int(k)), 32))
                  for d, k in zip(published["depth"], published["widen_factor"])]
        fig.add_trace(
            go.Scatter(
                x=xs, y=published["test_acc"].tolist(), mode="markers+text",
                marker={"symbol": "diamond-open", "size": 13, "color": REFERENCE_COLOR, "line": {"width": 2}},
                text=published["model"].tolist(),
                textposition=["bottom center", "top center", "bottom center"][: len(published)],
                textfont={"size": 11, "color": REFERENCE_COLOR}, cliponaxis=False,
                name=PAPER_CAPTION, legendgroup="paper",
                hovertemplate="%{text}<br>%{x:,.0f}<br>test %{y:.2f}%<br>CIFAR-10, median of 5 runs<extra>"
                              + PAPER_CAPTION + "</extra>",
            )
        )
    several = bool(len(points)) and int(points["count"].max()) > 1
    if several:
        seeds = cells.dropna(subset=[metric]).copy()
        seeds["x"] = pd.to_numeric(seeds[x], errors="coerce")
        seeds = seeds.dropna(subset=["x"])
        fig.add_trace(
            go.Scatter(
                x=seeds["x"].astype("float64").tolist(), y=(seeds[metric].astype("float64") * 100.0).tolist(),
                mode="markers", marker={"size": 6, "color": "rgba(120, 120, 120, 0.45)"},
                text=seeds["run"].tolist(), name="each seed",
                hovertemplate="%{text}<br>%{x:,.4g}<br>%{y:.2f}%<extra></extra>",
            )
        )
    if len(points):
        means = (points["mean"].astype("float64") * 100.0).tolist()
        fig.add_trace(
            go.Scatter(
                x=points["x"].astype("float64").tolist(), y=means, mode="markers+text",
                marker={"size": 11, "color": [FRONT_COLOR if p else OFF_FRONT_COLOR for p in points["pareto"]]},
                error_y={"type": "data", "array": (points["std"].astype("float64") * 100.0).tolist(),
                         "visible": several, "thickness": 1.5, "width": 4},
                text=points["label"].tolist(), textposition="top center", textfont={"size": 10},
                customdata=points["count"].astype(int).tolist(),
                name="mean ± std over seeds" if several else "cell",
                hovertemplate="%{text}<br>%{x:,.4g}<br>" + title + " %{y:.2f}%"
                              + ("<br>%{customdata} seeds" if several else "") + "<extra></extra>",
            )
        )
        front = points[points["pareto"].astype(bool)]
        fig.add_trace(
            go.Scatter(
                x=front["x"].astype("float64").tolist(), y=(front["mean"].astype("float64") * 100.0).tolist(),
                mode="lines", line={"color": FRONT_COLOR, "width": 2, "dash": "dash"},
                name="Pareto front", hoverinfo="skip",
            )
        )
    else:
        fig.add_annotation(text="no cell has a test accuracy yet" + (" (◇ the paper's results)" if fig.data else ""),
                           xref="paper", yref="paper", x=0.5, y=0.2, showarrow=False, font={"size": 14, "color": "gray"})
    fig.update_layout(
        height=400,
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
        xaxis={"title": TRADEOFF_X_TITLES.get(x, x), "type": "log" if x in ("params", "macs") else "linear",
               "exponentformat": "SI"},
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
    groups: list[tuple] = []
    for row in rows_of:
        group = tuple(row[k] for k in keys)
        if group not in groups:
            groups.append(group)
    if not groups:
        fig = go.Figure()
        _placeholder(fig, "no cells")
        return fig
    n_rows, n_cols, position = _panel_grid(cells, groups)
    titles = [""] * (n_rows * n_cols)
    for group in groups:
        row, col = position[group]
        statuses = [r["status"] for r in rows_of if tuple(r[k] for k in keys) == group]
        title = group_label(dict(zip(keys, group)))
        if set(statuses) != {"finished"}:  # say what a panel waits for: pending, running, 1/3 ended…
            ended = sum(status in TERMINAL for status in statuses)
            title += f" · {statuses[0]}" if len(statuses) == 1 else f" · {ended}/{len(statuses)} ended"
        titles[(row - 1) * n_cols + (col - 1)] = title
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=titles,
                        horizontal_spacing=0.04 if n_cols > 1 else 0.0, vertical_spacing=min(0.12, 0.3 / n_rows))
    seeds = sorted({row["seed"] for row in rows_of})
    shown: set[str] = set()
    any_points = False
    epochs_planned = int(pd.to_numeric(cells["epochs"], errors="coerce").max()) if "epochs" in cells else 0
    for group in groups:
        row, col = position[group]
        # An empty trace per panel: plotly.js draws no axes for a subplot without traces (a pending cell).
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip"), row=row, col=col)
        members = [r for r in rows_of if tuple(r[k] for k in keys) == group]
        curves = []
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
        band = seed_band(curves)
        if len(members) > 1 and not band.empty and int(band["count"].max()) > 1:
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
        if reference is not None and not reference.empty:
            fig.add_trace(
                go.Scatter(
                    x=reference["x"].tolist(), y=(reference["test_acc"] * 100.0).tolist(), mode="lines",
                    line={"color": REFERENCE_COLOR, "width": 1.2, "dash": "dash"}, name=reference_name,
                    legendgroup="reference", showlegend="reference" not in shown,
                    hovertemplate="epoch %{x}: %{y:.2f}%<extra>" + reference_name + "</extra>",
                ),
                row=row, col=col,
            )
            shown.add("reference")
    # Every panel on the same ranges, set explicitly: plotly.js's linked ("matches") axes lose
    # single-point traces (a 1-epoch cell). The x range is the sweep's epochs, so that a 200-epoch
    # reference does not squeeze a short sweep against the axis (double-click zooms out to all of it).
    plotted = [y for trace in fig.data if trace.y is not None for y in trace.y if y is not None and y == y]
    top = min(100.0, max(plotted) * 1.08 + 2.0) if plotted else 100.0
    fig.update_yaxes(range=[0.0, top])
    if epochs_planned > 0:
        fig.update_xaxes(range=[0.5, epochs_planned + 0.5])
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(title_text="epoch", showticklabels=True, row=n_rows)
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(title_text="test acc (%)", showticklabels=True, col=1)
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
