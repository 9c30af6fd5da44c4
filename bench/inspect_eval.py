"""Inspect costs: evaluation images/s against the engine's own evaluation, with and without width use, and the
Inspect page's first render for a finished run whose evaluation is cached.

    python -m bench.inspect_eval [--device cpu|cuda] [--depth 16 --widen-factor 4] [--images N] [--threads T]
                                 [--skip-page] [--out FILE.json]

Evaluation: one random-weight WRN on N synthetic test images (device-resident uint8, the run's eval batch);
the same network timed three ways, interleaved A B C A B C over --repeats rounds after one warm-up each:
  engine:   wrn_core.engine.step.loss_and_accuracy (what every epoch of training runs),
  plain:    wrn_core.inspect.evaluate_network(width_use=False) (predictions, confusions, calibration),
  width:    evaluate_network(width_use=True) (the forward hooks on every ReLU as well).
Targets: width use costs <= 20% (width_overhead = plain rate / width rate - 1).

First render: like bench.ui_latency, in a fresh process each time (streamlit, torch and the project imported
before the clock starts): AppTest runs the app frame, then the clock times switching to the Inspect page for a
finished WRN-10-2 run with a cached evaluation of 10,000 test images (predictions included). Target <= 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.common import RESULTS_DIR, add_threads_argument, environment, write_json
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.data import DeviceLoader, make_synthetic
from wrn_core.engine.devices import resolve_device
from wrn_core.inspect import Network, evaluate_network
from wrn_core.model import build_model


def _network(config: TrainConfig, data) -> Network:
    return Network(run="bench", config=config, model=build_model(config.model).eval(), epoch=0, step=0,
                   batch_in_epoch=0, classes=list(data.classes), mean=data.mean, std=data.std,
                   image_shape=data.image_shape)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluation_rates(device: torch.device, depth: int, widen_factor: int, images: int, batch: int,
                     repeats: int) -> dict[str, list[float]]:
    """Images/s of the engine's evaluate, the inspect evaluation without and with width use, per round."""
    from wrn_core.engine.step import loss_and_accuracy

    data = make_synthetic(64, images, seed=0)
    config = TrainConfig(model=WRNConfig(depth=depth, widen_factor=widen_factor), dataset="synthetic",
                         synthetic_train=64, synthetic_test=images, eval_batch_size=batch, device=device.type)
    network = _network(config, data)
    channels_last = device.type in ("cuda", "cpu")
    engine_model = build_model(config.model).to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    engine_model.load_state_dict(network.model.state_dict())
    loader = DeviceLoader(data.test_images.to(device), data.test_labels.to(device), batch, data.mean, data.std,
                          train=False, augment=False, channels_last=channels_last)

    def engine() -> None:
        loss_and_accuracy(engine_model, loader, device)

    def inspect(width: bool):
        return lambda: evaluate_network(network, data, "test", "none", device, width_use=width)

    modes = {"engine": engine, "plain": inspect(False), "width": inspect(True)}
    for run in modes.values():  # warm-up: cuDNN autotuning, allocator, first-call costs
        run()
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode, run in modes.items():
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            rates[mode].append(images / (time.perf_counter() - start))
    return rates


_FIRST_RENDER = """
import sys, time
from pathlib import Path
import torch, streamlit, plotly  # imported before the clock, as bench.ui_latency excludes torch
from streamlit.testing.v1 import AppTest
import wrn_core.inspect, wrn_core.plots.inspect, wrn_core.analysis.checkpoint_health
root = Path(sys.argv[1])
at = AppTest.from_file(str(root / "dashboard" / "app.py"), default_timeout=120).run()
start = time.perf_counter()
at.switch_page("../pages/5_inspect.py").run()
seconds = time.perf_counter() - start
assert not at.exception, [e.value for e in at.exception]
assert [m.label for m in at.metric][:1] == ["test accuracy"], "the page did not draw its headline"
print(seconds)
"""


def _finished_run_with_cache(runs: Path, test_images: int) -> None:
    """A finished WRN-10-2 synthetic run (random weights, one checkpoint) with its evaluation cached."""
    from wrn_core.inspect import evaluate_run
    from wrn_core.store import RunStore
    from wrn_core.store.records import FINISHED

    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=2), dataset="synthetic", synthetic_train=64,
                         synthetic_test=test_images, epochs=1, device="cpu")
    run = RunStore(runs).create(config, "finished")
    data = make_synthetic(64, test_images, seed=config.seed)
    config = config.replace(model=WRNConfig(depth=10, widen_factor=2, num_classes=data.num_classes))
    run.save_checkpoint({"model": build_model(config.model).state_dict(), "step": 1, "epoch": 1,
                         "config": config.to_dict()})
    run.write_status(FINISHED, "done", epoch=1, epochs=1)
    evaluate_run(run, device="cpu")  # writes evaluation-test-none.json


def first_render_seconds(repeats: int, test_images: int) -> list[float]:
    import os

    root = Path(__file__).resolve().parent.parent
    times = []
    with tempfile.TemporaryDirectory() as folder:
        _finished_run_with_cache(Path(folder), test_images)
        env = {**os.environ, "WRN_RUNS_DIR": folder, "PYTHONPATH": str(root)}
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-c", _FIRST_RENDER, str(root)], capture_output=True, text=True,
                                 check=True, env=env, cwd=root)
            times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inspect_eval")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--widen-factor", type=int, default=4)
    parser.add_argument("--images", type=int, default=1000, help="synthetic test images evaluated per timing")
    parser.add_argument("--batch", type=int, default=500, help="evaluation batch (TrainConfig.eval_batch_size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--render-repeats", type=int, default=3)
    parser.add_argument("--render-images", type=int, default=10_000, help="test images in the cached evaluation")
    parser.add_argument("--skip-page", action="store_true", help="only the evaluation rates (no streamlit needed)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "inspect-eval.json"))
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    rates = evaluation_rates(device, args.depth, args.widen_factor, args.images, args.batch, args.repeats)
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    result = {
        "environment": environment(device),
        "model": f"WRN-{args.depth}-{args.widen_factor}", "images": args.images, "batch": args.batch,
        "images_per_s": median, "windows_images_per_s": rates,
        "plain_vs_engine": median["plain"] / median["engine"],
        "width_overhead": median["plain"] / median["width"] - 1,
    }
    print(f"{result['model']} on {device.type}, {args.images:,} images: engine {median['engine']:.0f} img/s, "
          f"inspect {median['plain']:.0f} img/s ({result['plain_vs_engine']:.2f}x), with width use "
          f"{median['width']:.0f} img/s (width use costs {result['width_overhead']:+.1%}; target <= 20%)")
    write_json(args.out, result)
    if not args.skip_page:
        render = first_render_seconds(args.render_repeats, args.render_images)
        result.update(first_render_s=statistics.median(render), first_render_windows_s=render,
                      first_render_images=args.render_images)
        print(f"Inspect page first render, cached evaluation of {args.render_images:,} images "
              f"(median of {args.render_repeats}): {result['first_render_s']:.3f} s (target <= 1 s)")
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
