"""The commands that describe or fetch, without training: summary, presets, devices, download."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from wrn_core.cli.flags import FORMATS, add_model_flags, model_config_from_args
from wrn_core.config import ConfigError


def add_summary(sub: argparse._SubParsersAction) -> None:
    summary = sub.add_parser("summary", help="per-layer table: widths, shapes, parameters, multiply-accumulates")
    add_model_flags(summary, required=True)
    summary.add_argument("--num-classes", type=int, default=10)
    summary.add_argument("--image-size", type=int, default=32, help="input height and width in pixels (>= 8)")
    summary.add_argument("--format", choices=FORMATS, default="table")


def add_download(sub: argparse._SubParsersAction) -> None:
    download = sub.add_parser("download", help="download CIFAR-10/100 through torchvision")
    download.add_argument("dataset", choices=("cifar10", "cifar100"))
    download.add_argument("--data-dir", default="data")


def add_presets(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("presets", help="list the named training recipes")


def add_devices(sub: argparse._SubParsersAction) -> None:
    devices = sub.add_parser("devices", help="list the devices this machine can train on")
    devices.add_argument("--format", choices=("table", "json"), default="table")


def cmd_summary(args: argparse.Namespace) -> int:
    """The model's per-layer table (widths, shapes, parameters, MACs) as a table, CSV or JSON."""
    from wrn_core.model import tables

    config = model_config_from_args(args, num_classes=args.num_classes)
    if args.image_size < 8:
        raise ConfigError(f"image size must be >= 8 pixels, got {args.image_size}")
    if args.format == "json":
        print(json.dumps(tables.summary_dict(config, image_size=args.image_size), indent=2))
        return 0
    table = tables.layer_table(config, image_size=args.image_size)
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
        return 0
    print(tables.format_table(table, tables.totals(config, image_size=args.image_size, table=table)))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Download CIFAR-10/100 into --data-dir; prints where it is."""
    from wrn_core.data import download_cifar

    path = download_cifar(args.dataset, args.data_dir)
    print(path)
    return 0


def cmd_presets(args: argparse.Namespace) -> int:  # noqa: ARG001
    """One line per named recipe: its key, title and what it trains."""
    from wrn_core.presets import PRESET_KEYS, PRESETS

    for key, title in PRESET_KEYS.items():
        config = PRESETS[title]
        print(f"{key:14s} {title}: {config.model.name}, {config.dataset}, {config.optimizer}, "
              f"{config.schedule}, {config.epochs} epochs, batch {config.batch_size}")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    """The devices this machine can train on, as labels or JSON."""
    from wrn_core.engine.devices import list_devices, unusable_gpu_reason

    found = list_devices()
    unusable = unusable_gpu_reason()
    if unusable:
        print(f"warning: {unusable}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([dataclasses.asdict(d) for d in found], indent=2))
        return 0
    for device in found:
        print(device.label())
    return 0
