"""Tests for wrn_core.model: shapes, exact parameter counts, structure and initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from wrn_core.config import WRNConfig
from wrn_core.model import BasicBlock, WideResNet, build_model, count_parameters


@pytest.mark.parametrize(
    ("blocks", "k", "classes", "height", "width", "in_channels"),
    [
        (1, 1, 10, 32, 32, 3),
        (2, 2, 100, 32, 32, 3),
        (1, 2, 10, 8, 8, 3),
        (1, 1, 5, 17, 24, 3),  # non-square, odd height
        (1, 1, 10, 28, 28, 1),  # greyscale
    ],
)
def test_forward_output_shape(blocks: int, k: int, classes: int, height: int, width: int, in_channels: int) -> None:
    config = WRNConfig.from_blocks(blocks, k, num_classes=classes, in_channels=in_channels)
    model = build_model(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, height, width))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("depth", "k", "expected"),
    [
        (10, 8, 4_764_634),
        (16, 4, 2_748_890),
        (16, 8, 10_961_370),
        (40, 4, 8_949_210),
        (28, 10, 36_479_194),
    ],
)
def test_exact_parameter_counts(depth: int, k: int, expected: int) -> None:
    assert count_parameters(build_model(WRNConfig(depth=depth, widen_factor=k, num_classes=10))) == expected


def test_stem_has_no_batchnorm_after_it() -> None:
    model = build_model(WRNConfig.from_blocks(1, 1))
    names = [name for name, _ in model.named_children()]
    assert names == ["stem", "group1", "group2", "group3", "head"]
    assert isinstance(model.stem, nn.Conv2d)
    assert model.stem.out_channels == 16 and model.stem.kernel_size == (3, 3)
    # The first block's pre-activation BN is the first BN the stem's output meets.
    first_block = model.group1[0]
    assert isinstance(first_block, BasicBlock)
    assert first_block.bn1.num_features == 16


@pytest.mark.parametrize("k", [1, 2])
def test_group_strides_and_shortcuts(k: int) -> None:
    model = build_model(WRNConfig.from_blocks(2, k))
    for group, stride in zip((model.group1, model.group2, model.group3), (1, 2, 2)):
        first, second = group[0], group[1]
        assert first.conv1.stride == (stride, stride)
        assert first.conv2.stride == (1, 1)
        assert second.conv1.stride == (1, 1)
        assert second.shortcut is None  # same width, stride 1: identity
        if first.shortcut is not None:
            assert first.shortcut.stride == (stride, stride)
            assert first.shortcut.kernel_size == (1, 1)
    # group 1 keeps 16 channels at k=1 and stride 1, so it needs no projection.
    assert (model.group1[0].shortcut is None) == (k == 1)
    assert model.group2[0].shortcut is not None
    assert model.group3[0].shortcut is not None


def test_widths() -> None:
    model = build_model(WRNConfig.from_blocks(1, 2))
    assert model.group1[0].conv2.out_channels == 32
    assert model.group2[0].conv2.out_channels == 64
    assert model.group3[0].conv2.out_channels == 128
    assert model.head.fc.in_features == 128


def test_no_conv_bias_and_zero_linear_bias() -> None:
    model = build_model(WRNConfig.from_blocks(1, 1, num_classes=7))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            assert module.bias is None
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    assert model.head.fc.bias is not None
    assert torch.all(model.head.fc.bias == 0)


def test_conv_init_is_kaiming_fan_in() -> None:
    torch.manual_seed(0)
    model = build_model(WRNConfig.from_blocks(1, 2))
    conv = model.group3[0].conv2  # 128 -> 128, 3x3: 147,456 weights
    fan_in = conv.in_channels * 3 * 3
    std = conv.weight.std().item()
    assert std == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.02)
    assert abs(conv.weight.mean().item()) < 0.05 * math.sqrt(2.0 / fan_in)  # zero-mean normal


def test_dropout_only_when_positive_and_between_convs() -> None:
    plain = build_model(WRNConfig.from_blocks(1, 1, dropout=0.0))
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())

    model = build_model(WRNConfig.from_blocks(1, 1, dropout=0.3))
    block = model.group1[0]
    order = [name for name, _ in block.named_children()]
    assert order.index("relu2") < order.index("dropout") < order.index("conv2")
    assert order.index("conv1") < order.index("dropout")
    assert block.dropout.p == pytest.approx(0.3)

    # Check the call order too: dropout runs after conv1 and before conv2.
    calls: list[str] = []
    for name in ("conv1", "dropout", "conv2"):
        getattr(block, name).register_forward_hook(lambda *_, n=name: calls.append(n))
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert calls[:3] == ["conv1", "dropout", "conv2"]
    assert torch.equal(a, b)  # eval: deterministic

    model.train()
    torch.manual_seed(1)
    with torch.no_grad():
        c, d = model(x), model(x)
    assert not torch.equal(c, d)  # train with p > 0: stochastic


@pytest.mark.parametrize("size", [(7, 32), (32, 7), (4, 4)])
def test_input_smaller_than_8_raises(size: tuple[int, int]) -> None:
    model = build_model(WRNConfig.from_blocks(1, 1))
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.randn(1, 3, *size))


def test_build_model_is_fresh_cpu_fp32() -> None:
    config = WRNConfig.from_blocks(1, 1)
    a, b = build_model(config), build_model(config)
    assert isinstance(a, WideResNet) and a is not b
    assert a.config == config
    parameter = next(a.parameters())
    assert parameter.device.type == "cpu" and parameter.dtype == torch.float32
