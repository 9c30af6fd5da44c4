"""Per-layer, per-block and per-group summaries of a WRN (via torchinfo), totals and memory estimates."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torchinfo
import torchinfo.torchinfo as _torchinfo_impl
from torch import nn

from wrn_core.config import ConfigError, WRNConfig
from wrn_core.model import build_model, count_parameters

from wrn_core.model.memory import FP32_BYTES, MIB
from wrn_core.model.names import GROUP_ORDER, group_and_block
from wrn_core.model.memory import training_memory_mb as _training_memory_mb

LAYER_COLUMNS = (
    "index",
    "group",
    "block",
    "layer",
    "kind",  # the layer's type (conv3x3, batchnorm, ...): the name the summary command's table, CSV and JSON print
    "in_channels",
    "out_channels",
    "stride",
    "output_shape",
    "out_c",
    "out_h",
    "out_w",
    "params",
    "macs",
)


@dataclass(frozen=True)
class ModelTotals:
    """Whole-model numbers for one config at one input resolution (all per image)."""

    name: str  # e.g. "WRN-28-10"
    depth: int  # d = 6N + 4
    blocks: int  # N, blocks per group
    widen_factor: int  # k
    num_classes: int
    image_size: int  # input height = width, pixels
    total_params: int  # exact, equals count_parameters(build_model(config))
    total_macs: int  # multiply-accumulates for one image, as torchinfo counts them
    model_size_mb: float  # fp32 parameters, MiB (params * 4 / 2**20)
    # What autograd keeps for the backward pass of one image, fp32, MiB: see saved_activation_bytes.
    activation_mb_per_image: float


def _check_image_size(image_size: Any) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise ConfigError(f"image size must be an integer, got {image_size!r}")
    if image_size < 8:
        raise ConfigError(f"image size must be >= 8 pixels, got {image_size}")


def _layer_type(module: nn.Module) -> str:
    """A short human name for a leaf module."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        if (kh, kw) == (1, 1):
            return "conv1x1 (projection)"
        return f"conv{kh}x{kw}"
    if isinstance(module, nn.BatchNorm2d):
        return "batchnorm"
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Dropout):
        return "dropout"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
        return "avgpool"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Linear):
        return "linear"
    return type(module).__name__.lower()


def _leaf_layers(model: nn.Module, config: WRNConfig, image_size: int) -> list[Any]:
    """torchinfo's record of every leaf layer for one image, in forward order."""
    try:
        stats = torchinfo.summary(
            model,
            input_size=(1, config.in_channels, image_size, image_size),
            verbose=0,
            depth=10,
            device="cpu",
            mode="eval",  # dropout/BN deterministic; shapes and counts are the same in train mode
            col_names=("output_size", "num_params", "mult_adds"),
        )
        return [info for info in stats.summary_list if info.is_leaf_layer]
    finally:
        # torchinfo keeps the last summary (and so the whole model) in a module global.
        _torchinfo_impl.clear_cached_forward_pass()


def _layer_row(index: int, info: Any, path: str) -> dict[str, Any]:
    """One row of the layer table from torchinfo's record of the layer at `path`."""
    module = info.module
    group, block = group_and_block(path)
    out_size = list(info.output_size)  # [1, C, H, W] or [1, F]
    in_size = list(info.input_size)
    out_c = int(out_size[1])
    out_h, out_w = (int(out_size[2]), int(out_size[3])) if len(out_size) == 4 else (1, 1)
    if isinstance(module, nn.Conv2d):
        in_channels, stride = module.in_channels, int(module.stride[0])
    elif isinstance(module, nn.Linear):
        in_channels, stride = module.in_features, 1
    else:
        in_channels, stride = int(in_size[1]), 1
    shape = f"{out_c}×{out_h}×{out_w}" if len(out_size) == 4 else f"{out_c}"
    return {
        "index": index,
        "group": group,
        "block": block,
        "layer": path,
        "kind": _layer_type(module),
        "in_channels": int(in_channels),
        "out_channels": out_c,
        "stride": stride,
        "output_shape": shape,
        "out_c": out_c,
        "out_h": out_h,
        "out_w": out_w,
        "params": int(info.num_params),
        "macs": int(info.macs),  # batch of 1, so this is per image
    }


