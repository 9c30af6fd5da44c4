"""Where a layer of the network sits, from its module path alone (no torch): its group and block, as the layer table
names them; and width use summed by group."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

GROUP_ORDER = ("stem", "group 1", "group 2", "group 3", "head")  # forward order


def group_and_block(path: str) -> tuple[str, int | None]:
    """'group2.0.conv1' -> ('group 2', 1); 'stem' -> ('stem', None); 'head.fc' -> ('head', None)."""
    top, *rest = path.split(".")
    if top.startswith("group") and top[5:].isdigit():
        return f"group {top[5:]}", int(rest[0]) + 1
    return top, None


def group_of(path: str) -> str:
    """'group2.0.relu1' -> 'group 2', 'head.relu' -> 'head': the layer table's group names."""
    return group_and_block(path)[0]


def width_by_group(layers: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Width use per group, in forward order, of per-ReLU rows {layer, channels, dead, effective}: ReLUs, channels,
    dead and effective summed, effective_fraction the mean over the group's ReLUs of effective ÷ allocated (as the
    Inspect page's group table), dead_fraction dead ÷ channels. Plain Python: the health check reads it every refresh."""
    groups: dict[str, dict[str, Any]] = {}
    for layer in layers:
        group = groups.setdefault(group_of(layer["layer"]), {"group": group_of(layer["layer"]), "relus": 0, "channels": 0,
                                                               "dead": 0, "effective": 0.0, "effective_fraction": 0.0})
        group["relus"] += 1
        group["channels"] += layer["channels"]
        group["dead"] += layer["dead"]
        group["effective"] += float(layer["effective"])
        group["effective_fraction"] += float(layer["effective"]) / layer["channels"]
    for group in groups.values():
        group["effective_fraction"] /= group["relus"]
        group["dead_fraction"] = group["dead"] / group["channels"]
    return list(groups.values())
