"""Sweeps: a named grid over a base training config (N × k, and optionally dropout, optimizer, lr, batch, seed).

A sweep is one small file in the runs directory, `<name>.sweep.json`; its cells are ordinary runs
named `<name>-n<N>-k<k>[-d<dropout>][-<optimizer>][-lr<lr>][-b<batch>]-s<seed>` whose status.json
carries `sweep`. A cell with no run directory yet is pending. The job manager starts pending cells
as slots free up (advance()), so a sweep never floods the queue and a stop leaves the rest pending.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from wrn_core.config import OPTIMIZERS, ConfigError, TrainConfig, WRNConfig
from wrn_core.runstore import ACTIVE_STATUSES, RunStore, RunStoreError, validate_run_name

SWEEP_SUFFIX = ".sweep.json"
# The axes a sweep may vary, in the order they appear in run names and tables.
AXES = ("blocks", "widen_factor", "dropout", "optimizer", "lr", "batch_size", "seed")
TERMINAL = ("finished", "diverged", "failed")  # a cell in one of these is done; stopped/interrupted cells resume


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its run name, its values on every axis and the config it trains."""

    run: str
    values: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class Sweep:
    """A named grid over a base config; only the axes given vary, the rest come from the base."""

    name: str
    base: TrainConfig
    axes: dict[str, tuple[Any, ...]]  # axis -> values; blocks, widen_factor and seed are always present
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        validate_run_name(self.name)
        unknown = set(self.axes) - set(AXES)
        if unknown:
            raise ConfigError(f"unknown sweep axis {', '.join(sorted(unknown))}; choose from {', '.join(AXES)}")
        for axis in ("blocks", "widen_factor", "seed"):
            if not self.axes.get(axis):
                raise ConfigError(f"a sweep needs at least one value of {axis.replace('_', ' ')}")
        for axis, values in self.axes.items():
            if len(set(values)) != len(values):
                raise ConfigError(f"sweep axis {axis} lists a value twice: {', '.join(map(str, values))}")
        for cell in self.cells():  # every cell is a valid config and a valid run name
            validate_run_name(cell.run)

    @property
    def varied(self) -> list[str]:
        """The axes with more than one value (the ones plots split by)."""
        return [axis for axis in AXES if len(self.axes.get(axis, ())) > 1]

    def cells(self) -> list[Cell]:
        """Every combination, in run order: N, then k, then the other axes, seed last."""
        names = [axis for axis in AXES if axis in self.axes]
        cells = []
        for combo in itertools.product(*(self.axes[axis] for axis in names)):
            values = dict(zip(names, combo))
            cells.append(Cell(run=self._run_name(values), values=values, config=self._config(values)))
        return cells

    def _run_name(self, values: dict[str, Any]) -> str:
        parts = [self.name, f"n{values['blocks']}", f"k{values['widen_factor']}"]
        if "dropout" in self.axes:
            parts.append(f"d{values['dropout']:g}")
        if "optimizer" in self.axes:
            parts.append(str(values["optimizer"]))
        if "lr" in self.axes:
            parts.append(f"lr{values['lr']:g}")
        if "batch_size" in self.axes:
            parts.append(f"b{values['batch_size']}")
        parts.append(f"s{values['seed']}")
        return "-".join(parts)

    def _config(self, values: dict[str, Any]) -> TrainConfig:
        model = WRNConfig.from_blocks(
            int(values["blocks"]), int(values["widen_factor"]),
            dropout=float(values.get("dropout", self.base.model.dropout)),
            num_classes=self.base.model.num_classes, in_channels=self.base.model.in_channels,
        )
        changes: dict[str, Any] = {"model": model, "seed": int(values["seed"])}
        if "optimizer" in values:
            changes["optimizer"] = values["optimizer"]
            if values["optimizer"] != self.base.optimizer and "lr" not in values:
                changes.update(lr=None, weight_decay=None)  # that optimizer's usual values
        if "lr" in values:
            changes["lr"] = float(values["lr"])
        if "batch_size" in values:
            changes["batch_size"] = int(values["batch_size"])
        return self.base.replace(**changes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "axes": {k: list(v) for k, v in self.axes.items()}, "base": self.base.to_dict(),
                "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sweep":
        axes = {str(k): tuple(v) for k, v in dict(data["axes"]).items()}
        return cls(name=str(data["name"]), base=TrainConfig.from_dict(data["base"]), axes=axes,
                   created_at=float(data.get("created_at") or 0.0))


def make_sweep(name: str, base: TrainConfig, blocks: Sequence[int], widen_factors: Sequence[int],
               seeds: Sequence[int] = (0,), **other_axes: Sequence[Any] | None) -> Sweep:
    """A sweep over N × k × seeds, plus any of dropout, optimizer, lr, batch_size given as value lists."""
    axes: dict[str, tuple[Any, ...]] = {
        "blocks": tuple(int(v) for v in blocks),
        "widen_factor": tuple(int(v) for v in widen_factors),
        "seed": tuple(int(v) for v in seeds),
    }
    for axis, values in other_axes.items():
        if values:
            if axis == "optimizer":
                for value in values:
                    if value not in OPTIMIZERS:
                        raise ConfigError(f"unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)}")
            axes[axis] = tuple(values)
    return Sweep(name=name, base=base, axes=axes)


# ---------------------------------------------------------------------------------------------
# The file in the runs directory


def sweep_path(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / f"{validate_run_name(name)}{SWEEP_SUFFIX}"


def save_sweep(root: str | os.PathLike[str], sweep: Sweep) -> Path:
    """Write the sweep file (atomically); RunStoreError if a different sweep of that name exists."""
    path = sweep_path(root, sweep.name)
    if path.exists():
        existing = load_sweep(root, sweep.name)
        if existing.axes != sweep.axes or existing.base != sweep.base:
            raise RunStoreError(
                f"a different sweep named {sweep.name!r} already exists in {root}; "
                f"use `--resume` to continue it or choose another name"
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sweep.to_dict(), indent=2))
    os.replace(tmp, path)
    return path


def load_sweep(root: str | os.PathLike[str], name: str) -> Sweep:
    """The saved sweep; RunStoreError (one line) when it is missing or unreadable."""
    path = sweep_path(root, name)
    try:
        return Sweep.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RunStoreError(f"no sweep named {name!r} in {root}") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise RunStoreError(f"sweep file {path.name} is unreadable ({exc})") from None


def sweep_names(root: str | os.PathLike[str]) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(SWEEP_SUFFIX)] for p in root.glob(f"*{SWEEP_SUFFIX}") if not p.name.startswith("."))


