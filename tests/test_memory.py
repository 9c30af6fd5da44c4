"""Tests for the closed-form parameter and activation counts and the memory pre-flight."""

from __future__ import annotations

import pytest

from wrn_core.config import ConfigError, TrainConfig, WRNConfig
from wrn_core.engine.devices import MemoryCheck, check_memory
from wrn_core.model.memory import parameter_count, saved_activation_bytes, training_memory_mb
from wrn_core.model import build_model, count_parameters
from wrn_core.model.tables import layer_table
from wrn_core.model.tables import saved_activation_bytes as from_layer_table


@pytest.mark.parametrize("depth,k,dropout,classes,size", [
    (10, 1, 0.0, 10, 32), (16, 8, 0.3, 10, 32), (28, 10, 0.0, 10, 32), (40, 4, 0.3, 100, 32), (16, 2, 0.0, 100, 24),
])
def test_closed_form_counts_match_the_model_and_torchinfo(depth, k, dropout, classes, size):
    config = WRNConfig(depth=depth, widen_factor=k, dropout=dropout, num_classes=classes)
    assert parameter_count(config) == count_parameters(build_model(config))
    assert saved_activation_bytes(config, size) == from_layer_table(layer_table(config, size), 3, size)


def test_paper_parameter_counts():
    assert parameter_count(WRNConfig(depth=28, widen_factor=10)) == 36_479_194
    assert parameter_count(WRNConfig(depth=16, widen_factor=8)) == 10_961_370


def test_training_memory_parts():
    parts = training_memory_mb(1_000_000, 1_000_000, 128, "adam", amp=False, cuda=False)
    model = 1_000_000 * 4 / 2**20
    assert parts["weights"] == parts["gradients"] == pytest.approx(model)
    assert parts["optimizer_state"] == pytest.approx(2 * model)  # Adam keeps two moments
    assert parts["activations"] == pytest.approx(128 * 1_000_000 / 2**20)
    assert parts["total"] == pytest.approx(1.1 * (4 * model + parts["activations"]))
    assert training_memory_mb(1_000_000, 1_000_000, 128, cuda=True)["workspace"] > 500  # the CUDA context
    with pytest.raises(ConfigError):
        training_memory_mb(1, 1, 0)


def test_the_cpu_preflight_compares_with_available_ram():
    small = check_memory(TrainConfig(model=WRNConfig(depth=10, widen_factor=1), batch_size=32, device="cpu"))
    assert small.device == "cpu" and small.fits and small.free_mb > 0
    huge = check_memory(TrainConfig(model=WRNConfig(depth=40, widen_factor=16), batch_size=100_000, device="cpu"))
    assert not huge.fits
    assert huge.message().startswith("predicted training memory ") and "MiB free on RAM" in huge.message()
    assert MemoryCheck("mps", 10.0, None, False).fits  # unknown free memory never refuses


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("dropout,optimizer", [(0.0, "sgd-nesterov"), (0.3, "adam")])
def test_predicted_parts_match_the_bytes_one_real_cpu_step_holds(dropout, optimizer):
    """Weights, gradients and optimizer state as counted after a real step; activations as autograd saves them."""
    import torch
    import torch.nn.functional as F

    from wrn_core.engine.optim import build_optimizer

    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=2, dropout=dropout), optimizer=optimizer,
                         batch_size=4, device="cpu")
    model = build_model(config.model).train()
    opt = build_optimizer(model, config, torch.device("cpu"))
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}  # storage address -> bytes: a tensor saved by two nodes is held once

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:  # conv and linear layers save their weights too
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    torch.manual_seed(0)
    images, labels = torch.randn(config.batch_size, 3, 32, 32), torch.randint(0, 10, (config.batch_size,))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = F.cross_entropy(model(images), labels)
    loss.backward()
    opt.step()

    parts = training_memory_mb(parameter_count(config.model), saved_activation_bytes(config.model, 32),
                               config.batch_size, optimizer, amp=False, cuda=False)
    mib = 2**20
    assert _tensor_bytes(model.parameters()) / mib == pytest.approx(parts["weights"], rel=1e-9)
    assert _tensor_bytes(p.grad for p in model.parameters()) / mib == pytest.approx(parts["gradients"], rel=1e-9)
    state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    assert _tensor_bytes(state) / mib == pytest.approx(parts["optimizer_state"], rel=1e-3)  # Adam's step counters: a few bytes
    assert sum(saved.values()) / mib == pytest.approx(parts["activations"], rel=0.02)
    measured = _tensor_bytes(model.parameters()) * 2 + _tensor_bytes(state) + sum(saved.values())
    assert parts["total"] * mib >= measured
