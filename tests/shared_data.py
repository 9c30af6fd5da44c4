"""Session-wide access to the real CIFAR-10 JPEG tree from ../shared/data for tests."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from missing import missing

TARBALL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

_unpacked: Path | None = None  # the session's unpacked tree, so it is extracted once


def cifar_jpeg_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked CIFAR-10 JPEG tree (train/<class>/*.jpg, test/<class>/*.jpg), once per session.

    Skips the calling test when the tarball is absent, and fails it under CI=true.
    """
    global _unpacked
    if _unpacked is not None and _unpacked.is_dir():
        return _unpacked
    if not TARBALL.is_file():
        message = f"real CIFAR-10 JPEGs not found: ../shared/data/cifar10-jpeg.tar.gz (looked at {TARBALL})"
        missing(message)
    dest = tmp_path_factory.mktemp("cifar10-jpeg")
    if shutil.which("tar"):
        # GNU tar unpacks the 60,000 files in about a second; tarfile takes several.
        subprocess.run(["tar", "xzf", str(TARBALL), "-C", str(dest)], check=True)
    else:
        with tarfile.open(TARBALL) as archive:
            archive.extractall(dest, filter="data")
    _unpacked = dest
    return dest