def recent_sweep_names(root: str | os.PathLike[str]) -> list[str]:
    """Saved sweeps, newest first (by the created_at in each file; unreadable files last, by name)."""

    def created(name: str) -> float:
        try:
            return float(json.loads(sweep_path(root, name).read_text(encoding="utf-8")).get("created_at") or 0.0)
        except (OSError, ValueError, TypeError, AttributeError, RunStoreError):
            return float("-inf")

    return sorted(sweep_names(root), key=lambda name: (-created(name), name))


def default_sweep_name(now: float | None = None) -> str:
    """A name for a sweep the user did not name: sweep-<local time>, e.g. sweep-20250101-120000."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))


# ---------------------------------------------------------------------------------------------
# Progress of a sweep


def cell_statuses(store: RunStore, sweep: Sweep) -> dict[str, str]:
    """Each cell's run status; pending where no run exists yet."""
    statuses = {}
    for cell in sweep.cells():
        if store.exists(cell.run):
            statuses[cell.run] = store.summary(cell.run).status
        else:
            statuses[cell.run] = "pending"
    return statuses


def next_cells(store: RunStore, sweep: Sweep) -> list[Cell]:
    """Cells still to train, in order: pending ones and stopped or interrupted ones (which resume)."""
    statuses = cell_statuses(store, sweep)
    return [cell for cell in sweep.cells() if statuses[cell.run] not in TERMINAL + ACTIVE_STATUSES]


