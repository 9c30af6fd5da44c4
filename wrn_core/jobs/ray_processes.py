"""The dashboard's Ray executor: each sweep driven by a background `sweep NAME --resume --executor ray` process.

Ray's driver must not live in a Streamlit thread (ray.init takes over signals and logging, and a
driver lives as long as its process), so the dashboard starts the CLI's own Ray sweep (`RaySweep`)
as a process of its own and watches it. Nothing here imports ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from wrn_core.jobs.executor import RAY, CellResources, Placement, SweepExecutor, cells_to_stop
from wrn_core.jobs.ray_executor import queued_on_ray
from wrn_core.jobs.ray_nodes import require_ray
from wrn_core.jobs.supervisor import last_log_line
from wrn_core.store import RunStore, RunStoreError
from wrn_core.sweeps import Sweep, load_sweep


def sweep_command(root: str | os.PathLike[str], name: str, address: str | None = None,
                  resources: CellResources = CellResources(), max_retries: int = 3) -> list[str]:
    """`python -m wrn_core sweep NAME --resume --executor ray ...` for a saved sweep."""
    command = [sys.executable, "-m", "wrn_core", "sweep", name, "--resume", "--executor", RAY, "--no-probe",
               "--cpus-per-cell", f"{resources.cpus:g}", "--gpus-per-cell", f"{resources.gpus:g}",
               "--max-retries", str(max_retries), "--runs-dir", str(root)]
    return command + (["--ray-address", address] if address else [])


class RaySweepProcesses(SweepExecutor):
    """Saved sweeps driven on Ray by background sweep processes, one per sweep, each watched by a thread.
    Every public method is thread-safe; a process outlives this object (its cells are the run store's)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.store = RunStore(self.root)
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._errors: dict[str, str] = {}  # name -> why its sweep process ended with an error

    def log_path(self, name: str) -> Path:
        return self.root / f".{name}.ray.log"

    def check(self, placement: Placement) -> None:  # noqa: ARG002
        require_ray()

    def drive(self, sweep: Sweep, placement: Placement = Placement(executor=RAY)) -> None:
        self.start_process(sweep.name, placement.address, placement.resources(sweep), placement.max_retries)

    def start_process(self, name: str, address: str | None = None, resources: CellResources = CellResources(),
                      max_retries: int = 3) -> None:
        """Start the saved sweep's process; ConfigError when ray is missing, RunStoreError when it already runs."""
        require_ray()
        with self._lock:
            if name in self._procs and self._procs[name].poll() is None:
                raise RunStoreError(f"sweep {name!r} is already running on Ray")
            self._errors.pop(name, None)
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.log_path(name), "ab") as log:
                proc = subprocess.Popen(sweep_command(self.root, name, address, resources, max_retries), stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._procs[name] = proc
        threading.Thread(target=self._watch, args=(name, proc), daemon=True, name=f"ray-sweep-{name}").start()

    def _watch(self, name: str, proc: subprocess.Popen) -> None:
        code = proc.wait()
        if code not in (0, 1):  # 1: some cell did not finish, which the cells' statuses say
            with self._lock:
                self._errors[name] = last_log_line(self.log_path(name)) or f"the sweep process exited with code {code}"

    def _process(self, name: str) -> subprocess.Popen | None:
        """The sweep's process while it lives."""
        with self._lock:
            proc = self._procs.get(name)
        return proc if proc is not None and proc.poll() is None else None

    def running(self, name: str) -> bool:
        return self._process(name) is not None

    def error(self, name: str) -> str | None:
        with self._lock:
            return self._errors.get(name)

    def stop(self, name: str) -> list[str]:
        """Ctrl-C to the sweep's process: it asks the cells cells_to_stop names to stop (they checkpoint) and
        cancels the queued ones. Returns those cells; none when no process of this object drives the sweep."""
        proc = self._process(name)
        if proc is None:
            return []
        try:
            asked = cells_to_stop(self.store, load_sweep(self.root, name))
        except RunStoreError:
            asked = []
        proc.send_signal(signal.SIGINT)
        return asked

    def waiting(self, name: str) -> list[str]:
        try:
            sweep = load_sweep(self.root, name)
        except RunStoreError:
            return []
        return queued_on_ray(self.store, (cell.run for cell in sweep.cells()))

    def wait(self, name: str, timeout: float) -> bool:
        proc = self._process(name)
        if proc is None:
            return True
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
