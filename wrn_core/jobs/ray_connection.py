"""Joining a Ray cluster for one sweep: the --ray-address forms, and a connection that leaves the process as it found it."""

from __future__ import annotations

import os
import re
from typing import Any

from wrn_core.config import ConfigError
from wrn_core.errors import first_and_last_line
from wrn_core.jobs.ray_nodes import import_ray
from wrn_core.store import RunStoreError

# --ray-address forms: ray://HOST:PORT (Ray Client), HOST:PORT (the head's GCS), or `auto` (this machine's cluster).
ADDRESS_FORMS = re.compile(r"^(ray://[^\s:/]+:\d+|[^\s:/]+:\d+|auto)$")


def check_address(address: str | None) -> None:
    """ConfigError (one line) for a --ray-address that is neither ray://HOST:PORT, HOST:PORT nor auto."""
    if address and not ADDRESS_FORMS.match(address):
        raise ConfigError(f"--ray-address {address!r} is not a Ray address: give HEAD:6379 from a machine of the cluster, "
                          "or ray://HEAD:10001 (Ray Client) from outside it")


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
        # Cells write their output to job.log; the driver's terminal shows only the cells table.
        options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, **options)
                self.started_here = True
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError...: one line either way
            ray.shutdown()  # a failed ray:// connect leaves Ray Client mode on: a later local Ray would not start
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise RunStoreError(f"could not start or reach {where}: {first_and_last_line(exc)}") from None
        self._joined = True
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._joined:
            import_ray().shutdown()  # a local Ray of ours stops; a cluster only loses this driver
            self._joined = False
