"""Training figures: the live 2x2 view of one run, several runs overlaid, and a run's system sparklines."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from wrn_core.analysis import curves_frame, metrics_frames
from wrn_core.plots.style import (
    BEST_COLOR,
    REFERENCE_COLOR,
    STEP_COLOR,
    TEST_COLOR,
    TRAIN_COLOR,
    log_axis,
    placeholder,
    run_color,
)
from wrn_core.reference import OFFICIAL_LOG_LABEL
from wrn_core.store.records import STEP, SYSTEM, of_kind

PANEL_TITLES = ("Train accuracy", "Train cost", "Test accuracy", "Test cost")
RAW_OPACITY = 0.25  # the unsmoothed curve behind a smoothed one, as TensorBoard draws it
# (row, col, metric) of each panel, in PANEL_TITLES order.
PANELS = ((1, 1, "train_acc"), (1, 2, "train_loss"), (2, 1, "test_acc"), (2, 2, "test_loss"))
X_TITLES = {
    "epoch": "epoch",
    "time": "training time (s)",
    "images_seen": "images seen",
    "flops": "training FLOPs (6 × MACs × images seen)",
}
# (record field, panel title, y-axis title) of the system panel, when the field has values.
SYSTEM_SERIES = (
    ("cpu_percent", "Process CPU", "% of one core"),
    ("rss_mb", "Process memory", "MiB"),
    ("gpu_util", "GPU utilisation", "%"),
    ("cuda_allocated_mb", "CUDA memory allocated", "MiB"),
)


# The Train page's live view: short enough that, under the run picker, progress line and the Curves / Width
# use tabs, a 900 px high screen shows all four panels right after Launch.
LIVE_HEIGHT = 470
LIVE_X_PAD = 0.03  # of the x range, either side of [0, planned epochs]


def _panel_figure(x_title: str, height: int = 560) -> go.Figure:
    """The empty 2x2 grid of PANELS, axes titled (height in pixels)."""
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
    """A column as a list, fractions as percent when `percent`."""
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


def _live_traces(steps: pd.DataFrame, epochs: pd.DataFrame, metric: str) -> list[go.Scatter]:
    """One live panel's traces: train metrics per step and per epoch, test metrics per epoch."""
    percent = metric.endswith("acc")
    show_legend = metric.endswith("acc")  # one legend entry per series, from the accuracy panels
    if not metric.startswith("train"):
        return [_epoch_trace(epochs, metric, percent, TEST_COLOR, "test", show_legend)]
    per_step = go.Scatter(
        x=steps["epoch"].tolist(),
        y=_values(steps, metric, percent),
        mode="lines",
        line={"color": STEP_COLOR, "width": 1},
        name="train (per step)",
        legendgroup="step",
        showlegend=show_legend,
    )
    return [per_step, _epoch_trace(epochs, metric, percent, TRAIN_COLOR, "train", show_legend)]


def _mark_best(fig: go.Figure, epochs: pd.DataFrame, x_end: float | None = None) -> None:
    """A star and a label at the best test accuracy, on the test-accuracy panel (none before a test). With the
    panel's right end x_end, a star in its right half gets its label to the left, inside the panel."""
    tested = epochs.dropna(subset=["test_acc"])
    if tested.empty:
        return
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
        xanchor="right" if x_end is not None and best_epoch > x_end / 2 else "center",
        showarrow=True,
        arrowhead=2,
        ax=0,
        ay=-30,
        row=2,
        col=1,
    )


def live_x_range(steps: pd.DataFrame, epochs: pd.DataFrame, planned: int | None) -> list[float]:
    """[0, last epoch] (padded a little) shared by the four live panels: the planned epochs (the whole run, so the curves grow
    into a fixed frame), or as far as the points reach when that is further (an extended run) or unknown."""
    reached = max([0.0, *steps["epoch"].dropna().tolist(), *epochs["epoch"].dropna().tolist()])
    end = float(max(planned or 0, reached) or 1)
    pad = LIVE_X_PAD * end  # so the markers at 0 and at the last epoch are drawn whole
    return [-pad, end + pad]


