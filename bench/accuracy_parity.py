"""Accuracy parity: the engine (train_run) against the conventional loop, same model, budget, schedule and images.

    python -m bench.accuracy_parity [--device cpu|cuda] [--model WRN-10-2] [--epochs E] [--subset-train N]
                                    [--subset-test M] [--seeds 0,1,2] [--out FILE] [--data-dir DIR]
                                    [--threads T] [--quick]

Each seed trains the same TrainConfig twice on the CIFAR-10 JPEG folder:
- the engine: wrn_core.engine.loop.train_run on a run in a temporary RunStore, as the dashboard and the
  CLI run it (device-resident uint8 images, batched augmentation on the device, channels_last; on
  CUDA also bf16 autocast, torch.compile and a fused optimizer);
- the conventional loop: bench/conventional.py's ImageFolder + PIL transforms + DataLoader (the
  loader bench/throughput.py times), an fp32 NCHW model, F.cross_entropy, torch.optim.SGD with
  Nesterov momentum (not fused) and a LambdaLR driven by wrn_core.engine.optim.lr_factor, stepped per
  batch as the engine steps it.
Both use the config's model, lr, momentum, weight decay, label smoothing, batch size, epochs and
schedule; pad-4 reflect random crop + horizontal flip; drop_last (so both see epochs x
(N // batch) x batch training images, reported); torch.manual_seed(seed) before building the model;
the class-balanced subsets wrn_core.data.balanced_subset draws for that seed, checked to be the same
images (every label, and the pixels of 64 images per split decoded by ImageFolder against the
engine's tensors); and the engine's normalisation (mean and std of the whole train split, from
wrn_core.data.load_dataset). The two paths cannot draw identical random streams, so accuracies are
compared over seeds: per seed, and as mean ± sample std.

Defaults: on the CPU, WRN-10-2 on a 10,000/2,000 class-balanced subset, 8 epochs, seeds 0,1,2,
one-cycle to lr 0.2, batch 256 (the CLI recipe that reached 82.3% on the full set in 10 epochs);
the target was about 15 minutes on this project's 2-core CPU, but the run recorded in
bench/RESULTS.md took 63 minutes with --threads 1 on a shared machine (load average 3-6). On CUDA, the FAST_GPU preset (WRN-16-8, bf16,
channels_last, compile, batch 512, one-cycle to 0.4, label smoothing 0.1) on the full set, seed 0,
GPU_EPOCHS epochs, against the fp32 conventional loop. --quick: a CPU dry run at tiny sizes.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench.common import RESULTS_DIR, add_threads_argument, environment, prepare_image_folder, write_json
from bench.conventional import conventional_loader, conventional_workers
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.data import load_dataset
from wrn_core.model import build_model
from wrn_core.presets import FAST_GPU, PRESETS
from wrn_core.store import RunStore
from wrn_core.engine.devices import resolve_device
from wrn_core.engine.loop import train_run
from wrn_core.engine.optim import lr_factor

# The bar: the engine may not fall more than half a point below the conventional loop (mean over seeds).
THRESHOLD = 0.005
# Epochs of the CUDA comparison, chosen to fit about 3 minutes for both paths together on an H100:
# an estimate, not yet measured (no GPU figures exist): conventional fp32 loop ~6k img/s bounded by
# 8 DataLoader workers (~9 s per 50,000-image epoch), the compiled bf16 engine ~3 s per epoch plus
# ~60 s of compile warm-up. The JSON is rewritten after every path, so a timeout keeps what finished.
GPU_EPOCHS = 10
PIXEL_CHECKS = 64  # images per split whose ImageFolder decode is compared with the engine's tensor


@dataclass(frozen=True)
class ParitySetup:
    """What one comparison trains: the engine's config (seed replaced per run), the seeds, the conventional loader."""

    config: TrainConfig
    seeds: tuple[int, ...]
    num_workers: int  # DataLoader worker processes of the conventional loop
    pin_memory: bool

    def config_for(self, seed: int) -> TrainConfig:
        return self.config.replace(seed=seed)


def parse_model(name: str) -> WRNConfig:
    """'WRN-16-8' -> WRNConfig(depth=16, widen_factor=8, dropout=0)."""
    match = re.fullmatch(r"WRN-(\d+)-(\d+)", name.strip(), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"model must look like WRN-<depth>-<k>, e.g. WRN-10-2; got {name!r}")
    return WRNConfig(depth=int(match.group(1)), widen_factor=int(match.group(2)), dropout=0.0)


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); seeds are distinct non-negative integers."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"seeds must be comma-separated integers, e.g. 0,1,2; got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers; got {text!r}")
    return seeds