@functools.lru_cache(maxsize=32)
def _layer_table_cached(config: WRNConfig, image_size: int) -> pd.DataFrame:
    # A fresh fp32 CPU model: never a (possibly compiled / moved / trained) training model.
    model = build_model(config, initialize=False)  # only shapes and counts are read
    paths = {id(module): name for name, module in model.named_modules()}
    layers = _leaf_layers(model, config, image_size)
    rows = [_layer_row(index, info, paths[id(info.module)]) for index, info in enumerate(layers)]
    table = pd.DataFrame(rows, columns=list(LAYER_COLUMNS))
    table["block"] = table["block"].astype("Int64")  # <NA> for stem and head
    for column in ("index", "in_channels", "out_channels", "stride", "out_c", "out_h", "out_w", "params", "macs"):
        table[column] = table[column].astype("int64")
    expected = count_parameters(model)
    if int(table["params"].sum()) != expected:
        raise RuntimeError(f"layer table has {table['params'].sum()} params, the model {expected}")
    return table


def layer_table(config: WRNConfig, image_size: int = 32) -> pd.DataFrame:
    """One row per leaf layer in forward order (params, MACs per image, output shapes).

    Built by torchinfo on a fresh CPU model with a (1, C, image_size, image_size) input;
    memoized by (config, image_size) and returned as a copy so callers may mutate it.
    """
    _check_image_size(image_size)
    return _layer_table_cached(config, image_size).copy()


def _sorted_groups(names: list[str]) -> list[str]:
    order = {name: position for position, name in enumerate(GROUP_ORDER)}
    return sorted(names, key=lambda name: order.get(name, len(order)))


def group_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per group (stem, group 1-3, head) with widths, output shape, params, MACs and shares (%)."""
    total_params = int(table["params"].sum())
    total_macs = int(table["macs"].sum())
    rows = []
    for group in _sorted_groups(list(table["group"].unique())):
        part = table[table["group"] == group]
        first, last = part.iloc[0], part.iloc[-1]
        params, macs = int(part["params"].sum()), int(part["macs"].sum())
        blocks = part["block"].dropna()
        rows.append(
            {
                "group": group,
                "blocks": int(blocks.nunique()) if len(blocks) else 0,
                "in_channels": int(first["in_channels"]),
                "out_channels": int(last["out_channels"]),
                "width": f"{int(first['in_channels'])} → {int(last['out_channels'])}",
                "output_shape": last["output_shape"],
                "params": params,
                "macs": macs,
                "params_pct": 100.0 * params / total_params if total_params else 0.0,
                "macs_pct": 100.0 * macs / total_macs if total_macs else 0.0,
            }
        )
    return pd.DataFrame(rows)


def block_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, block); the stem and the head are one row each (block <NA>)."""
    rows = []
    for group in _sorted_groups(list(table["group"].unique())):
        part = table[table["group"] == group]
        if part["block"].isna().all():
            chunks = [(pd.NA, part)]
        else:
            chunks = [(block, part[part["block"] == block]) for block in part["block"].dropna().unique()]
        for block, chunk in chunks:
            first, last = chunk.iloc[0], chunk.iloc[-1]
            convs = chunk[chunk["kind"].str.startswith("conv")]
            rows.append(
                {
                    "group": group,
                    "block": block,
                    "in_channels": int(first["in_channels"]),
                    "out_channels": int(last["out_channels"]),
                    "stride": int(convs["stride"].max()) if len(convs) else 1,
                    "projection": bool((chunk["kind"] == "conv1x1 (projection)").any()),
                    "output_shape": last["output_shape"],
                    "params": int(chunk["params"].sum()),
                    "macs": int(chunk["macs"].sum()),
                }
            )
    result = pd.DataFrame(rows)
    result["block"] = result["block"].astype("Int64")
    return result


def saved_activation_bytes(table: pd.DataFrame, in_channels: int, image_size: int) -> int:
    """Bytes autograd saves for backward per image in fp32, from the layer table.

    In this pre-activation net every saved tensor is one of: a BatchNorm input (same size as
    its output), a ReLU output (in place, so it is also the next conv's saved input and,
    in a projection block, the shortcut's), the stem's input image, a dropout mask plus its
    output (the second conv's input), the linear layer's input and the logits. The mask is
    counted at 4 bytes per element as CPU autograd keeps it (CUDA keeps 1 byte: a slight
    over-estimate there). Checked against torch's saved-tensor hooks in tests/test_summary.py.
    """
    elements = table["out_c"] * table["out_h"] * table["out_w"]
    layer_type = table["kind"]
    saved = int(elements[layer_type.isin(["batchnorm", "relu", "dropout", "flatten", "linear"])].sum())
    saved += in_channels * image_size * image_size
    masks = int(elements[layer_type == "dropout"].sum())
    return (saved + masks) * FP32_BYTES


