"""Tests for the devices: resolving a device choice."""

from __future__ import annotations

import pytest
import torch

from wrn_core.config import ConfigError
from wrn_core.engine.devices import resolve_device


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")

