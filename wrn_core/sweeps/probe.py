"""The sweep's pre-flight: size, predicted memory and a time predicted from a few timed steps of the engine's own step."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.sweeps.grid import Sweep


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

    from wrn_core.engine.optim import build_optimizer
    from wrn_core.engine.step import autocast, train_step
    from wrn_core.model import build_model

    model = build_model(model_config).to(device, memory_format=torch.channels_last)
    opt = build_optimizer(model, TrainConfig(model=model_config, optimizer=optimizer), device)
    x = torch.randn(batch_size, model_config.in_channels, *image_size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model_config.num_classes, (batch_size,), device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        train_step(model, opt, x, y, device)

    model.train()
    step()  # warm-up: allocations, cuDNN autotuning
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per_step = (time.perf_counter() - start) / steps
    model.eval()
    with torch.no_grad(), autocast(device):
        model(x)
        sync()
        start = time.perf_counter()
        model(x)
        sync()
    per_image = (time.perf_counter() - start) / batch_size
    return per_step, per_image


def interpreter_seconds() -> float:
    """Seconds a new Python process takes to import torch and the engine: what a run's process pays first."""
    import subprocess
    import sys

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, wrn_core.engine.loop"], check=False, capture_output=True)
    return time.perf_counter() - start


def probe(sweep: Sweep, steps: int = 3, measure_startup: bool = True, import_seconds: float | None = None) -> Probe:
    """Time a few training steps of each distinct model (and batch size) of the sweep on its device.

    The startup is measured too: a new interpreter importing torch and the engine, plus loading the
    sweep's dataset once (what every cell's process pays before its first step). A caller that is
    itself such a fresh process (the sweep command) passes its own age as `import_seconds`, which
    spares starting another interpreter (~2 s on this 2-core CPU, before the first cell).
    """
    import torch

    from wrn_core.data import load_dataset
    from wrn_core.engine.devices import resolve_device
    from wrn_core.model.flops import input_size

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
        startup = import_seconds if import_seconds is not None else interpreter_seconds()
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


def preflight_frame(sweep: Sweep, measured: Probe | None = None, gpu_share: float = 1.0) -> pd.DataFrame:
    """One row per cell: params, MACs per image, predicted training memory against the device's free
    memory (fits), and, with a probe, the predicted training seconds (steps × measured step time +
    evaluations + the measured process startup). `gpu_share` < 1 (Ray's fractional --gpus-per-cell): up to
    1/gpu_share cells share one GPU, so each must fit in that share of its free memory."""
    from wrn_core.model.flops import input_size, macs_per_image
    from wrn_core.engine.devices import check_memory
    from wrn_core.model.memory import parameter_count

    size = input_size(sweep.base) or (32, 32)
    n_train, n_test = _data_sizes(sweep.base)
    rows = []
    for cell in sweep.cells():
        config, model = cell.config, cell.config.model
        memory = check_memory(config, size)
        fits = memory.fits
        if 0 < gpu_share < 1 and memory.free_mb is not None and memory.device.startswith("cuda"):
            fits = memory.predicted_mb <= memory.free_mb * gpu_share
        steps_per_epoch = max(1, n_train // config.batch_size)
        # Short columns first, so fits, memory and predicted time are in view beside the cell.
        row: dict[str, Any] = {
            "run": cell.run, **cell.values, "fits": fits, "memory_mb": memory.predicted_mb, "predicted_s": None,
            "depth": model.depth, "params": parameter_count(model), "macs": macs_per_image(model, *size),
            "free_mb": memory.free_mb, "steps": steps_per_epoch * config.epochs,
        }
        if measured is not None:
            step_s = measured.seconds_per_step[(model.blocks, model.widen_factor, model.dropout, config.batch_size)]
            eval_s = measured.seconds_per_eval_image[(model.blocks, model.widen_factor, model.dropout)] * n_test
            row["predicted_s"] = measured.startup_seconds + config.epochs * (steps_per_epoch * step_s + eval_s)
        rows.append(row)
    return pd.DataFrame(rows)



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


def predicted_seconds(sweep: Sweep, plan: pd.DataFrame) -> dict[str, float]:
    """run -> predicted training seconds from a pre-flight of this grid (its rows in cell order, whatever name the
    pre-flight's sweep had); empty when it has no predicted times."""
    seconds = pd.to_numeric(plan["predicted_s"], errors="coerce") if "predicted_s" in plan else pd.Series(dtype=float)
    if len(seconds) != len(sweep.cells()) or seconds.isna().any():
        return {}
    return {cell.run: float(s) for cell, s in zip(sweep.cells(), seconds)}


def budget_forecast(plan: pd.DataFrame, search: Any) -> str | None:
    """What a search plan's budget buys by the pre-flight's predicted times (one line, minutes), or None for a plan
    without a budget or a pre-flight without times: the training time its cells take (the quickest to the
    slowest of them), or how many cells its minutes fit."""
    seconds = sorted(pd.to_numeric(plan["predicted_s"], errors="coerce").dropna().tolist()) if "predicted_s" in plan else []
    if not seconds or len(seconds) != len(plan) or (search.budget_cells is None and search.budget_minutes is None):
        return None
    whole = f"the whole grid, {len(seconds)} cells: {sum(seconds) / 60:.1f} min"
    if search.budget_cells is not None:
        count = min(search.budget_cells, len(seconds))
        quick, slow = sum(seconds[:count]) / 60, sum(seconds[-count:]) / 60
        if f"{quick:.1f}" == f"{slow:.1f}":
            return f"a budget of {search.budget_text()}: {quick:.1f} min of training ({whole})"
        return (f"a budget of {search.budget_text()}: {quick:.1f} to {slow:.1f} min of training, by which cells the "
                f"search picks ({whole})")
    budget = search.budget_minutes * 60.0

    def fitting(order: list[float]) -> int:
        total = count = 0
        for s in order:
            if total + s <= budget:
                total, count = total + s, count + 1
        return count

    fewest, most = fitting(seconds[::-1]), fitting(seconds)
    count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    return (f"a budget of {search.budget_text()}: {count} cells, by which cells the search picks; none starts that is "
            f"predicted not to fit ({whole})")