def parity_setup(
    root: Path,
    device: str,
    *,
    model: WRNConfig | None = None,
    epochs: int | None = None,
    subset_train: int | None = None,
    subset_test: int | None = None,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
) -> ParitySetup:
    """The comparison for a device type ("cpu" or "cuda"); None keeps a default, a subset of 0 means the whole split."""
    if quick:
        config = TrainConfig(
            model=WRNConfig(depth=10, widen_factor=1, dropout=0.0), dataset="folder", data_dir=str(root),
            subset_train=384, subset_test=128, optimizer="sgd-nesterov", lr=0.1, schedule="onecycle",
            epochs=1, batch_size=64, eval_batch_size=128, log_every=2, device=device,
        )
        default_seeds: tuple[int, ...] = (0,)
    elif device == "cuda":
        # The Fast GPU preset as is (bf16 autocast, channels_last, compile), on the whole folder.
        config = PRESETS[FAST_GPU].replace(dataset="folder", data_dir=str(root), device="cuda", epochs=GPU_EPOCHS,
                                           subset_train=None, subset_test=None)
        default_seeds = (0,)
    else:
        config = TrainConfig(
            model=WRNConfig(depth=10, widen_factor=2, dropout=0.0), dataset="folder", data_dir=str(root),
            subset_train=10_000, subset_test=2_000, optimizer="sgd-nesterov", lr=0.2, schedule="onecycle",
            epochs=8, batch_size=256, eval_batch_size=500, log_every=10, device=device,
        )
        default_seeds = (0, 1, 2)
    changes: dict[str, Any] = {}
    if model is not None:
        changes["model"] = model
    if epochs is not None:
        changes["epochs"] = epochs
    if subset_train is not None:
        changes["subset_train"] = subset_train or None
    if subset_test is not None:
        changes["subset_test"] = subset_test or None
    config = config.replace(**changes)
    if config.optimizer != "sgd-nesterov":
        raise ValueError(f"the conventional loop here is SGD with Nesterov momentum; the config asks for {config.optimizer}")
    torch_device = torch.device(device)
    return ParitySetup(config=config, seeds=tuple(seeds) if seeds else default_seeds,
                       num_workers=conventional_workers(torch_device), pin_memory=torch_device.type == "cuda")


# ---------------------------------------------------------------------------------------------
# The same images


def check_same_images(loader: DataLoader, images: torch.Tensor, labels: torch.Tensor, pixel_checks: int = PIXEL_CHECKS) -> dict[str, Any]:
    """Check that the conventional loader's j-th image is the engine's j-th: every label, and the pixels of some.

    images: the engine's uint8 (N, C, H, W) split after its subset; labels int64 (N,). The pixels
    are decoded by the ImageFolder's own loader (PIL, RGB) at `pixel_checks` evenly spread
    positions. Raises ValueError on any difference (a different file order or subset).
    """
    subset = loader.dataset
    folder = subset.dataset
    targets = torch.tensor([folder.targets[i] for i in subset.indices], dtype=torch.int64)
    if targets.shape != labels.shape or not torch.equal(targets, labels.cpu()):
        raise ValueError(f"the conventional loader's labels differ from the engine's ({len(targets)} vs {len(labels)} images)")
    count = len(subset.indices)
    positions = sorted({round(j * (count - 1) / max(1, pixel_checks - 1)) for j in range(min(pixel_checks, count))})
    for j in positions:
        path, _ = folder.samples[subset.indices[j]]
        pixels = torch.from_numpy(np.array(folder.loader(path), dtype=np.uint8)).permute(2, 0, 1)  # (C, H, W)
        if not torch.equal(pixels, images[j]):
            raise ValueError(f"image {j} of the conventional loader ({path}) is not the engine's image {j}")
    return {"images": count, "labels_equal": True, "pixels_checked": len(positions)}


# ---------------------------------------------------------------------------------------------
# The two paths


