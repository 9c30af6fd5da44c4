"""A Ray cluster's nodes as a sweep sees them: which hold a cell, whether they see the runs directory, a cell lost,
and the nodes file its driver keeps for the dashboard (NodesPublisher).

Also whether ray is installed (import_ray, require_ray).

Ray is imported inside the functions: `import wrn_core` and the dashboard never need it.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Iterable

from wrn_core.config import ConfigError
from wrn_core.errors import first_and_last_line
from wrn_core.jobs.executor import CellResources
from wrn_core.store import RunStoreError
from wrn_core.store.atomic import remove_quietly, write_atomic
from wrn_core.sweeps.sweep_file import NODES_REFRESH_S, write_nodes

RAY_MISSING = 'ray is not installed: pip install -e ".[ray]"'
PROBE_PREFIX = ".ray-probe-"  # the shared-directory token file: <runs dir>/.ray-probe-<token>
PROBE_TIMEOUT_S = 120.0  # a probe task waits for a worker process to start on its node
NODES_POLL_S = 1.0  # how often the driver asks Ray for its nodes: a join or a loss is in the nodes file within this


def import_ray() -> Any:
    """The ray module; ConfigError with the one line to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def require_ray() -> None:
    """ConfigError with the one line to install ray when it is missing; imports nothing (for the dashboard)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_MISSING)


def _read_token(path: str) -> tuple[str | None, str]:
    """On a worker: the token file's content (None if this node cannot read it) and the node's hostname."""
    try:
        return Path(path).read_text(encoding="utf-8"), socket.gethostname()
    except OSError:
        return None, socket.gethostname()


def _write_token(path: Path, token: str) -> None:
    write_atomic(path, token.encode(), "the shared-directory probe")


def _cell_nodes(ray: Any, resources: CellResources) -> list[dict[str, Any]]:
    """The live nodes that have room for one cell."""
    nodes = []
    for node in ray.nodes():
        have = node.get("Resources") or {}
        if node.get("Alive") and have.get("CPU", 0) >= resources.cpus and have.get("GPU", 0) >= resources.gpus:
            nodes.append(node)
    return nodes


def cells_at_once(ray: Any, resources: CellResources) -> int:
    """How many cells the live nodes hold at once: on each node, its CPUs (and GPUs) over what a cell reserves."""
    total = 0
    for node in _cell_nodes(ray, resources):
        have = node.get("Resources") or {}
        fits = have.get("CPU", 0) / resources.cpus
        if resources.gpus > 0:
            fits = min(fits, have.get("GPU", 0) / resources.gpus)
        total += int(fits + 1e-9)
    return total


def check_shared_runs_dir(root: str | os.PathLike[str], resources: CellResources = CellResources()) -> list[str]:
    """Prove that every node a cell could run on sees `root`: a token file written here is read by a
    task pinned to each such node. Returns their hostnames; RunStoreError (one line) otherwise."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(root).resolve()
    nodes = _cell_nodes(ray, resources)
    if not nodes:
        raise ConfigError(f"no node of the Ray cluster has {resources.cpus:g} CPU(s) and {resources.gpus:g} GPU(s) "
                          "free for a cell; lower --cpus-per-cell/--gpus-per-cell or add nodes")
    token = secrets.token_hex(16)
    path = root / f"{PROBE_PREFIX}{token}"
    root.mkdir(parents=True, exist_ok=True)
    _write_token(path, token)
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_read_token)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                .remote(str(path)) for node in nodes]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - GetTimeoutError, a node lost meanwhile...
        raise RunStoreError(f"could not check that the Ray workers see the runs directory {root}: "
                            f"{first_and_last_line(exc)}") from None
    finally:
        remove_quietly(path)
    blind = [host for content, host in seen if content != token]
    if blind:
        raise RunStoreError(
            f"the Ray worker on {blind[0]} does not see the runs directory {root}: put it on a filesystem every node "
            "mounts at the same path (NFSv4 or another where flock works across machines)")
    return sorted({host for _, host in seen})


# ---------------------------------------------------------------------------------------------
# A cell lost with its node


