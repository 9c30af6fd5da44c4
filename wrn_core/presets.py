"""Named training recipes shared by the dashboard, the CLI and the benchmarks."""

from __future__ import annotations

from wrn_core.config import TrainConfig, WRNConfig

PAPER = "Paper: WRN-16-8, SGD-Nesterov, step schedule"
SEED_ARTICLE = "Seed article: N=1, k=8, Adam"
QUICK_CPU = "Quick CPU demo"
FAST_GPU = "Fast GPU: WRN-16-8 to 94% on CIFAR-10"

PRESETS: dict[str, TrainConfig] = {
    # Zagoruyko & Komodakis (2016): SGD with Nesterov momentum 0.9, lr 0.1 divided by 5 at
    # 30%, 60% and 80% of 200 epochs, weight decay 5e-4, batch 128, dropout 0.3.
    PAPER: TrainConfig(
        model=WRNConfig(depth=16, widen_factor=8, dropout=0.3),
        dataset="cifar10",
        optimizer="sgd-nesterov",
        lr=0.1,
        weight_decay=5e-4,
        schedule="step",
        epochs=200,
        batch_size=128,
    ),
    # The article this project grew from: one block per group, k=8, Adam at its default lr.
    SEED_ARTICLE: TrainConfig(
        model=WRNConfig(depth=10, widen_factor=8, dropout=0.0),
        dataset="cifar10",
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        schedule="constant",
        epochs=20,
        batch_size=128,
    ),
    # Runs anywhere in well under a minute (about 30 s on 2 CPU cores): a WRN-10-1 on the built-in
    # synthetic images, long enough to watch the four curves move; first points within seconds.
    QUICK_CPU: TrainConfig(
        model=WRNConfig(depth=10, widen_factor=1, dropout=0.0),
        dataset="synthetic",
        synthetic_train=3000,
        synthetic_test=500,
        optimizer="sgd-nesterov",
        lr=0.1,
        schedule="onecycle",
        epochs=8,
        batch_size=64,
        log_every=5,
        eval_batch_size=250,
    ),
    # The time-to-accuracy recipe (bench/time_to_accuracy.py): large batches, one-cycle,
    # label smoothing, bf16 + channels_last + torch.compile on a CUDA GPU.
    FAST_GPU: TrainConfig(
        model=WRNConfig(depth=16, widen_factor=8, dropout=0.0),
        dataset="cifar10",
        optimizer="sgd-nesterov",
        lr=0.4,
        weight_decay=5e-4,
        schedule="onecycle",
        epochs=30,
        batch_size=512,
        label_smoothing=0.1,
        device="cuda",
        compile=True,
        log_every=20,
        eval_batch_size=1000,
    ),
}

DEFAULT_PRESET = QUICK_CPU

# Short keys for the command line: `python -m wrn_core train --preset quick-cpu`.
PRESET_KEYS: dict[str, str] = {
    "paper": PAPER,
    "seed-article": SEED_ARTICLE,
    "quick-cpu": QUICK_CPU,
    "fast-gpu": FAST_GPU,
}
