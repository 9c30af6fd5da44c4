"""Training throughput: the engine (train_run) against a conventional PyTorch loop, same model, batch and images.

    python -m bench.throughput [--device cpu|cuda] [--out FILE.json] [--data-dir DIR] [--quick]

Conventional loop (what tutorials write; its data path is bench/conventional.py, shared with
bench/accuracy_parity.py): torchvision ImageFolder over the CIFAR-10 JPEG train folder,
DataLoader(shuffle=True, num_workers=W, pin_memory on CUDA, drop_last=True) with PIL transforms
RandomCrop(32, padding=4, padding_mode="reflect") (reflect, as the engine pads),
RandomHorizontalFlip, ToTensor, Normalize; an fp32 NCHW model; SGD with Nesterov momentum; per
step .to(device), forward, F.cross_entropy, backward, step and loss.item(). W = min(8, CPUs) on
CUDA and min(2, CPUs) on the CPU.

Engine: wrn_core.engine.loop.train_run on a run in a temporary RunStore (dataset "folder", a
class-balanced train subset of exactly the steps needed, one epoch), so it measures what users
get: device-resident uint8 data with batched augmentation, and on CUDA bf16 autocast,
channels_last, a fused optimizer and no per-step host sync. Its rate comes from the metrics.jsonl
"step" records: images between consecutive records / training seconds between them, after a
warm-up, median over the windows (one window = log_every steps). The baseline is timed with the
same windows. On CUDA a compile=True engine run is reported separately (its warm-up is the
"compile" event, excluded from the windows).

On the CPU it also measures the cost of watching a run: training with the run store writing and
a reader thread polling metrics.jsonl and status.json once a second, against the same training
with the store's writes patched to no-ops and no reader (runs alternate A B A B; rates from the
progress hook in both modes, so both are measured the same way). watch_ratio = watched / unwatched.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F

from bench.common import (
    RESULTS_DIR,
    add_threads_argument,
    count_macs,
    environment,
    median,
    peak_for,
    prepare_image_folder,
    rates_from_points,
    step_points,
    write_json,
)
from bench.conventional import conventional_loader
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.model import build_model
from wrn_core.store import Run, RunStore
from wrn_core.engine.devices import resolve_device
from wrn_core.engine.loop import train_run
from wrn_core.store.records import Progress

# Published CIFAR-10 statistics, for the baseline's Normalize (throughput does not depend on them).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4  # the paper's SGD-Nesterov settings, in both loops


@dataclass(frozen=True)
class Plan:
    """How long one measurement runs: warm-up steps, then `windows` windows of `window` steps."""

    warmup: int  # steps whose time is not counted (first step, cuDNN autotune, DataLoader start)
    window: int  # steps per timed window (= the engine's log_every)
    windows: int

    def __post_init__(self) -> None:
        # Windows start at a logged step, so the warm-up is a whole number of windows.
        if self.warmup % self.window != 0 or self.window < 1 or self.windows < 1:
            raise ValueError(f"warm-up ({self.warmup}) must be a multiple of the window ({self.window})")

    @property
    def steps(self) -> int:
        return self.warmup + self.window * self.windows


@dataclass(frozen=True)
class Case:
    depth: int
    widen_factor: int
    batch_size: int
    plan: Plan
    baseline: bool = True  # also time the conventional loop
    compiled: bool = False  # also time the engine with compile=True (CUDA)
    eager: bool = True  # time the engine without compile (and the baseline beside it)
    repeats: int = 1  # baseline, engine, baseline, engine, ...: windows pooled over the repeats

    @property
    def name(self) -> str:
        return f"WRN-{self.depth}-{self.widen_factor}"


# --suite compiled: the one figure a short GPU lease needs first, the Fast GPU recipe's compiled step rate.
COMPILED_ONLY = [Case(16, 8, 512, Plan(warmup=10, window=10, windows=6), baseline=False, compiled=True, eager=False)]


def cases_for(device: torch.device, quick: bool, suite: str = "full") -> list[Case]:
    if suite == "compiled" and not quick:
        return COMPILED_ONLY
    if quick:
        return [Case(10, 1, 16, Plan(warmup=2, window=2, windows=3))]
    if device.type == "cuda":
        return [
            Case(16, 8, 128, Plan(warmup=20, window=20, windows=10), compiled=True),
            Case(28, 10, 128, Plan(warmup=20, window=20, windows=10), compiled=True),
            # Engine only, at the time-to-accuracy batch size (no baseline: the ratio is at 128).
            Case(16, 8, 512, Plan(warmup=10, window=10, windows=6), baseline=False),
            Case(28, 10, 512, Plan(warmup=10, window=10, windows=6), baseline=False),
        ]
    # The CPU is shared and noisy: short windows, runs alternated twice, medians over pooled windows.
    return [Case(10, 2, 128, Plan(warmup=4, window=4, windows=5), repeats=2)]


# ---------------------------------------------------------------------------------------------
# The conventional loop


def run_baseline(root: Path, case: Case, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Time the tutorial loop; returns per-window images/s and the loader settings used."""
    torch.manual_seed(seed)
    # The same class-balanced subset the engine trains on.
    loader = conventional_loader(root, "train", case.batch_size, CIFAR10_MEAN, CIFAR10_STD, device,
                                 subset=case.plan.steps * case.batch_size, seed=seed)
    workers = loader.num_workers
    cuda = device.type == "cuda"
    classes = len(loader.dataset.dataset.classes)
    model = build_model(WRNConfig(depth=case.depth, widen_factor=case.widen_factor, num_classes=classes))
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY)
    if cuda:
        torch.backends.cudnn.benchmark = True  # the tutorial default for fixed-size inputs
    model.train()
    points = []  # (step, images_seen, seconds) every `window` steps
    start = time.perf_counter()
    seen = 0
    loss_value = float("nan")
    for step, (images, labels) in enumerate(loader, start=1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_value = loss.item()  # the usual per-step host sync (progress bars, logging)
        seen += labels.shape[0]
        if step % case.plan.window == 0:
            points.append((step, seen, time.perf_counter() - start))
    rates = rates_from_points(points, steps_per_epoch=len(loader), warmup_steps=case.plan.warmup)
    del model, optimizer, loader
    return {"rates": rates, "num_workers": workers, "pin_memory": cuda, "last_loss": loss_value}


def baseline_loader_rate(root: Path, case: Case, device: torch.device, seed: int = 0) -> float:
    """Images/s of the conventional DataLoader alone (decode, augment, collate, .to(device)); no model."""
    loader = conventional_loader(root, "train", case.batch_size, CIFAR10_MEAN, CIFAR10_STD, device,
                                 subset=case.plan.steps * case.batch_size, seed=seed)
    seen, start = 0, None
    for step, (images, labels) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        if step == case.plan.warmup:  # worker start-up excluded
            _sync(device)
            seen, start = 0, time.perf_counter()
        seen += labels.shape[0]
    _sync(device)
    return seen / (time.perf_counter() - start) if start else float("nan")


def engine_loader_rate(root: Path, case: Case, device: torch.device) -> float:
    """Images/s of the engine's DeviceLoader alone over the same subset (gather-augment-normalize on device)."""
    from wrn_core.data import DeviceLoader, load_dataset

    config = engine_config(root, case, device)
    data = load_dataset(config)
    loader = DeviceLoader(data.train_images.to(device), data.train_labels.to(device), case.batch_size, data.mean,
                          data.std, train=True, augment=True, seed=0, channels_last=device.type == "cuda")
    for _ in loader.epoch(0):  # warm-up (first-use allocations, kernels)
        pass
    _sync(device)
    start, seen = time.perf_counter(), 0
    for epoch in (1, 2):
        for _images, labels in loader.epoch(epoch):
            seen += labels.shape[0]
    _sync(device)
    return seen / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# The engine


def engine_config(root: Path, case: Case, device: torch.device, compile: bool = False) -> TrainConfig:
    """One epoch of exactly plan.steps steps on a class-balanced subset of the folder."""
    return TrainConfig(
        model=WRNConfig(depth=case.depth, widen_factor=case.widen_factor, dropout=0.0),
        dataset="folder",
        data_dir=str(root),
        subset_train=case.plan.steps * case.batch_size,
        subset_test=min(1000, case.batch_size * 4),
        optimizer="sgd-nesterov",
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        schedule="constant",
        epochs=1,
        batch_size=case.batch_size,
        device=device.type,
        compile=compile,
        log_every=case.plan.window,
        eval_batch_size=500,
        seed=0,
    )


@contextlib.contextmanager
def store_writes_disabled():
    """Patch the run store's writes (metrics, status, checkpoint) to no-ops: training without a store."""
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    with mock.patch.object(Run, "append_metrics", noop), mock.patch.object(Run, "write_status", noop), \
            mock.patch.object(Run, "save_checkpoint", noop):
        yield


@contextlib.contextmanager
def store_writes_timed(totals: dict[str, float]):
    """Count the wall seconds spent in the run store's writes (metrics, status, checkpoint) into totals."""
    patches = []
    for name in ("append_metrics", "write_status", "save_checkpoint"):
        original = getattr(Run, name)

        def timed(self: Run, *args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                totals[_name] = totals.get(_name, 0.0) + time.perf_counter() - start

        patches.append(mock.patch.object(Run, name, timed))
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield totals


class _Reader(threading.Thread):
    """What a dashboard does while a run trains: read metrics.jsonl and status.json every second."""

    def __init__(self, run: Run, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.run_dir = run
        self.interval_s = interval_s
        self.stop_event = threading.Event()
        self.polls = 0
        self.records_seen = 0
        self.cpu_seconds = 0.0  # CPU time of this thread's reads

    def run(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            start = time.thread_time()
            self.records_seen = len(self.run_dir.read_metrics())
            self.run_dir.read_status()
            self.cpu_seconds += time.thread_time() - start
            self.polls += 1


def run_engine(
    root: Path,
    case: Case,
    device: torch.device,
    runs_dir: Path,
    name: str,
    compile: bool = False,
    store: bool = True,
    reader: bool = False,
) -> dict[str, Any]:
    """Train one run with train_run; rates from metrics.jsonl (store on) or the progress hook (always)."""
    config = engine_config(root, case, device, compile)
    run = RunStore(runs_dir).create(config, name)
    hook_points: list[tuple[int, int, float]] = []

    def on_progress(p: Progress) -> None:
        # One point per logging interval (train_loss is set only there); cheap, as it is timed.
        if p.phase == "training" and p.train_loss is not None:
            hook_points.append((p.step, p.images_seen, p.elapsed_s))

    watcher = _Reader(run) if reader else None
    store_seconds: dict[str, float] = {}
    wall = time.perf_counter()
    if watcher:
        watcher.start()
    try:
        if store:
            with store_writes_timed(store_seconds):
                status = train_run(run, on_progress=on_progress)
        else:
            with store_writes_disabled():
                status = train_run(run, on_progress=on_progress)
    finally:
        if watcher:
            watcher.stop_event.set()
            watcher.join()
    wall = time.perf_counter() - wall
    if status != "finished":
        message = run.read_status().get("message", "") if store else ""
        error = run.error_path.read_text() if run.error_path.exists() else ""
        raise RuntimeError(f"engine run {name} ended {status}: {message}\n{error}")
    steps_per_epoch = case.plan.steps
    records = run.read_metrics() if store else []
    points = step_points(records) if store else hook_points
    result = {
        "rates": rates_from_points(points, steps_per_epoch, case.plan.warmup),
        "hook_rates": rates_from_points(hook_points, steps_per_epoch, case.plan.warmup),
        "wall_seconds": wall,
        "compile_seconds": next((r.get("seconds") for r in records if r.get("kind") == "event" and r.get("event") == "compile"), None),
        "reader_polls": watcher.polls if watcher else None,
        "reader_cpu_seconds": watcher.cpu_seconds if watcher else None,
        "store_write_seconds": store_seconds if store else None,
        "train_seconds": points[-1][2] if points else None,
    }
    return result


# ---------------------------------------------------------------------------------------------
# Watching overhead


def measure_watch_overhead(root: Path, case: Case, device: torch.device, runs_dir: Path, repeats: int) -> dict[str, Any]:
    """Alternate unwatched / watched runs (A B A B ...); medians of the pooled per-window rates."""
    watched: list[float] = []
    unwatched: list[float] = []
    costs: list[float] = []
    per_run = []
    for i in range(repeats):
        for mode in ("unwatched", "watched"):
            on = mode == "watched"
            result = run_engine(root, case, device, runs_dir, f"watch-{mode}-{i}", store=on, reader=on)
            rates = result["hook_rates"]
            (watched if on else unwatched).extend(rates)
            entry = {"mode": mode, "median_img_s": median(rates), "windows": rates, "reader_polls": result["reader_polls"]}
            if on:
                # Direct accounting, insensitive to other processes: seconds spent writing the store
                # plus the reader thread's CPU seconds, per wall second of the run.
                cost = sum(result["store_write_seconds"].values()) + result["reader_cpu_seconds"]
                entry.update({"store_write_seconds": result["store_write_seconds"],
                              "reader_cpu_seconds": result["reader_cpu_seconds"],
                              "wall_seconds": result["wall_seconds"],
                              "cost_fraction": cost / result["wall_seconds"]})
                costs.append(entry["cost_fraction"])
            per_run.append(entry)
    w, u = median(watched), median(unwatched)
    return {
        "kind": "watch_overhead",
        "model": case.name,
        "device": device.type,
        "batch_size": case.batch_size,
        "watched_img_s": w,
        "unwatched_img_s": u,
        "watch_ratio": (w / u) if w and u else None,
        "watch_ratio_best": (max(watched) / max(unwatched)) if watched and unwatched else None,
        "watch_cost_fraction": max(costs) if costs else None,
        "watch_ratio_accounted": (1.0 - max(costs)) if costs else None,
        "target": 0.97,
        "runs": per_run,
        "method": "watched: train_run with the run store writing and a thread calling read_metrics() and "
                  "read_status() every 1 s; unwatched: Run.append_metrics/write_status/save_checkpoint patched "
                  "to no-ops, no reader. Rates from the progress hook (images between logging intervals / "
                  "training seconds), warm-up dropped, runs alternated, medians over all windows of each mode "
                  "(watch_ratio), and best windows (watch_ratio_best). watch_ratio_accounted = 1 - (seconds in "
                  "store writes, checkpoint and status included, + reader thread CPU seconds) / run wall seconds, "
                  "worst run: a bound that other processes on a shared machine cannot disturb.",
    }


# ---------------------------------------------------------------------------------------------


def _pool(total: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, Any]:
    """Windows of repeated runs pooled into one result (other fields from the latest run)."""
    if total is None:
        return result
    merged = dict(result)
    merged["rates"] = total["rates"] + result["rates"]
    return merged


def _record(case: Case, device: torch.device, env: dict[str, Any], macs: int, engine: dict[str, Any],
            baseline: dict[str, Any] | None, variant: str) -> dict[str, Any]:
    peak, peak_name = peak_for(device)
    engine_img_s = median(engine["rates"])
    baseline_img_s = median(baseline["rates"]) if baseline else None
    record: dict[str, Any] = {
        "kind": "throughput",
        "variant": variant,  # engine (eager) or engine_compiled
        "model": case.name,
        "device": device.type,
        "device_name": env["device_name"],
        "torch": env["torch"],
        "torchvision": env["torchvision"],
        "batch_size": case.batch_size,
        "engine_img_s": engine_img_s,
        "baseline_img_s": baseline_img_s,
        "ratio": (engine_img_s / baseline_img_s) if engine_img_s and baseline_img_s else None,
        "macs_per_image": macs,
        "train_flops_per_image": 6 * macs,
        "mfu": (6 * macs * engine_img_s / peak) if peak and engine_img_s else None,
        "peak_flops": peak,
        "peak_name": peak_name,
        # Best window of each: on a shared machine, the least disturbed estimate of each loop's own speed.
        "engine_best_img_s": max(engine["rates"]) if engine["rates"] else None,
        "baseline_best_img_s": max(baseline["rates"]) if baseline and baseline["rates"] else None,
        "windows": {"engine": engine["rates"], "baseline": baseline["rates"] if baseline else None},
        "window_steps": case.plan.window,
        "warmup_steps": case.plan.warmup,
        "engine_wall_seconds": engine["wall_seconds"],
        "baseline_loader": (
            {"num_workers": baseline["num_workers"], "pin_memory": baseline["pin_memory"], "padding_mode": "reflect"}
            if baseline else None
        ),
    }
    if variant == "engine_compiled":
        record["engine_compiled_img_s"] = engine_img_s
        record["compile_seconds"] = engine["compile_seconds"]
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="JSON file (default bench/results/throughput-<device>[-quick].json)")
    parser.add_argument("--data-dir", help="unpacked CIFAR-10 JPEG folder or the .tar.gz (default: .data/ or ../shared/data/)")
    parser.add_argument("--quick", action="store_true", help="a tiny end-to-end dry run (WRN-10-1, a few steps)")
    parser.add_argument("--suite", choices=("full", "compiled"), default="full",
                        help="compiled: only the compiled engine on WRN-16-8 at batch 512 (CUDA; ~90 s with a cold compile)")
    parser.add_argument("--watch-repeats", type=int, default=None, help="unwatched/watched pairs on the CPU (default 2; 1 with --quick)")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    out = Path(args.out) if args.out else RESULTS_DIR / f"throughput-{device.type}{'-quick' if args.quick else ''}.json"
    root = prepare_image_folder(args.data_dir)
    env = environment(device)
    print(f"throughput on {env['device_name']}, torch {env['torch']}; images from {root}", flush=True)
    records: list[dict[str, Any]] = []
    cases = cases_for(device, args.quick, args.suite)
    with tempfile.TemporaryDirectory(prefix="wrn-bench-runs-") as tmp:
        runs_dir = Path(tmp)
        # Eager engine and baseline for every case first; compiled variants last (their warm-up is long).
        for order, case in enumerate(cases):
            if not case.eager:
                continue
            macs = count_macs(build_model(WRNConfig(depth=case.depth, widen_factor=case.widen_factor)))
            baseline, engine = None, None
            for repeat in range(case.repeats):
                if case.baseline:
                    baseline = _pool(baseline, run_baseline(root, case, device))
                engine = _pool(engine, run_engine(root, case, device, runs_dir, f"engine-{order}-{repeat}"))
            records.append(_record(case, device, env, macs, engine, baseline, "engine"))
            records[-1]["repeats"] = case.repeats
            records[-1]["engine_loader_img_s"] = engine_loader_rate(root, case, device)
            records[-1]["baseline_loader_img_s"] = baseline_loader_rate(root, case, device) if case.baseline else None
            _print_record(records[-1])
            write_json(out, records)
        for order, case in enumerate(cases):
            if not (case.compiled and device.type == "cuda"):
                continue
            macs = count_macs(build_model(WRNConfig(depth=case.depth, widen_factor=case.widen_factor)))
            # Each model compiles from a clean slate: dynamo's dynamic-shape guesses from the last one do not carry over.
            torch._dynamo.reset()
            engine = run_engine(root, case, device, runs_dir, f"engine-compiled-{order}", compile=True)
            eager = next((r for r in records if r["model"] == case.name and r["batch_size"] == case.batch_size), None)
            baseline_stub = None
            if eager is not None and eager["baseline_loader"]:
                baseline_stub = {"rates": eager["windows"]["baseline"], "num_workers": eager["baseline_loader"]["num_workers"],
                                 "pin_memory": eager["baseline_loader"]["pin_memory"]}
            records.append(_record(case, device, env, macs, engine, baseline_stub, "engine_compiled"))
            _print_record(records[-1])
            write_json(out, records)
        if device.type == "cpu":
            repeats = args.watch_repeats if args.watch_repeats is not None else (1 if args.quick else 2)
            watch = measure_watch_overhead(root, cases[0], device, runs_dir, repeats)
            watch.update({"device_name": env["device_name"], "torch": env["torch"]})
            records.append(watch)
            write_json(out, records)
    for record in records:
        record["date"] = env["date"]
    write_json(out, records)
    print()
    print(format_table(records))
    print(f"\nwrote {out}")
    return 0


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_record(record: dict[str, Any]) -> None:
    print(f"  {record['model']} {record['variant']} batch {record['batch_size']}: engine {_fmt(record['engine_img_s'], '.0f')} img/s, "
          f"baseline {_fmt(record['baseline_img_s'], '.0f')} img/s, ratio {_fmt(record['ratio'], '.2f')}", flush=True)


def format_table(records: list[dict[str, Any]]) -> str:
    lines = [f"{'model':<10} {'variant':<16} {'device':<6} {'batch':>5} {'engine img/s':>13} {'baseline img/s':>15} {'ratio':>6} {'MFU':>6}"]
    for r in records:
        if r["kind"] == "throughput":
            lines.append(
                f"{r['model']:<10} {r['variant']:<16} {r['device']:<6} {r['batch_size']:>5} {_fmt(r['engine_img_s'], '.0f'):>13} "
                f"{_fmt(r['baseline_img_s'], '.0f'):>15} {_fmt(r['ratio'], '.2f'):>6} {_fmt(r['mfu'], '.1%'):>6}"
            )
            if r.get("baseline_best_img_s") is not None:
                lines.append(f"{'':<10} best windows: engine {_fmt(r['engine_best_img_s'], '.0f')} img/s, baseline "
                             f"{_fmt(r['baseline_best_img_s'], '.0f')} img/s, ratio {r['engine_best_img_s'] / r['baseline_best_img_s']:.2f}")
            if r.get("engine_loader_img_s") is not None:
                lines.append(f"{'':<10} data path alone: engine DeviceLoader {_fmt(r['engine_loader_img_s'], '.0f')} img/s, "
                             f"conventional DataLoader {_fmt(r.get('baseline_loader_img_s'), '.0f')} img/s")
            if r.get("compile_seconds") is not None:
                lines.append(f"{'':<10} compile warm-up {r['compile_seconds']:.1f} s")
    for r in records:
        if r["kind"] == "watch_overhead":
            lines.append(
                f"watching overhead ({r['model']}, batch {r['batch_size']}): watched {_fmt(r['watched_img_s'], '.0f')} img/s, "
                f"unwatched {_fmt(r['unwatched_img_s'], '.0f')} img/s, ratio {_fmt(r['watch_ratio'], '.3f')} (target >= {r['target']}); "
                f"best windows {_fmt(r['watch_ratio_best'], '.3f')}; accounted (store writes + reader CPU) "
                f"{_fmt(r['watch_ratio_accounted'], '.4f')}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
