"""Sweeps: a named grid over a base training config (N × k, and optionally dropout, optimizer, lr, batch, seed).

A sweep is one small file in the runs directory, `<name>.sweep.json` (`sweep_file`; a Ray sweep's driver keeps
`<name>.nodes.json` beside it, the cluster's nodes); its cells are ordinary
runs named `<name>-n<N>-k<k>[-d<dropout>][-<optimizer>][-lr<lr>][-b<batch>]-s<seed>` whose status.json
carries `sweep` (`grid`). `cell_tables` turns the cells into tables, `probe` predicts their cost before
they run, and an executor of `wrn_core.jobs` trains them (`sweep_runner` here, `ray_executor` on Ray). A sweep's `SearchPlan` (`search_plan`) says which
cells to train and which to stop early: `search` hands out cells (grid, random or Optuna's bayes order,
within a budget), `pruning` judges running cells with Optuna's pruners, and `predict` maps every cell not
finished with a Gaussian process (each imports optuna or scikit-learn only when used).
"""

from wrn_core.sweeps.sweep_file import (
    NODES_SUFFIX,
    SWEEP_SUFFIX,
    ClusterNodes,
    check_same_sweep,
    default_sweep_name,
    load_predicted_seconds,
    load_sweep,
    nodes_path,
    read_nodes,
    recent_sweep_names,
    save_predicted_seconds,
    save_sweep,
    sweep_names,
    sweep_path,
    write_nodes,
)
from wrn_core.sweeps.cell_tables import (
    CELL_COLUMNS,
    CLUSTER_COLUMNS,
    GROUP_AXES,
    TRADEOFF_X,
    cell_state,
    cells_frame,
    cells_table,
    cluster_frame,
    cluster_table,
    final_mask,
    grid_frame,
    group_columns,
    group_label,
    nodes_freshness,
    pareto_front,
    seed_band,
    seed_stats,
    sweep_counts,
    tradeoff_points,
    unfinished_grid,
    unfinished_points,
)
from wrn_core.sweeps.grid import AXES, Cell, Sweep, cell_statuses, is_done, make_sweep, next_cells
from wrn_core.sweeps.probe import Probe, budget_forecast, predicted_seconds, preflight_frame, preflight_summary, probe

__all__ = [
    "AXES", "CELL_COLUMNS", "CLUSTER_COLUMNS", "budget_forecast", "predicted_seconds", "GROUP_AXES", "NODES_SUFFIX",
    "SWEEP_SUFFIX", "TRADEOFF_X", "Cell", "ClusterNodes", "Probe", "Sweep", "cell_state", "cell_statuses",
    "check_same_sweep", "load_predicted_seconds", "save_predicted_seconds", "cells_frame", "cells_table", "cluster_frame",
    "cluster_table", "default_sweep_name", "final_mask", "grid_frame",
    "group_columns", "group_label",
    "is_done", "load_sweep", "make_sweep", "next_cells", "nodes_freshness", "nodes_path", "pareto_front", "preflight_frame", "preflight_summary",
    "probe", "read_nodes", "recent_sweep_names", "save_sweep", "seed_band", "seed_stats", "sweep_counts", "sweep_names",
    "sweep_path", "tradeoff_points", "unfinished_grid", "unfinished_points", "write_nodes",
]
