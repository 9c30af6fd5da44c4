"""Width use over training, from a run's width records: per layer and per group, epoch by epoch, as DataFrames."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from wrn_core.model.names import group_of, width_by_group
from wrn_core.store.records import WIDTH, of_kind

LAYER_COLUMNS = ("epoch", "step", "order", "layer", "group", "channels", "dead", "effective", "effective_fraction",
                 "dead_fraction")
# The Sweep page's end-of-training width metrics: a cells column per group of the network -> the group.
WIDTH_METRICS = {"width_group1": "group 1", "width_group2": "group 2", "width_group3": "group 3"}
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


def record_groups(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One width record's groups in forward order (model.names.width_by_group of its layers)."""
    return width_by_group(record["layers"])


def group_frame(records: Iterable[Any]) -> pd.DataFrame:
    """One row per (measured epoch, group), groups in forward order: record_groups of each width record."""
    rows = [{"epoch": record["epoch"], "step": record["step"], **group}
            for record in width_records(records) for group in record_groups(record)]
    return pd.DataFrame(rows, columns=list(GROUP_COLUMNS))


def final_group_fractions(records: Iterable[Any]) -> dict[str, float]:
    """The last measured epoch's effective ÷ allocated width per group ({} before the first measurement)."""
    measured = width_records(records)
    return {group["group"]: group["effective_fraction"] for group in record_groups(measured[-1])} if measured else {}


def width_metrics(records: Iterable[Any]) -> dict[str, float | None]:
    """WIDTH_METRICS of a run: each group's effective ÷ allocated width at the last measured epoch (None unmeasured)."""
    final = final_group_fractions(records)
    return {column: final.get(group) for column, group in WIDTH_METRICS.items()}


def width_series(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The width records as plain per-epoch rows (`runs show --format json`'s `width`): epoch, step, time, images,
    layers [{layer, channels, dead, effective}] and groups [record_groups]."""
    return [{"epoch": record["epoch"], "step": record["step"], "time": record.get("time"), "images": record.get("images"),
             "layers": [dict(layer) for layer in record["layers"]], "groups": record_groups(record)}
            for record in width_records(records)]
