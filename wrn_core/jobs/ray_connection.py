"""Joining a Ray cluster for one sweep: the --ray-address forms, and a connection that leaves the process as it found it."""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Any

from wrn_core.config import ConfigError
from wrn_core.errors import first_and_last_line
from wrn_core.jobs.ray_nodes import import_ray
from wrn_core.store import RunStoreError

# --ray-address forms: ray://HOST:PORT (Ray Client), HOST:PORT (the head's GCS), or `auto` (this machine's cluster).
ADDRESS_FORMS = re.compile(r"^(ray://[^\s:/]+:\d+|[^\s:/]+:\d+|auto)$")
# A TCP connect to the head: ample for a cluster across the world, far shorter than Ray Client's 30 s of retries.
REACH_TIMEOUT_S = 5.0
# Ray Client's proxy may hand a new driver the port of the per-client server an earlier driver left (it lingers for its
# reconnect grace period, and the proxy's port check binds IPv4 where that server listens on IPv6): that server then
# fails to start. Seen on a `sweep --resume` right after a Ctrl-C. Tried again a few times, a few seconds apart.
CLIENT_SERVER_FAILED = "Starting Ray client server failed"
CONNECT_ATTEMPTS = 3
CONNECT_RETRY_S = 5.0


def check_address(address: str | None) -> None:
    """ConfigError (one line) for a --ray-address that is neither ray://HOST:PORT, HOST:PORT nor auto."""
    if address and not ADDRESS_FORMS.match(address):
        raise ConfigError(f"--ray-address {address!r} is not a Ray address: give HEAD:6379 from a machine of the cluster, "
                          "or ray://HEAD:10001 (Ray Client) from outside it")


def check_reachable(address: str) -> None:
    """RunStoreError (one line) when nothing answers at the HOST:PORT of a ray:// or HOST:PORT address, before Ray
    spends half a minute retrying; `auto` (this machine's cluster) is Ray's to find."""
    if address == "auto":
        return
    host, port = address.removeprefix("ray://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RunStoreError(f"could not reach the Ray cluster at {address}: nothing answers at {host}:{port} "
                            f"({exc.strerror or exc})") from None


class RayCluster:
    """A connection for one sweep: the cluster at `address` (or RAY_ADDRESS), else a local Ray started
    for the sweep and shut down after it. A Ray this process had already joined is used and left as it is."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.started_here = False  # a local Ray of our own (shut down on exit)
        self._joined = False

    def __enter__(self) -> "RayCluster":
        ray = import_ray()
        if ray.is_initialized():
            return self
        check_address(self.address)
        if self.address:
            check_reachable(self.address)
        # Cells write their output to job.log; the driver's terminal shows only the cells table.
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                if self.address:
                    ray.init(address=self.address, **options)
                else:
                    ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **options)
                    self.started_here = True
                break
            except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError...: one line either way
                ray.shutdown()  # a failed ray:// connect leaves Ray Client mode on: a later local Ray would not start
                if CLIENT_SERVER_FAILED in str(exc) and attempt < CONNECT_ATTEMPTS:
                    time.sleep(CONNECT_RETRY_S)
                    continue
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
                tries = f" ({attempt} tries)" if attempt > 1 else ""
                raise RunStoreError(f"could not start or reach {where}{tries}: {first_and_last_line(exc)}") from None
        self._joined = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._joined:
            import_ray().shutdown()  # a local Ray of ours stops; a cluster only loses this driver
            self._joined = False
