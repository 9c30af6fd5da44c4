"""Tests for the optimizers and the learning-rate plan (the paper's step schedule, one-cycle, cosine, warm-up)."""

from __future__ import annotations

import pytest
import torch

from wrn_core.config import TrainConfig
from wrn_core.engine.optim import build_optimizer, lr_factor


def test_step_schedule_follows_the_paper():
    config = TrainConfig(epochs=10, schedule="step")
    factors = [lr_factor(config, epoch * 100, 100) for epoch in range(10)]
    assert factors == pytest.approx([1, 1, 1, 0.2, 0.2, 0.2, 0.04, 0.04, 0.008, 0.008])


def test_onecycle_cosine_constant_and_warmup():
    onecycle = TrainConfig(epochs=4, schedule="onecycle")
    assert lr_factor(onecycle, 0, 100) == pytest.approx(0.04)
    assert lr_factor(onecycle, 100, 100) == pytest.approx(1.0)
    assert lr_factor(onecycle, 399, 100) < 0.01
    cosine = TrainConfig(epochs=4, schedule="cosine", warmup_epochs=1)
    assert lr_factor(cosine, 0, 100) == pytest.approx(0.1)
    assert lr_factor(cosine, 100, 100) == pytest.approx(1.0)
    assert lr_factor(cosine, 250, 100) == pytest.approx(0.5)
    assert lr_factor(TrainConfig(epochs=4, schedule="constant"), 300, 100) == 1.0


@pytest.mark.parametrize("name,cls", [("sgd-nesterov", torch.optim.SGD), ("sgd", torch.optim.SGD),
                                      ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_optimizers(name, cls):
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, TrainConfig(optimizer=name), torch.device("cpu"))
    assert isinstance(optimizer, cls)
    group = optimizer.param_groups[0]
    if name == "sgd-nesterov":
        assert group["nesterov"] and group["momentum"] == 0.9 and group["weight_decay"] == 5e-4 and group["lr"] == 0.1
    if name == "adam":
        assert group["lr"] == 1e-3

