"""Width use over training, from a run's width records: per layer and per group, epoch by epoch, as DataFrames."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from wrn_core.model.names import group_of
from wrn_core.store.records import WIDTH, of_kind

LAYER_COLUMNS = ("epoch", "step", "order", "layer", "group", "channels", "dead", "effective", "effective_fraction",
                 "dead_fraction")
GROUP_COLUMNS = ("epoch", "step", "group", "relus", "channels", "dead", "effective", "effective_fraction",
                 "dead_fraction")


def width_records(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The width records, one per measured epoch (the later one wins for a repeated epoch), by epoch."""
    by_epoch = {record["epoch"]: dict(record) for record in of_kind(records, WIDTH)}
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def width_frame(records: Iterable[Any]) -> pd.DataFrame:
    """One row per (measured epoch, ReLU): `order` is the layer's place in forward order, effective_fraction the
    effective width over the allocated channels, dead_fraction the dead channels over them."""
    rows = []
    for record in width_records(records):
        for order, layer in enumerate(record["layers"]):
            channels = layer["channels"]
            rows.append({
                "epoch": record["epoch"], "step": record["step"], "order": order, "layer": layer["layer"],
                "group": group_of(layer["layer"]), "channels": channels, "dead": layer["dead"],
                "effective": float(layer["effective"]), "effective_fraction": float(layer["effective"]) / channels,
                "dead_fraction": layer["dead"] / channels,
            })
    return pd.DataFrame(rows, columns=list(LAYER_COLUMNS))


def group_frame(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (epoch, group), groups in forward order: ReLUs, channels, dead and effective summed; effective_fraction the
    mean over the group's ReLUs of effective ÷ allocated (as the Inspect page's group table), dead_fraction dead ÷ channels."""
    if layers.empty:
        return pd.DataFrame(columns=list(GROUP_COLUMNS))
    order = {group: i for i, group in enumerate(dict.fromkeys(layers.sort_values("order")["group"]))}
    grouped = layers.groupby(["epoch", "group"], sort=False).agg(
        step=("step", "first"), relus=("layer", "size"), channels=("channels", "sum"), dead=("dead", "sum"),
        effective=("effective", "sum"), effective_fraction=("effective_fraction", "mean"),
    ).reset_index()
    grouped["dead_fraction"] = grouped["dead"] / grouped["channels"]
    grouped["_order"] = grouped["group"].map(order)
    return grouped.sort_values(["epoch", "_order"]).drop(columns="_order").reset_index(drop=True)[list(GROUP_COLUMNS)]


def final_group_fractions(records: Iterable[Any]) -> dict[str, float]:
    """The last measured epoch's effective ÷ allocated width per group ({} before the first measurement)."""
    groups = group_frame(width_frame(records))
    if groups.empty:
        return {}
    last = groups[groups["epoch"] == groups["epoch"].max()]
    return dict(zip(last["group"], last["effective_fraction"].astype(float)))


def width_series(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The width records as plain per-epoch rows (`runs show --format json`'s `width`): epoch, step, time, images,
    layers [{layer, channels, dead, effective}] and groups [{group, channels, dead, effective_fraction, dead_fraction}]."""
    out = []
    for record in width_records(records):
        groups = group_frame(width_frame([record]))
        out.append({
            "epoch": record["epoch"], "step": record["step"], "time": record.get("time"), "images": record.get("images"),
            "layers": [dict(layer) for layer in record["layers"]],
            "groups": [{key: _plain(row[key]) for key in ("group", "channels", "dead", "effective_fraction", "dead_fraction")}
                       for row in groups.to_dict("records")],
        })
    return out


def _plain(value: Any) -> Any:
    """numpy scalars as the Python numbers json writes."""
    return value.item() if hasattr(value, "item") else value


def width_csv_frame(records: Iterable[Any], extra: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The width rows for `runs export --format csv --width`: one per (epoch, layer), with `extra` columns repeated."""
    frame = width_frame(records)
    for key, value in (extra or {}).items():
        frame[key] = value
    return frame
