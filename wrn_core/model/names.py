"""Where a layer of the network sits, from its module path alone (no torch): its group and block, as the layer table names them."""

from __future__ import annotations

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
