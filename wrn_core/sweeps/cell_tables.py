"""Views of a sweep's cells as tables: status and cost per cell, the N × k grid, seed statistics, the Pareto front,
and a Ray sweep's nodes with the cells on each."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from wrn_core.store import RunStore
from wrn_core.store.records import (ENDED_STATUSES, EPOCH, FINISHED, PAUSED_STATUSES, PENDING, PRUNED, QUEUED, RETRY,
                                    RUNNING, of_kind, retries_text)
from wrn_core.sweeps.grid import GROUP_AXES, Sweep
from wrn_core.sweeps.sweep_file import NODE_FIELDS, NODES_REFRESH_S, ClusterNodes

# x axes of the accuracy trade-off: cells_frame columns.
TRADEOFF_X = ("params", "macs", "train_seconds")


def pareto_front(points: Iterable[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points: True where no other point is at most as costly and at least as accurate
    (and strictly better in one of the two)."""
    points = list(points)
    flags = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(
            (c <= cost and a >= acc) and (c < cost or a > acc) for j, (c, a) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags


CELL_COLUMNS = ("run", "blocks", "widen_factor", "depth", "seed", "status", "epoch", "epochs", "params", "macs",
                "best_test_acc", "final_test_acc", "train_seconds", "images_per_s", "pareto", "executor", "host", "node",
                "gpus", "retries", "retried")


def cell_state(status: str, epoch: Any, epochs: Any) -> str:
    """What a cell's numbers are: 'finished', 'pending', 'queued', or e.g. 'stopped at 1/2', 'running at 0/3'."""
    if status in (FINISHED, PENDING, QUEUED):
        return status
    return f"{status} at {int(epoch or 0)}/{int(epochs or 0)}"


def final_mask(cells: pd.DataFrame, keys: Sequence[str] = ()) -> pd.Series:
    """True for the cells whose numbers are results: finished, and (with keys) every cell sharing their
    values of keys finished too, so that a mean over seeds is never a mean over the seeds done so far."""
    finished = cells["status"] == FINISHED if "status" in cells.columns else pd.Series(False, index=cells.index)
    keys = [k for k in keys if k in cells.columns]
    if not keys or cells.empty:
        return finished
    return finished.groupby([cells[k] for k in keys], dropna=False).transform("all").astype(bool)


def cells_frame(store: RunStore, sweep: Sweep) -> pd.DataFrame:
    """One row per cell: its axis values, status, size, cost and accuracy, and whether it is on the
    accuracy-vs-params Pareto front (among finished cells with a test accuracy; False for every other)."""
    from wrn_core.model.flops import input_size, macs_per_image
    from wrn_core.model.memory import parameter_count

    rows = []
    for cell in sweep.cells():
        model = cell.config.model
        size = input_size(cell.config) or (32, 32)
        row: dict[str, Any] = {
            "run": cell.run, **{axis: cell.values[axis] for axis in cell.values},
            "depth": model.depth, "status": PENDING, "epoch": 0, "epochs": cell.config.epochs,
            "params": parameter_count(model), "macs": macs_per_image(model, size[0], size[1]),
            "best_test_acc": None, "final_test_acc": None, "train_seconds": None, "images_per_s": None,
            "executor": None, "host": None,  # where its trainer runs (or last ran): records.EXECUTORS, hostname
            "node": None, "gpus": None,  # Ray's node id, and the GPUs Ray assigned it (CUDA_VISIBLE_DEVICES)
            "retries": 0, "retried": "",  # times a Ray sweep started it again after losing it; the last one said
        }
        if store.exists(cell.run):
            summary = store.summary(cell.run)
            row.update(status=summary.status, epoch=summary.epoch, epochs=summary.epochs or cell.config.epochs,
                       best_test_acc=summary.best_test_acc, final_test_acc=summary.final_test_acc,
                       train_seconds=summary.duration_s or None, executor=summary.executor or None,
                       host=summary.host or None, node=summary.node or None, gpus=summary.gpus or None)
            if summary.params:
                row["params"] = summary.params
            records = store.get(cell.run).read_metrics()
            row.update(retries=sum(1 for _ in of_kind(records, RETRY)), retried=retries_text(records))
            rates = [r.get("images_per_s") for r in of_kind(records, EPOCH)]
            rates = [float(r) for r in rates if isinstance(r, (int, float)) and math.isfinite(r)]
            row["images_per_s"] = sum(rates) / len(rates) if rates else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    scored = frame["best_test_acc"].notna() & final_mask(frame)  # a stopped cell's accuracy is not a result
    frame["pareto"] = False
    if scored.any():
        flags = pareto_front(zip(frame.loc[scored, "params"].astype(float), frame.loc[scored, "best_test_acc"].astype(float)))
        frame.loc[scored, "pareto"] = flags
    columns = [c for c in CELL_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    return frame[columns[:3] + extra + columns[3:]]


SQUARE = ("blocks", "widen_factor")  # a heatmap square: every cell of one (N, k)
KNOWN_BEFORE_TRAINING = ("params", "macs")  # properties of the model, not results: drawn for every cell


def grid_frame(cells: pd.DataFrame, metric: str, agg: str = "mean") -> pd.DataFrame:
    """N (rows) × k (columns) of a metric: the mean over the seeds (and other axes) of each (N, k).

    Results (accuracy, time, images/s) only for squares whose cells all finished; NaN elsewhere (see
    unfinished_grid). agg="std" gives the spread over the seeds instead (NaN where an (N, k) has one value).
    """
    if metric not in KNOWN_BEFORE_TRAINING:
        cells = cells.assign(**{metric: cells[metric].where(final_mask(cells, SQUARE))}) if metric in cells else cells
    data = cells.dropna(subset=[metric]) if metric in cells else cells.iloc[0:0]
    if data.empty:
        return pd.DataFrame(index=sorted(cells["blocks"].unique()), columns=sorted(cells["widen_factor"].unique()), dtype=float)
    table = data.pivot_table(index="blocks", columns="widen_factor", values=metric, aggfunc=agg)
    return table.reindex(index=sorted(cells["blocks"].unique()), columns=sorted(cells["widen_factor"].unique()))


def unfinished_grid(cells: pd.DataFrame) -> pd.DataFrame:
    """N (rows) × k (columns): for each square with a cell not finished, what its cells are at ('stopped at
    1/2', 'pending', '1/2 finished, 1 running'); None where every cell finished."""
    done = final_mask(cells, SQUARE)
    labels: dict[tuple, str] = {}
    for (n, k), members in cells[~done].groupby(list(SQUARE)):
        if len(members) == 1:
            row = members.iloc[0]
            labels[(n, k)] = cell_state(row["status"], row["epoch"], row["epochs"])
            continue
        waiting = members.loc[members["status"] != FINISHED, "status"].value_counts(sort=False)
        labels[(n, k)] = f"{len(members) - int(waiting.sum())}/{len(members)} finished, " + ", ".join(
            f"{count} {status}" for status, count in waiting.items())
    grid = pd.DataFrame(index=sorted(cells["blocks"].unique()), columns=sorted(cells["widen_factor"].unique()), dtype=object)
    for (n, k), label in labels.items():
        grid.loc[n, k] = label
    return grid.where(grid.notna(), None)


def seed_stats(cells: pd.DataFrame, metric: str = "best_test_acc") -> pd.DataFrame:
    """Mean, std and count over seeds of each (N, k) (and other varied axes): for error bars."""
    keys = [c for c in GROUP_AXES if c in cells.columns]
    data = cells.dropna(subset=[metric])
    if data.empty:
        return pd.DataFrame(columns=[*keys, "params", "macs", "mean", "std", "count", "train_seconds"])
    grouped = data.groupby(keys, as_index=False).agg(
        params=("params", "first"), macs=("macs", "first"), mean=(metric, "mean"), std=(metric, "std"), count=(metric, "count"),
    )
    grouped["std"] = grouped["std"].fillna(0.0)
    if "train_seconds" in data.columns:  # the mean training time, an x axis of the accuracy trade-off
        grouped["train_seconds"] = data.groupby(keys)["train_seconds"].mean().to_numpy()
    return grouped



def group_columns(cells: pd.DataFrame) -> list[str]:
    """The cells_frame columns that name a group of seeds: N, k and any other axis the sweep varies."""
    return [axis for axis in GROUP_AXES if axis in cells.columns]


def group_label(values: Mapping[str, Any]) -> str:
    """'WRN-16-2' for N=2, k=2, plus the other axes a cell has: 'WRN-16-2 d0.3 adam lr0.01 b64'."""
    parts = [f"WRN-{6 * int(values['blocks']) + 4}-{int(values['widen_factor'])}"]
    if values.get("dropout") is not None:
        parts.append(f"d{float(values['dropout']):g}")
    if values.get("optimizer") is not None:
        parts.append(str(values["optimizer"]))
    if values.get("lr") is not None:
        parts.append(f"lr{float(values['lr']):g}")
    if values.get("batch_size") is not None:
        parts.append(f"b{int(values['batch_size'])}")
    return " ".join(parts)


def sweep_counts(cells: pd.DataFrame) -> dict[str, int]:
    """How many cells are ended (finished, diverged, failed or pruned), finished, pruned, running, queued, paused and
    pending."""
    status = cells["status"] if "status" in cells.columns else pd.Series(dtype=object)
    return {
        "total": int(len(cells)),
        "ended": int(status.isin(ENDED_STATUSES).sum()),
        FINISHED: int((status == FINISHED).sum()),
        PRUNED: int((status == PRUNED).sum()),
        RUNNING: int((status == RUNNING).sum()),
        QUEUED: int((status == QUEUED).sum()),
        "paused": int(status.isin(PAUSED_STATUSES).sum()),
        PENDING: int((status == PENDING).sum()),
    }


def cells_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells as the dashboard lists them: accuracies in percent, epochs as 'done/planned', seconds rounded."""
    table = pd.DataFrame({
        "run": cells["run"],
        "model": [group_label(row) for row in cells.to_dict("records")],
        "seed": cells["seed"],
        "status": cells["status"],
        "epoch": [f"{int(e)}/{int(n)}" for e, n in zip(cells["epoch"], cells["epochs"])],
        "best test acc (%)": pd.to_numeric(cells["best_test_acc"], errors="coerce") * 100.0,
        "final test acc (%)": pd.to_numeric(cells["final_test_acc"], errors="coerce") * 100.0,
        "time (s)": pd.to_numeric(cells["train_seconds"], errors="coerce"),
        "images/s": pd.to_numeric(cells["images_per_s"], errors="coerce"),
        "params": cells["params"],
        "MACs": cells["macs"],
        # Only a finished cell is on or off the front: the others have no result to compare yet.
        "pareto": [bool(p) if f else None for p, f in zip(cells["pareto"], final_mask(cells))],
        "executor": cells["executor"] if "executor" in cells else None,
        "host": cells["host"] if "host" in cells else None,
        # Ray's node id (8 hex digits tell a cluster's nodes apart) and how often Ray started the cell again.
        "node": [n[:8] if isinstance(n, str) else None for n in cells["node"]] if "node" in cells else None,
        "retried": cells["retried"] if "retried" in cells else None,
    })
    return table.reset_index(drop=True)


def tradeoff_points(cells: pd.DataFrame, x: str = "params", metric: str = "best_test_acc") -> pd.DataFrame:
    """One point per group of seeds: x (params, MACs per image, or mean training seconds), the metric's
    mean, std and count over the seeds, a label, and whether the point is on the Pareto front of
    (x, metric) — no other group is at most as costly and at least as accurate. Sorted by x."""
    if x not in TRADEOFF_X:
        raise ValueError(f"unknown trade-off axis {x!r}; choose from {', '.join(TRADEOFF_X)}")
    keys = group_columns(cells)
    stats = seed_stats(cells[final_mask(cells, keys)], metric)  # results only: see unfinished_points
    if stats.empty:
        return pd.DataFrame(columns=[*keys, "x", "mean", "std", "count", "label", "pareto"])
    stats = stats.assign(x=pd.to_numeric(stats[x], errors="coerce")).dropna(subset=["x"])
    stats["label"] = [group_label(row) for row in stats.to_dict("records")]
    stats["pareto"] = pareto_front(zip(stats["x"].astype(float), stats["mean"].astype(float))) if len(stats) else []
    return stats.sort_values(["x", "mean"], kind="stable").reset_index(drop=True)


def unfinished_points(cells: pd.DataFrame, x: str = "params", metric: str = "best_test_acc") -> pd.DataFrame:
    """The cells left out of tradeoff_points (their group has a cell not finished) that have a value so
    far: x, value, and a label naming the cell and where it is ('WRN-10-3 · stopped at 2/3'). Sorted by x."""
    if x not in TRADEOFF_X:
        raise ValueError(f"unknown trade-off axis {x!r}; choose from {', '.join(TRADEOFF_X)}")
    keys = group_columns(cells)
    rest = cells[~final_mask(cells, keys)]
    several = "seed" in cells.columns and cells["seed"].nunique() > 1
    rows = []
    for row in rest.to_dict("records"):
        value, where = pd.to_numeric(row.get(metric), errors="coerce"), pd.to_numeric(row.get(x), errors="coerce")
        if pd.isna(value) or pd.isna(where):
            continue
        label = group_label(row) + (f" s{row['seed']}" if several else "")
        rows.append({"run": row["run"], "x": float(where), "value": float(value),
                     "label": f"{label} · {cell_state(row['status'], row['epoch'], row['epochs'])}"})
    frame = pd.DataFrame(rows, columns=["run", "x", "value", "label"])
    return frame.sort_values("x", kind="stable").reset_index(drop=True)


def seed_band(curves: Sequence[pd.DataFrame], column: str = "test_acc") -> pd.DataFrame:
    """Mean, std and count over several runs' per-epoch curves (frames with epoch and column), per epoch.

    An epoch only some runs have reached counts those runs; the std of one value is 0.
    """
    parts = [c[["epoch", column]].dropna() for c in curves if not c.empty and column in c.columns]
    if not parts:
        return pd.DataFrame(columns=["epoch", "mean", "std", "count"])
    data = pd.concat(parts, ignore_index=True)
    band = data.groupby("epoch", as_index=False)[column].agg(["mean", "std", "count"])
    band["std"] = band["std"].fillna(0.0)
    return band.sort_values("epoch").reset_index(drop=True)


CLUSTER_COLUMNS = ("node", "address", "hostname", "CPUs", "GPUs", "state", "last seen", "training now", "last ran there")


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.0f} h ago"


def cluster_frame(nodes: ClusterNodes, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per node of a Ray sweep's nodes file, alive first (sweep_file.NODE_FIELDS), with the cells running
    on it now (`running`) and the others whose trainer ran there last (`ran`): cells_frame's `node`, from each
    cell's status."""
    placed = cells[cells["node"].notna()] if "node" in cells else cells.iloc[0:0]
    rows = []
    for node in sorted(nodes.nodes, key=lambda n: (not n["alive"], str(n["address"]), str(n["node"]))):
        here = placed[placed["node"] == node["node"]]
        running = here["status"] == RUNNING
        rows.append({**node, "running": list(here.loc[running, "run"]), "ran": list(here.loc[~running, "run"])})
    return pd.DataFrame(rows, columns=[*NODE_FIELDS, "running", "ran"])


def cluster_table(frame: pd.DataFrame, now: float) -> pd.DataFrame:
    """The nodes as the dashboard lists them: ids as 8 hex digits, alive or lost, when last seen, cells by name."""
    return pd.DataFrame({
        "node": [str(n or "")[:8] for n in frame["node"]], "address": frame["address"], "hostname": frame["hostname"],
        "CPUs": frame["cpus"], "GPUs": frame["gpus"], "state": ["alive" if a else "lost" for a in frame["alive"]],
        "last seen": ["before this driver" if pd.isna(t) else _ago(now - float(t)) for t in frame["last_seen"]],
        "training now": [", ".join(r) for r in frame["running"]], "last ran there": [", ".join(r) for r in frame["ran"]],
    }, columns=list(CLUSTER_COLUMNS))


def nodes_freshness(nodes: ClusterNodes, now: float, driving: bool, active: bool) -> tuple[str, bool]:
    """(a line saying when the sweep's Ray driver last wrote its nodes, whether the table may be out of date):
    a driver that stopped rewriting it, or cells still active with no driver, so a dead driver's table never
    passes for live. `driving`: a driver holds the sweep's queue lock; `active`: some cell is queued or running."""
    age = now - nodes.written_at
    line = f"Written by the sweep's Ray driver {_ago(age)}"
    if driving and age > 3 * NODES_REFRESH_S:
        return line + " and not since (it rewrites it every few seconds): the driver may be hung; nodes may have " \
                      "joined or been lost since", True
    if driving:
        return line + "; it rewrites it when a node joins or is lost", False
    if active:
        return line + "; no driver runs the sweep now, so nodes may have joined or been lost since", True
    return line + " (its last view of the cluster: no driver runs the sweep now)", False
