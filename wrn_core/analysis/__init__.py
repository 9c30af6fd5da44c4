"""Pure functions from run summaries and metrics records to DataFrames, export text, training-health findings, groups and parameter importance."""

from wrn_core.analysis.run_export import EXPORT_COLUMNS, export_csv, export_json
from wrn_core.analysis.run_tables import (
    CURVE_METRICS,
    EPOCH_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
    X_AXES,
    config_diff,
    curves_frame,
    metrics_frames,
    note_preview,
    runs_frame,
    smooth,
)
from wrn_core.analysis.grouping import GROUP_FIELDS, AnalysisError, filter_runs, group_curves, group_runs, groups_table, mean_std
from wrn_core.analysis.health import SEVERITIES, Finding, diagnose
from wrn_core.analysis.importance import ImportanceError, importance_frame, parameter_importance

__all__ = [
    "CURVE_METRICS",
    "EPOCH_COLUMNS",
    "EXPORT_COLUMNS",
    "GROUP_FIELDS",
    "RUN_COLUMNS",
    "SEVERITIES",
    "STEP_COLUMNS",
    "X_AXES",
    "AnalysisError",
    "Finding",
    "ImportanceError",
    "config_diff",
    "curves_frame",
    "diagnose",
    "export_csv",
    "export_json",
    "filter_runs",
    "group_curves",
    "group_runs",
    "groups_table",
    "mean_std",
    "note_preview",
    "importance_frame",
    "metrics_frames",
    "parameter_importance",
    "runs_frame",
    "smooth",
]