def lost(exc: BaseException | None, result: dict[str, Any] | None) -> bool:
    """Whether a cell's actor ended because the cell was lost, not by its own doing: the actor or its node died
    (Ray's node death, a worker crash, the memory monitor's kill), or its trainer was killed by a signal."""
    if result is not None:
        return result["code"] < 0
    from ray import exceptions as rex

    if isinstance(exc, rex.RayActorError):
        return not exc.actor_init_failed
    return isinstance(exc, (rex.WorkerCrashedError, rex.NodeDiedError, rex.OutOfMemoryError, rex.ObjectLostError))


def lost_reason(node: str, epoch: int, result: dict[str, Any] | None) -> str:
    """Why a cell was lost, in words: 'node 3f2a9c1e lost in epoch 3' (the node is gone), 'worker on node 3f2a9c1e
    lost in epoch 3' (the node still reads alive: a crash, an OOM kill), or its trainer killed by a signal."""
    where = f"node {node[:8] or '?'}"
    if result is not None:
        return f"trainer killed by signal {-result['code']} on {where} in epoch {epoch + 1}"
    alive = {n.get("NodeID") for n in import_ray().nodes() if n.get("Alive")}
    # A node killed outright may still read alive for a few seconds (Ray's health checks): then its worker is what was lost.
    return f"{where} lost in epoch {epoch + 1}" if node not in alive else f"worker on {where} lost in epoch {epoch + 1}"


# ---------------------------------------------------------------------------------------------
# The nodes file a driver keeps (sweep_file.write_nodes): the dashboard reads the cluster from it, never from Ray


def observe_nodes(ray_nodes: list[dict[str, Any]], known: dict[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The nodes as the nodes file records them (sweep_file.NODE_FIELDS), from ray.nodes(). `known` (node id -> its
    last row, updated here) keeps what a lost node had: Ray may list a dead node without its resources, or drop it."""
    listed = {}
    for node in ray_nodes:
        node_id = node.get("NodeID")
        if not node_id:
            continue
        before = known.get(node_id, {})
        have = node.get("Resources") or {}
        alive = bool(node.get("Alive"))
        listed[node_id] = {
            "node": node_id, "address": node.get("NodeManagerAddress") or before.get("address"),
            "hostname": node.get("NodeManagerHostname") or before.get("hostname"),
            "cpus": float(have.get("CPU", before.get("cpus", 0.0))), "gpus": float(have.get("GPU", before.get("gpus", 0.0))),
            "alive": alive, "last_seen": now if alive else before.get("last_seen"),
        }
    for node_id, before in known.items():
        listed.setdefault(node_id, {**before, "alive": False})  # gone from Ray's list: lost
    known.clear()
    known.update(listed)
    return [dict(row) for row in listed.values()]


def _shape(nodes: list[dict[str, Any]] | None) -> Any:
    """What makes a change worth writing at once: a node joined, was lost, or its resources changed."""
    return None if nodes is None else sorted((n["node"], n["alive"], n["cpus"], n["gpus"], n["address"]) for n in nodes)


class NodesPublisher:
    """Keeps each driven sweep's nodes file (<runs dir>/<sweep>.nodes.json): written at once when a node joins or
    is lost, else every NODES_REFRESH_S while the driver runs, so its `written_at` tells a reader the driver lives."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = root
        self.known: dict[str, dict[str, Any]] = {}
        self._polled = float("-inf")
        self._written: dict[str, tuple[float, Any]] = {}  # sweep -> (when, _shape of what was written)

    def publish(self, ray: Any, sweeps: Iterable[str], force: bool = False) -> None:
        """Ask Ray for its nodes (at most every NODES_POLL_S unless forced) and rewrite the files that are due."""
        now = time.time()
        if not force and now - self._polled < NODES_POLL_S:
            return
        self._polled = now
        try:
            nodes = observe_nodes(ray.nodes(), self.known, now)
        except Exception:  # noqa: BLE001 - a view of the cluster: never what stops a sweep (its cells' waits say so)
            return
        for name in sweeps:
            when, shape = self._written.get(name, (float("-inf"), None))
            if force or now - when >= NODES_REFRESH_S or shape != _shape(nodes):
                try:
                    write_nodes(self.root, name, nodes, now)
                except OSError:
                    continue  # a full disk: the cells' own writes report it
                self._written[name] = (now, _shape(nodes))
