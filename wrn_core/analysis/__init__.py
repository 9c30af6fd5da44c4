"""Pure functions from run summaries and metrics records to DataFrames, export text and training-health findings."""

from wrn_core.analysis.export import EXPORT_COLUMNS, export_csv, export_json
from wrn_core.analysis.frames import (
    CURVE_METRICS,
    EPOCH_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    X_AXES,
    config_diff,
    curves_frame,
    metrics_frames,
    runs_frame,
    smooth,
)
from wrn_core.analysis.health import SEVERITIES, Finding, diagnose

__all__ = [
    "CURVE_METRICS",
    "EPOCH_COLUMNS",
    "EXPORT_COLUMNS",
    "RUN_COLUMNS",
    "SEVERITIES",
    "STEP_COLUMNS",
    "X_AXES",
    "Finding",
    "config_diff",
    "curves_frame",
    "diagnose",
    "export_csv",
    "export_json",
    "metrics_frames",
    "runs_frame",
    "smooth",
]