def live_figure(records: Iterable[Mapping[str, Any]], epochs: int | None = None) -> go.Figure:
    """The 2x2 live training view: per-step and per-epoch train points, per-epoch test points, best marked.

    The four panels share one x range, 0 to the planned `epochs` (so a point at epoch 3 sits at the same x in
    every panel, and the test panels do not stop at the last tested epoch)."""
    steps, per_epoch = metrics_frames(records)
    fig = _panel_figure("epoch", height=LIVE_HEIGHT)
    for row, col, metric in PANELS:
        for trace in _live_traces(steps, per_epoch, metric):
            fig.add_trace(trace, row=row, col=col)
    x_range = live_x_range(steps, per_epoch, epochs)
    _mark_best(fig, per_epoch, x_range[1])
    fig.update_xaxes(range=x_range, autorange=False)
    if steps.empty and per_epoch.empty:
        placeholder(fig, "waiting for the first points…")
    return fig


def _is_dense(curve: pd.DataFrame) -> bool:
    """Whether a curves_frame slice is per-step points (the only ones smoothing changes)."""
    return not curve.empty and curve["source"].iloc[0] == STEP


def _run_trace(curve: pd.DataFrame, metric: str, name: str, color: str) -> go.Scatter:
    """One run's curve of one metric (a curves_frame slice); dense per-step curves without markers."""
    dense = _is_dense(curve)
    return go.Scatter(
        x=curve["x"].tolist(),
        y=_values(curve, "value", metric.endswith("acc")),
        mode="lines" if dense else "lines+markers",
        line={"color": color, "width": 2},
        marker={"size": 5},
        name=name,
        legendgroup=name,
        showlegend=metric == "train_acc",
    )


def _raw_trace(curve: pd.DataFrame, metric: str, name: str, color: str) -> go.Scatter:
    """The unsmoothed per-step curve, faint, behind its smoothed one (no legend entry of its own)."""
    return go.Scatter(
        x=curve["x"].tolist(),
        y=_values(curve, "value", metric.endswith("acc")),
        mode="lines",
        line={"color": color, "width": 1},
        opacity=RAW_OPACITY,
        name=name,  # hover and legend groups treat it as the run it is
        legendgroup=name,
        showlegend=False,
        hoverinfo="skip",
    )


def compare_figure(
    runs: Mapping[str, Iterable[Mapping[str, Any]]],
    x: str = "epoch",
    smoothing: float = 0.0,
    log_cost: bool = False,
    flops_per_image: Mapping[str, float | None] | None = None,
    reference: pd.DataFrame | None = None,
    reference_name: str = OFFICIAL_LOG_LABEL,
    log_x: bool = False,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """The four curves of several runs overlaid, one colour per run (per-step train curves smoothed by EMA,
    the raw curve drawn faintly behind; per-epoch points are never smoothed).

    x="flops" needs flops_per_image (run -> training FLOPs per image; runs without one are left
    out). reference: a curve (columns x, test_acc as a fraction, e.g. reference.official_curve(x))
    drawn dashed on the test-accuracy panel. log_x: logarithmic x axes (compute spans decades). colors: run ->
    colour, so a run keeps its colour across views (plots.style.color_map); runs not in it cycle the palette.
    """
    frame = curves_frame(runs, x=x, smoothing=smoothing, flops_per_image=flops_per_image)
    raw = curves_frame(runs, x=x, flops_per_image=flops_per_image) if smoothing else frame
    fig = _panel_figure(X_TITLES[x])
    for index, name in enumerate(runs):
        part, raw_part = frame[frame["run"] == name], raw[raw["run"] == name]
        color = (colors or {}).get(name) or run_color(index)
        for row, col, metric in PANELS:
            curve = part[part["metric"] == metric]
            if smoothing and _is_dense(curve):
                fig.add_trace(_raw_trace(raw_part[raw_part["metric"] == metric], metric, name, color), row=row, col=col)
            fig.add_trace(_run_trace(curve, metric, name, color), row=row, col=col)
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
        for row, metric in ((1, "train_loss"), (2, "test_loss")):
            fig.update_yaxes(**log_axis(raw.loc[raw["metric"] == metric, "value"].tolist()), row=row, col=2)
    if log_x:
        shown = raw["x"].tolist() + (reference["x"].tolist() if reference is not None else [])
        fig.update_xaxes(**log_axis(shown))
    elif x == "flops":
        fig.update_xaxes(exponentformat="SI")  # 1.2T, not 1.2e+12
    if not runs:
        placeholder(fig, "select runs to compare")
    return fig


def system_figure(records: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Sparklines of a run's `system` records against training time: CPU %, memory, GPU load where there is one."""
    system = list(of_kind(records, SYSTEM))
    series = [(key, title, unit) for key, title, unit in SYSTEM_SERIES
              if any(isinstance(r.get(key), (int, float)) for r in system)]
    if not series:
        fig = go.Figure()
        placeholder(fig, "no system readings yet")
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