def totals(config: WRNConfig, image_size: int = 32, table: pd.DataFrame | None = None) -> ModelTotals:
    """Whole-model totals; pass the layer table if you already have it."""
    _check_image_size(image_size)
    if table is None:
        table = layer_table(config, image_size)
    params = int(table["params"].sum())
    return ModelTotals(
        name=config.name,
        depth=config.depth,
        blocks=config.blocks,
        widen_factor=config.widen_factor,
        num_classes=config.num_classes,
        image_size=image_size,
        total_params=params,
        total_macs=int(table["macs"].sum()),
        model_size_mb=params * FP32_BYTES / MIB,
        activation_mb_per_image=saved_activation_bytes(table, config.in_channels, image_size) / MIB,
    )


def training_memory_mb(
    totals: ModelTotals, batch_size: int, optimizer: str = "sgd-nesterov", amp: bool = True
) -> dict[str, float]:
    """Predicted peak training GPU memory, MiB, split by what holds it (see memory.training_memory_mb)."""
    return _training_memory_mb(
        totals.total_params, int(round(totals.activation_mb_per_image * MIB)), batch_size, optimizer, amp=amp, cuda=True
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as plain-Python dicts (NA -> None, numpy scalars -> int/float)."""
    return json.loads(frame.to_json(orient="records", force_ascii=False))


def summary_dict(config: WRNConfig, image_size: int = 32) -> dict[str, Any]:
    """Everything about the model as a JSON-serialisable dict (for the CLI's --json and the UI)."""
    table = layer_table(config, image_size)
    total = totals(config, image_size, table)
    return {
        "name": config.name,
        "depth": config.depth,
        "blocks": config.blocks,
        "widen_factor": config.widen_factor,
        "num_classes": config.num_classes,
        "in_channels": config.in_channels,
        "dropout": config.dropout,
        "image_size": image_size,
        "total_params": total.total_params,
        "total_macs": total.total_macs,
        "model_size_mb": total.model_size_mb,
        "activation_mb_per_image": total.activation_mb_per_image,
        "groups": _records(group_table(table)),
        "layers": _records(table),
    }


def _human(count: float) -> str:
    """5243346730 -> '5.24 G'."""
    for divisor, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(count) >= divisor:
            return f"{count / divisor:.2f} {unit}"
    return f"{count:.0f}"


def format_table(table: pd.DataFrame, totals: ModelTotals) -> str:
    """Plain-text layer table for the CLI, followed by total lines."""
    view = table[["index", "layer", "kind", "in_channels", "out_channels", "stride", "output_shape", "params", "macs"]]
    view = view.rename(columns={"in_channels": "in", "out_channels": "out", "output_shape": "output"})
    body = view.to_string(
        index=False,
        formatters={"params": "{:,}".format, "macs": "{:,}".format},
    )
    groups = group_table(table)[["group", "blocks", "width", "output_shape", "params", "macs", "params_pct"]]
    groups = groups.rename(columns={"output_shape": "output", "params_pct": "% params"})
    group_body = groups.to_string(
        index=False,
        formatters={"params": "{:,}".format, "macs": "{:,}".format, "% params": "{:.1f}".format},
    )
    size = totals.image_size
    lines = [
        f"{totals.name} (N={totals.blocks}, k={totals.widen_factor}, {totals.num_classes} classes), "
        f"input {size}×{size}",
        body,
        "",
        "Width by group:",
        group_body,
        "",
        f"Total params: {totals.total_params:,}",
        f"Multiply-accumulates per image: {_human(totals.total_macs)}",
        f"Model size (fp32): {totals.model_size_mb:.1f} MiB",
        f"Saved for backward per image (fp32): {totals.activation_mb_per_image:.1f} MiB",
    ]
    return "\n".join(lines)