def run_engine(config: TrainConfig, runs_dir: Path, name: str) -> dict[str, Any]:
    """Train with train_run exactly as the CLI does; per-epoch figures from metrics.jsonl."""
    run = RunStore(runs_dir).create(config, name)
    start = time.perf_counter()
    status = train_run(run)
    wall = time.perf_counter() - start
    records = run.read_metrics()
    if status != "finished":
        raise RuntimeError(f"engine run {name} ended {status}")
    epochs = [
        {"epoch": r["epoch"], "train_loss": r["train_loss"], "train_acc": r["train_acc"], "test_loss": r["test_loss"],
         "test_acc": r["test_acc"], "lr": r["lr"], "time": r["time"]}
        for r in records if r.get("kind") == "epoch"
    ]
    last = next(r for r in reversed(records) if r.get("kind") == "epoch")
    # The compile warm-up of the training graph ("compile"; evaluation runs eagerly).
    compile_seconds = sum(r.get("seconds") or 0.0 for r in records if r.get("kind") == "event" and str(r.get("event", "")).startswith("compile"))
    return {
        **_accuracies(epochs),
        "wall_seconds": wall,
        "train_seconds": last["time"],  # training + evaluation seconds, excluding data loading
        "compile_seconds": compile_seconds if config.compile else None,
        "images_seen": int(last["images_seen"]),
        "steps": int(last["step"]),
        "epochs": epochs,
    }