def is_done(store: RunStore, sweep: Sweep) -> bool:
    return all(status in TERMINAL for status in cell_statuses(store, sweep).values())


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
                "best_test_acc", "final_test_acc", "train_seconds", "images_per_s", "pareto")


def cells_frame(store: RunStore, sweep: Sweep) -> pd.DataFrame:
    """One row per cell: its axis values, status, size, cost and accuracy, and whether it is on the
    accuracy-vs-params Pareto front (among cells with a test accuracy)."""
    from wrn_core.flops import macs_per_image, input_size
    from wrn_core.memory import parameter_count

    rows = []
    for cell in sweep.cells():
        model = cell.config.model
        size = input_size(cell.config) or (32, 32)
        row: dict[str, Any] = {
            "run": cell.run, **{axis: cell.values[axis] for axis in cell.values},
            "depth": model.depth, "status": "pending", "epoch": 0, "epochs": cell.config.epochs,
            "params": parameter_count(model), "macs": macs_per_image(model, size[0], size[1]),
            "best_test_acc": None, "final_test_acc": None, "train_seconds": None, "images_per_s": None,
        }
        if store.exists(cell.run):
            summary = store.summary(cell.run)
            row.update(status=summary.status, epoch=summary.epoch, epochs=summary.epochs or cell.config.epochs,
                       best_test_acc=summary.best_test_acc, final_test_acc=summary.final_test_acc,
                       train_seconds=summary.duration_s or None)
            if summary.params:
                row["params"] = summary.params
            rates = [r.get("images_per_s") for r in store.get(cell.run).read_metrics() if r.get("kind") == "epoch"]
            rates = [float(r) for r in rates if isinstance(r, (int, float)) and math.isfinite(r)]
            row["images_per_s"] = sum(rates) / len(rates) if rates else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    scored = frame["best_test_acc"].notna()
    frame["pareto"] = False
    if scored.any():
        flags = pareto_front(zip(frame.loc[scored, "params"].astype(float), frame.loc[scored, "best_test_acc"].astype(float)))
        frame.loc[scored, "pareto"] = flags
    columns = [c for c in CELL_COLUMNS if c in frame.columns]
    extra = [c for c in frame.columns if c not in columns]
    return frame[columns[:3] + extra + columns[3:]]


def grid_frame(cells: pd.DataFrame, metric: str, agg: str = "mean") -> pd.DataFrame:
    """N (rows) × k (columns) of a metric: the mean over the seeds (and other axes) of each (N, k).

    agg="std" gives the spread over the seeds instead (NaN where an (N, k) has one value).
    """
    data = cells.dropna(subset=[metric]) if metric in cells else cells.iloc[0:0]
    if data.empty:
        return pd.DataFrame(index=sorted(cells["blocks"].unique()), columns=sorted(cells["widen_factor"].unique()), dtype=float)
    table = data.pivot_table(index="blocks", columns="widen_factor", values=metric, aggfunc=agg)
    return table.reindex(index=sorted(cells["blocks"].unique()), columns=sorted(cells["widen_factor"].unique()))


def seed_stats(cells: pd.DataFrame, metric: str = "best_test_acc") -> pd.DataFrame:
    """Mean, std and count over seeds of each (N, k) (and other varied axes): for error bars."""
    keys = [c for c in ("blocks", "widen_factor", "dropout", "optimizer", "lr", "batch_size") if c in cells.columns]
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


# ---------------------------------------------------------------------------------------------
# Pre-flight: size, memory and a time predicted from measured steps


@dataclass(frozen=True)
class Probe:
    """Measured costs on one device, for predicting how long cells take."""

    seconds_per_step: dict[tuple[int, int, float, int], float]  # (N, k, dropout, batch) -> training step, s
    seconds_per_eval_image: dict[tuple[int, int, float], float]  # (N, k, dropout) -> forward in eval mode, s/image
    startup_seconds: float  # a training process from launch to its first step (interpreter, torch, data)


