"""Pure plotly figures from metrics records, run tables, layer tables and sweep cells (no streamlit)."""

from wrn_core.plots.architecture import width_figure
from wrn_core.plots.groups import group_curves_figure, parallel_coordinates_figure
from wrn_core.plots.runs import acc_vs_params_figure
from wrn_core.plots.style import PALETTE, run_color
from wrn_core.plots.sweeps import (
    SWEEP_METRICS,
    TRADEOFF_X_TITLES,
    sweep_heatmap,
    sweep_tradeoff_figure,
)
from wrn_core.plots.sweep_curves import sweep_small_multiples
from wrn_core.plots.training import (
    PANEL_TITLES,
    PANELS,
    SYSTEM_SERIES,
    X_TITLES,
    compare_figure,
    live_figure,
    system_figure,
)

__all__ = [
    "PALETTE",
    "PANELS",
    "PANEL_TITLES",
    "SWEEP_METRICS",
    "SYSTEM_SERIES",
    "TRADEOFF_X_TITLES",
    "X_TITLES",
    "acc_vs_params_figure",
    "compare_figure",
    "group_curves_figure",
    "live_figure",
    "parallel_coordinates_figure",
    "run_color",
    "sweep_heatmap",
    "sweep_small_multiples",
    "sweep_tradeoff_figure",
    "system_figure",
    "width_figure",
]
