"""What a test needs but the machine lacks: a skip with the reason, and under CI=true a failure (CI must run everything)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def missing(reason: str, module_level: bool = False) -> NoReturn:
    """Skip the calling test (or, with module_level, the module being imported) for `reason`; fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_module(name: str, why: str = "") -> ModuleType:
    """The module, imported; `missing` when it is not installed (pytest.importorskip, but failing under CI=true)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the {name} package is not installed{why}")