def _time_steps(model_config: WRNConfig, batch_size: int, device: Any, steps: int, image_size: tuple[int, int],
                optimizer: str) -> tuple[float, float]:
    """(seconds per training step, seconds per evaluated image) of this model on random images."""
    import torch
    import torch.nn.functional as F

    from wrn_core.model import build_model
    from wrn_core.train import _autocast, build_optimizer

    model = build_model(model_config).to(device, memory_format=torch.channels_last)
    opt = build_optimizer(model, TrainConfig(model=model_config, optimizer=optimizer), device)
    x = torch.randn(batch_size, model_config.in_channels, *image_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model_config.num_classes, (batch_size,), device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        with _autocast(device):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up: allocations, cuDNN autotuning
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per_step = (time.perf_counter() - start) / steps
    model.eval()
    with torch.no_grad(), _autocast(device):
        model(x)
        sync()
        start = time.perf_counter()
        model(x)
        sync()
    per_image = (time.perf_counter() - start) / batch_size
    return per_step, per_image


def probe(sweep: Sweep, steps: int = 3, measure_startup: bool = True, import_seconds: float | None = None) -> Probe:
    """Time a few training steps of each distinct model (and batch size) of the sweep on its device.

    The startup is measured too: a new interpreter importing torch and the engine, plus loading the
    sweep's dataset once (what every cell's process pays before its first step). A caller that is
    itself such a fresh process (the sweep command) passes its own age as `import_seconds`, which
    spares starting another interpreter (~2 s on this 2-core CPU, before the first cell).
    """
    import subprocess
    import sys

    import torch

    from wrn_core.data import load_dataset
    from wrn_core.devices import resolve_device
    from wrn_core.flops import input_size

    device = resolve_device(sweep.base.device)
    size = input_size(sweep.base) or (32, 32)
    per_step: dict[tuple[int, int, float, int], float] = {}
    per_image: dict[tuple[int, int, float], float] = {}
    threads = torch.get_num_threads()
    for cell in sweep.cells():
        model = cell.config.model
        key = (model.blocks, model.widen_factor, model.dropout, cell.config.batch_size)
        if key in per_step:
            continue
        step_s, image_s = _time_steps(model, cell.config.batch_size, device, steps, size, cell.config.optimizer)
        per_step[key] = step_s
        per_image.setdefault(key[:3], image_s)
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the probe often runs inside the dashboard: give the GPU memory back
    startup = 0.0
    if measure_startup:
        if import_seconds is not None:
            startup = import_seconds
        else:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import torch, wrn_core.train"], check=False, capture_output=True)
            startup = time.perf_counter() - start
        start = time.perf_counter()
        load_dataset(sweep.base)
        startup += time.perf_counter() - start
    return Probe(per_step, per_image, startup)


def _data_sizes(config: TrainConfig) -> tuple[int, int]:
    """(training images, test images) a run of this config trains and evaluates on, without loading them."""
    from wrn_core.data import CIFAR_SPLIT_SIZES, scan_folder

    if config.dataset == "synthetic":
        n_train, n_test = config.synthetic_train, config.synthetic_test
    elif config.dataset == "folder" and config.data_dir:
        n_train, n_test = scan_folder(config.data_dir).split_sizes
    else:
        n_train, n_test = CIFAR_SPLIT_SIZES
    return (config.subset_train or n_train, config.subset_test or n_test)


def preflight_frame(sweep: Sweep, measured: Probe | None = None) -> pd.DataFrame:
    """One row per cell: params, MACs per image, predicted training memory against the device's free
    memory (fits), and, with a probe, the predicted training seconds (steps × measured step time +
    evaluations + the measured process startup)."""
    from wrn_core.flops import input_size, macs_per_image
    from wrn_core.memory import check_memory, parameter_count

    size = input_size(sweep.base) or (32, 32)
    n_train, n_test = _data_sizes(sweep.base)
    rows = []
    for cell in sweep.cells():
        config, model = cell.config, cell.config.model
        memory = check_memory(config, size)
        steps_per_epoch = max(1, n_train // config.batch_size)
        row: dict[str, Any] = {
            "run": cell.run, **cell.values, "depth": model.depth, "params": parameter_count(model),
            "macs": macs_per_image(model, *size), "memory_mb": memory.predicted_mb, "free_mb": memory.free_mb,
            "fits": memory.fits, "steps": steps_per_epoch * config.epochs, "predicted_s": None,
        }
        if measured is not None:
            step_s = measured.seconds_per_step[(model.blocks, model.widen_factor, model.dropout, config.batch_size)]
            eval_s = measured.seconds_per_eval_image[(model.blocks, model.widen_factor, model.dropout)] * n_test
            row["predicted_s"] = measured.startup_seconds + config.epochs * (steps_per_epoch * step_s + eval_s)
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Views of a sweep's cells: what the dashboard's Sweep page draws

# The axes a cell's group is known by: every axis but the seed (seeds of one group are repeats).
GROUP_AXES = ("blocks", "widen_factor", "dropout", "optimizer", "lr", "batch_size")
# x axes of the accuracy trade-off: cells_frame columns.
TRADEOFF_X = ("params", "macs", "train_seconds")
# Statuses of a cell that has ended (TERMINAL) or is paused and can resume.
PAUSED = ("stopped", "interrupted")


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
    """How many cells are ended (finished, diverged or failed), finished, running, queued, paused and pending."""
    status = cells["status"] if "status" in cells.columns else pd.Series(dtype=object)
    return {
        "total": int(len(cells)),
        "ended": int(status.isin(TERMINAL).sum()),
        "finished": int((status == "finished").sum()),
        "running": int((status == "running").sum()),
        "queued": int((status == "queued").sum()),
        "paused": int(status.isin(PAUSED).sum()),
        "pending": int((status == "pending").sum()),
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
        "pareto": cells["pareto"].astype(bool),
    })
    return table.reset_index(drop=True)


def tradeoff_points(cells: pd.DataFrame, x: str = "params", metric: str = "best_test_acc") -> pd.DataFrame:
    """One point per group of seeds: x (params, MACs per image, or mean training seconds), the metric's
    mean, std and count over the seeds, a label, and whether the point is on the Pareto front of
    (x, metric) — no other group is at most as costly and at least as accurate. Sorted by x."""
    if x not in TRADEOFF_X:
        raise ValueError(f"unknown trade-off axis {x!r}; choose from {', '.join(TRADEOFF_X)}")
    stats = seed_stats(cells, metric)
    keys = group_columns(cells)
    if stats.empty:
        return pd.DataFrame(columns=[*keys, "x", "mean", "std", "count", "label", "pareto"])
    stats = stats.assign(x=pd.to_numeric(stats[x], errors="coerce")).dropna(subset=["x"])
    stats["label"] = [group_label(row) for row in stats.to_dict("records")]
    stats["pareto"] = pareto_front(zip(stats["x"].astype(float), stats["mean"].astype(float))) if len(stats) else []
    return stats.sort_values(["x", "mean"], kind="stable").reset_index(drop=True)


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


def preflight_summary(plan: pd.DataFrame) -> dict[str, Any]:
    """The pre-flight's totals: cells, predicted seconds of them all (None without a probe), the largest
    predicted memory, and the runs predicted not to fit."""
    predicted = pd.to_numeric(plan["predicted_s"], errors="coerce") if "predicted_s" in plan else pd.Series(dtype=float)
    return {
        "cells": int(len(plan)),
        "predicted_s": float(predicted.sum()) if len(predicted) and predicted.notna().all() else None,
        "peak_memory_mb": float(plan["memory_mb"].max()) if len(plan) else None,
        "misfits": [str(run) for run in plan.loc[~plan["fits"].astype(bool), "run"]] if len(plan) else [],
    }
