"""The network and what can be known of it without training: layer table, multiply-accumulates, memory.

`build_model(config)` is the public way to get a Wide ResNet. The network (and torch) is imported on first
use, so the closed-form `flops` and `memory` modules stay importable without torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BasicBlock", "WideResNet", "build_model", "count_parameters"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from wrn_core.model import network

        return getattr(network, name)
    raise AttributeError(f"module 'wrn_core.model' has no attribute {name!r}")
