"""Wide Residual Network (WRN-d-k) exactly as the paper's official code builds it."""

from __future__ import annotations

import torch
from torch import nn

from wrn_core.config import WRNConfig


class BasicBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 plus shortcut.

    Where width or stride changes, the first BN-ReLU feeds both the conv path and a
    1x1 projection shortcut; otherwise the shortcut is the raw input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.relu1(self.bn1(x))
        y = self.conv1(o)
        y = self.relu2(self.bn2(y))
        if self.dropout is not None:
            y = self.dropout(y)
        y = self.conv2(y)
        if self.shortcut is not None:
            return y + self.shortcut(o)
        return y + x


class Head(nn.Module):
    """BN-ReLU, global average pool, linear classifier."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


class WideResNet(nn.Module):
    """WRN-d-k: 3x3 stem conv to 16 channels, three groups of N blocks (16k, 32k, 64k wide;
    strides 1, 2, 2), then the head. Input (B, C, H, W) with H, W >= 8; output (B, classes)."""

    def __init__(self, config: WRNConfig, initialize: bool = True) -> None:
        super().__init__()
        self.config = config
        stem_width, *group_widths = config.widths
        # No BN/ReLU after the stem: the first block's pre-activation provides it.
        self.stem = nn.Conv2d(config.in_channels, stem_width, 3, padding=1, bias=False)
        in_channels = stem_width
        groups = []
        for group_width, group_stride in zip(group_widths, (1, 2, 2)):
            blocks = []
            for index in range(config.blocks):
                stride = group_stride if index == 0 else 1
                blocks.append(BasicBlock(in_channels, group_width, stride, config.dropout))
                in_channels = group_width
            groups.append(nn.Sequential(*blocks))
        self.group1, self.group2, self.group3 = groups
        self.head = Head(in_channels, config.num_classes)
        if initialize:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 8 or x.shape[-2] < 8:
            raise ValueError(f"input must be at least 8x8 pixels, got {tuple(x.shape[-2:])}")
        x = self.stem(x)
        x = self.group1(x)
        x = self.group2(x)
        x = self.group3(x)
        return self.head(x)


def build_model(config: WRNConfig, initialize: bool = True) -> WideResNet:
    """A fresh WRN for the config (on the CPU, in fp32).

    initialize=False keeps PyTorch's default layer init and skips the paper's re-init: half the
    build time for WRN-28-10, for callers that only count (the layer table), never train.
    """
    return WideResNet(config, initialize=initialize)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
