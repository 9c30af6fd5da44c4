"""A sweep's files in the runs directory: `<name>.sweep.json` (save atomically, load, list, name) and, for a Ray
sweep, `<name>.nodes.json`, the cluster's nodes as its driver last saw them (write, read)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrn_core.config import ConfigError
from wrn_core.store import RunStoreError, validate_run_name
from wrn_core.store.atomic import write_atomic
from wrn_core.sweeps.grid import Sweep

SWEEP_SUFFIX = ".sweep.json"
NODES_SUFFIX = ".nodes.json"
PREDICTED_SUFFIX = ".predicted.json"  # the pre-flight's predicted training seconds per cell, beside the sweep file


def sweep_path(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / f"{validate_run_name(name)}{SWEEP_SUFFIX}"


def save_sweep(root: str | os.PathLike[str], sweep: Sweep) -> Path:
    """Write the sweep file (atomically); RunStoreError if a different sweep of that name exists, RunWriteError
    (one line) when the disk refuses it."""
    path = sweep_path(root, sweep.name)
    if check_same_sweep(root, sweep):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(sweep.to_dict(), indent=2).encode(), f"the sweep file of {sweep.name}")
    return path


def check_same_sweep(root: str | os.PathLike[str], sweep: Sweep) -> bool:
    """True when this sweep is saved already, False when no sweep of its name is; RunStoreError (one line) when a
    different sweep has its name."""
    if not sweep_path(root, sweep.name).exists():
        return False
    existing = load_sweep(root, sweep.name)
    if existing.axes != sweep.axes or existing.base != sweep.base or existing.search != sweep.search:
        raise RunStoreError(
            f"a different sweep named {sweep.name!r} already exists in {root}; "
            f"use `--resume` to continue it or choose another name"
        )
    return True


def save_predicted_seconds(root: str | os.PathLike[str], sweep: Sweep, seconds: dict[str, float]) -> Path:
    """Keep the pre-flight's predicted training seconds per cell (run -> s) beside the sweep file, where a search
    with a minutes budget or the time objective reads them, whichever process drives it; the latest pre-flight
    wins. RunStoreError when a different sweep has the name (nothing is written)."""
    check_same_sweep(root, sweep)
    path = Path(root) / f"{validate_run_name(sweep.name)}{PREDICTED_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({run: float(s) for run, s in seconds.items()}, indent=1).encode(),
                 f"the predicted seconds of {sweep.name}")
    return path


def load_predicted_seconds(root: str | os.PathLike[str] | None, name: str) -> dict[str, float] | None:
    """The predicted seconds per cell the last pre-flight kept, or None (none kept, or unreadable)."""
    if root is None:
        return None
    try:
        data = json.loads((Path(root) / f"{validate_run_name(name)}{PREDICTED_SUFFIX}").read_text(encoding="utf-8"))
        return {str(run): float(s) for run, s in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def load_sweep(root: str | os.PathLike[str], name: str) -> Sweep:
    """The saved sweep; RunStoreError (one line) when it is missing or unreadable."""
    path = sweep_path(root, name)
    try:
        return Sweep.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RunStoreError(f"no sweep named {name!r} in {root}") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise RunStoreError(f"sweep file {path.name} is unreadable ({exc})") from None


def sweep_names(root: str | os.PathLike[str]) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(SWEEP_SUFFIX)] for p in root.glob(f"*{SWEEP_SUFFIX}") if not p.name.startswith("."))


def recent_sweep_names(root: str | os.PathLike[str]) -> list[str]:
    """Saved sweeps, newest first (by the created_at in each file; unreadable files last, by name)."""

    def created(name: str) -> float:
        try:
            return float(json.loads(sweep_path(root, name).read_text(encoding="utf-8")).get("created_at") or 0.0)
        except (OSError, ValueError, TypeError, AttributeError, RunStoreError):
            return float("-inf")

    return sorted(sweep_names(root), key=lambda name: (-created(name), name))


def default_sweep_name(now: float | None = None) -> str:
    """A name for a sweep the user did not name: sweep-<local time>, e.g. sweep-20250101-120000."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))



# ---------------------------------------------------------------------------------------------
# The Ray cluster's nodes, as a Ray sweep's driver sees them: `<name>.nodes.json`
#   {"sweep": name, "written_at": unix s, "nodes": [{"node": Ray's node id, "address": IP, "hostname": str,
#    "cpus": float, "gpus": float, "alive": bool, "last_seen": unix s when the driver last saw it alive, or null}]}
# The driver rewrites it when a node joins or is lost, and every few seconds while it runs: a `written_at`
# that stopped moving is a driver gone.

NODES_REFRESH_S = 5.0  # the driver rewrites the file at least this often while it runs
NODE_FIELDS = ("node", "address", "hostname", "cpus", "gpus", "alive", "last_seen")


@dataclass(frozen=True)
class ClusterNodes:
    """A sweep's nodes file: when its driver wrote it, and one dict per node (NODE_FIELDS)."""

    written_at: float
    nodes: list[dict[str, Any]]


def nodes_path(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / f"{validate_run_name(name)}{NODES_SUFFIX}"


def write_nodes(root: str | os.PathLike[str], name: str, nodes: list[dict[str, Any]], written_at: float) -> None:
    """Replace the sweep's nodes file (atomically) with these nodes; RunWriteError (one line) when it cannot."""
    doc = {"sweep": name, "written_at": written_at, "nodes": [{key: node.get(key) for key in NODE_FIELDS} for node in nodes]}
    write_atomic(nodes_path(root, name), json.dumps(doc, indent=2).encode(), f"the nodes of sweep {name}")


def read_nodes(root: str | os.PathLike[str], name: str) -> ClusterNodes | None:
    """The sweep's nodes file; None when there is none (a local sweep); RunStoreError (one line) when unreadable."""
    path = nodes_path(root, name)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        nodes = [{key: node.get(key) for key in NODE_FIELDS} for node in doc["nodes"]]
        return ClusterNodes(float(doc["written_at"]), nodes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunStoreError(f"nodes file {path.name} is unreadable ({exc})") from None
