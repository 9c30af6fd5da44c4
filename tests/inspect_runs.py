"""Tiny trained runs for the inspect tests: a synthetic run and a CIFAR-10 JPEG subset as a folder dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

from tiny_runs import tiny_config

from wrn_core.store import Run, RunStore


def trained_run(root: Path, name: str = "tiny", **changes) -> Run:
    """A finished WRN-10-1 run (2 epochs on 320 synthetic images unless changed), trained in this process."""
    from wrn_core.engine.loop import train_run

    run = RunStore(root).create(tiny_config(**changes), name)
    assert train_run(run) == "finished"
    return run


def cifar_subset_folder(source: Path, dest: Path, train_per_class: int = 16, test_per_class: int = 12) -> Path:
    """A small image folder of real CIFAR-10 JPEGs: the first files of each class of the unpacked tree."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted((source / split).iterdir()):
            target = dest / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(class_dir.iterdir())[:count]:
                shutil.copy(path, target / path.name)
    return dest