def run_conventional(
    config: TrainConfig,
    root: Path,
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    num_workers: int,
    check: Callable[[DataLoader, DataLoader], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train the config the tutorial way (fp32, NCHW, DataLoader); per-epoch figures.

    check(train_loader, test_loader), if given, runs before training and outside the timing.
    """
    if config.optimizer != "sgd-nesterov":
        raise ValueError(f"the conventional loop here is SGD with Nesterov momentum, not {config.optimizer}")
    wall_start = time.perf_counter()
    train_loader = conventional_loader(root, "train", config.batch_size, mean, std, device, subset=config.subset_train,
                                       seed=config.seed, num_workers=num_workers)
    test_loader = conventional_loader(root, "test", config.eval_batch_size, mean, std, device, subset=config.subset_test,
                                      seed=config.seed, num_workers=num_workers)
    check_start = time.perf_counter()
    images_check = check(train_loader, test_loader) if check else None
    start = time.perf_counter() - (check_start - wall_start)  # the loaders' folder scans count, the check does not
    classes = len(train_loader.dataset.dataset.classes)
    torch.manual_seed(config.seed)  # as train_run seeds before building its model
    model = build_model(WRNConfig(depth=config.model.depth, widen_factor=config.model.widen_factor,
                                  dropout=config.model.dropout, num_classes=classes)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.effective_lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.effective_weight_decay)
    steps_per_epoch = len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(config, step, steps_per_epoch))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the tutorial default for fixed-size inputs
    epochs, seen, steps = [], 0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        loss_sum, correct, count = 0.0, 0, 0
        for images, labels in train_loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise RuntimeError(f"conventional loop diverged at step {steps + 1} (loss {loss_value})")
            steps += 1
            seen += labels.shape[0]
            loss_sum += loss_value * labels.shape[0]
            correct += int((logits.argmax(dim=1) == labels).sum().item())
            count += labels.shape[0]
        test_loss, test_acc = evaluate(model, test_loader, device)
        epochs.append({"epoch": epoch, "train_loss": loss_sum / max(1, count), "train_acc": correct / max(1, count),
                       "test_loss": test_loss, "test_acc": test_acc, "lr": scheduler.get_last_lr()[0],
                       "time": time.perf_counter() - start})
    wall = time.perf_counter() - start
    return {
        **_accuracies(epochs),
        "wall_seconds": wall,
        "train_seconds": wall,
        "images_seen": seen,
        "steps": steps,
        "epochs": epochs,
        "images_check": images_check,
    }


def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (BatchNorm's running statistics), fp32."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            logits = model(images)
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == labels).sum().item())
            count += labels.shape[0]
    return loss_sum / max(1, count), correct / max(1, count)


def _accuracies(epochs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"final_test_acc": epochs[-1]["test_acc"] if epochs else None,
            "best_test_acc": max((e["test_acc"] for e in epochs), default=None)}


# ---------------------------------------------------------------------------------------------
# One seed, and the summary over seeds


def run_seed(setup: ParitySetup, seed: int, root: Path, device: torch.device, runs_dir: Path,
             on_path_done: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Both paths for one seed; the order alternates with the seed so drifting machine load hits both alike.

    on_path_done(path, result so far) is called after each path ("engine" or "conventional").
    """
    config = setup.config_for(seed)
    data = load_dataset(config)  # what train_run trains on: the subsets, and the normalisation statistics

    def check(train_loader: DataLoader, test_loader: DataLoader) -> dict[str, Any]:
        return {"train": check_same_images(train_loader, data.train_images, data.train_labels),
                "test": check_same_images(test_loader, data.test_images, data.test_labels)}

    result: dict[str, Any] = {"seed": seed, "mean": list(data.mean), "std": list(data.std),
                              "train_images": int(data.train_labels.shape[0]), "test_images": int(data.test_labels.shape[0])}
    order = ("engine", "conventional") if seed % 2 == 0 else ("conventional", "engine")
    for path in order:
        if path == "engine":
            result["engine"] = run_engine(config, runs_dir, f"parity-seed{seed}")
        else:
            result["conventional"] = run_conventional(config, root, device, data.mean, data.std, setup.num_workers, check)
        if on_path_done:
            on_path_done(path, result)
    result["order"] = list(order)
    result["diff_final"] = result["engine"]["final_test_acc"] - result["conventional"]["final_test_acc"]
    result["diff_best"] = result["engine"]["best_test_acc"] - result["conventional"]["best_test_acc"]
    result["images_seen_equal"] = result["engine"]["images_seen"] == result["conventional"]["images_seen"]
    return result


def _stats(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,  # sample std over seeds
            "values": values}


def summarize(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of each path's final/best accuracy and wall time, and of the differences."""
    done = [s for s in seeds if "diff_final" in s]
    summary = {
        f"{path}_{field}": _stats([s[path][key] for s in done])
        for path in ("engine", "conventional")
        for field, key in (("final", "final_test_acc"), ("best", "best_test_acc"), ("wall_seconds", "wall_seconds"))
    }
    summary["diff_final"] = _stats([s["diff_final"] for s in done])
    summary["diff_best"] = _stats([s["diff_best"] for s in done])
    mean = summary["diff_final"]["mean"]
    summary["threshold"] = THRESHOLD
    summary["engine_within_threshold"] = None if mean is None else mean >= -THRESHOLD
    summary["images_seen_equal"] = all(s["images_seen_equal"] for s in done) if done else None
    return summary


# ---------------------------------------------------------------------------------------------


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def _pm(stats: dict[str, Any], signed: bool = False, scale: float = 100.0, spec: str = ".2f") -> str:
    if stats["mean"] is None:
        return "-"
    sign = "+" if signed else ""
    text = format(stats["mean"] * scale, sign + spec)
    if stats["std"] is not None:
        text += " ± " + format(stats["std"] * scale, spec)
    return text


def format_table(payload: dict[str, Any]) -> str:
    """Per seed and mean ± std: test accuracy (%) of each path, final and best, the difference, wall seconds."""
    header = (f"{'seed':<6} {'engine final':>12} {'best':>6} {'conv. final':>11} {'best':>6} {'diff final':>10} "
              f"{'diff best':>9} {'engine s':>9} {'conv. s':>8} {'images seen (engine / conv.)':>29}")
    lines = [header]
    for s in payload["seeds"]:
        if "diff_final" not in s:
            continue
        e, c = s["engine"], s["conventional"]
        lines.append(
            f"{s['seed']:<6} {_pct(e['final_test_acc']):>12} {_pct(e['best_test_acc']):>6} {_pct(c['final_test_acc']):>11} "
            f"{_pct(c['best_test_acc']):>6} {_pct(s['diff_final'], True):>10} {_pct(s['diff_best'], True):>9} "
            f"{e['wall_seconds']:>9.1f} {c['wall_seconds']:>8.1f} {e['images_seen']:>14,} / {c['images_seen']:,}"
        )
    m = payload["summary"]
    lines.append(f"mean ± std over {len(m['diff_final']['values'])} seed(s), test accuracy in %:")
    lines.append(f"  engine final {_pm(m['engine_final'])}, best {_pm(m['engine_best'])}")
    lines.append(f"  conventional final {_pm(m['conventional_final'])}, best {_pm(m['conventional_best'])}")
    lines.append(f"  difference (engine - conventional) final {_pm(m['diff_final'], True)} points, "
                 f"best {_pm(m['diff_best'], True)} points")
    lines.append(f"  wall seconds: engine {_pm(m['engine_wall_seconds'], scale=1, spec='.1f')}, "
                 f"conventional {_pm(m['conventional_wall_seconds'], scale=1, spec='.1f')}")
    if m["engine_within_threshold"] is True:
        lines.append(f"  parity: the engine's mean final accuracy is not more than {THRESHOLD * 100:.1f} points below the conventional loop's")
    elif m["engine_within_threshold"] is False:
        lines.append(f"  NO PARITY: the engine's mean final accuracy is more than {THRESHOLD * 100:.1f} points below the conventional loop's")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accuracy_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available (cpu with --quick)")
    parser.add_argument("--model", type=parse_model, default=None, help="WRN-<depth>-<k> (default WRN-10-2 on cpu, WRN-16-8 on cuda)")
    parser.add_argument("--epochs", type=int, default=None, help=f"default 8 on cpu, {GPU_EPOCHS} on cuda")
    parser.add_argument("--subset-train", type=int, default=None, help="class-balanced training images; 0 = all (default 10000 on cpu, all on cuda)")
    parser.add_argument("--subset-test", type=int, default=None, help="class-balanced test images; 0 = all (default 2000 on cpu, all on cuda)")
    parser.add_argument("--seeds", type=parse_seeds, default=None, help="comma-separated (default 0,1,2 on cpu, 0 on cuda)")
    parser.add_argument("--out", help="JSON file (default bench/results/accuracy-parity-<device>[-quick].json)")
    parser.add_argument("--data-dir", help="unpacked CIFAR-10 JPEG folder or the .tar.gz (default: .data/ or ../shared/data/)")
    parser.add_argument("--quick", action="store_true", help="tiny dry run: WRN-10-1, 384/128 images, 1 epoch, 1 seed")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device_name = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    device = resolve_device(device_name)
    out = Path(args.out) if args.out else RESULTS_DIR / f"accuracy-parity-{device.type}{'-quick' if args.quick else ''}.json"
    root = prepare_image_folder(args.data_dir)
    setup = parity_setup(root, device.type, model=args.model, epochs=args.epochs, subset_train=args.subset_train,
                         subset_test=args.subset_test, seeds=args.seeds, quick=args.quick)
    config = setup.config
    env = environment(device)
    print(f"accuracy parity: {config.model.name}, {config.epochs} epochs, batch {config.batch_size}, "
          f"{config.subset_train or 'all'}/{config.subset_test or 'all'} images, seeds {','.join(map(str, setup.seeds))}, "
          f"compile {config.compile}, on {env['device_name']}, torch {env['torch']}; images from {root}", flush=True)
    payload: dict[str, Any] = {
        "kind": "accuracy_parity",
        "partial": True,
        "quick": args.quick,
        "model": config.model.name,
        "config": config.to_dict(),  # the engine's; "seed" is replaced per run
        "conventional": {
            "data": "torchvision ImageFolder + DataLoader(shuffle, drop_last) + PIL RandomCrop(pad 4, reflect), "
                    "RandomHorizontalFlip, ToTensor, Normalize(engine's mean/std) (bench/conventional.py)",
            "num_workers": setup.num_workers, "pin_memory": setup.pin_memory, "dtype": "float32",
            "memory_format": "NCHW", "optimizer": "torch.optim.SGD(nesterov=True), not fused",
            "schedule": "LambdaLR(wrn_core.engine.optim.lr_factor), stepped per batch",
        },
        "engine": {"dtype": "bfloat16 autocast" if device.type == "cuda" else "float32", "memory_format": "channels_last",
                   "compile": config.compile},
        "seeds": [],
        **env,
    }

    def save(partial: bool) -> None:
        payload["partial"] = partial
        payload["summary"] = summarize(payload["seeds"])
        write_json(out, payload)

    with tempfile.TemporaryDirectory(prefix="wrn-bench-parity-") as tmp:
        for seed in setup.seeds:
            payload["seeds"].append({"seed": seed})

            def on_path_done(path: str, result: dict[str, Any]) -> None:
                payload["seeds"][-1] = result
                save(partial=True)
                r = result[path]
                print(f"  seed {result['seed']} {path:<12}: final {_pct(r['final_test_acc'])}%, best {_pct(r['best_test_acc'])}%, "
                      f"{r['images_seen']:,} images seen, {r['wall_seconds']:.1f} s", flush=True)

            payload["seeds"][-1] = run_seed(setup, seed, root, device, Path(tmp), on_path_done)
            save(partial=True)
    save(partial=False)
    print()
    print(format_table(payload))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
