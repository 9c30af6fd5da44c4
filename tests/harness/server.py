"""The dashboard served as users start it: `streamlit run dashboard/app.py` on a free loopback port, its log kept.

Standard library only, so that a bench on a machine without streamlit can import it and say what it lacks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0  # until the server answers its health check


class ServerError(RuntimeError):
    """The server exited before it answered, or did not answer in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets in LISTEN state on this port."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = TCP_LISTEN
                found.append(address)
    return found


def start_streamlit(runs: Path, log_path: Path, env: Mapping[str, str] | None = None, root: Path = ROOT,
                    timeout_s: float = START_TIMEOUT_S) -> tuple[subprocess.Popen, str, int]:
    """`streamlit run dashboard/app.py` of `root` on a free port over `runs`, as a user starts it; returns
    (process, url, port) once it answers, else ServerError (the process killed).

    The address is left to .streamlit/config.toml (read from `root`, the server's working directory), so
    the loopback test checks what users get. `env` (default os.environ) is the server's environment
    before WRN_RUNS_DIR; its output is appended to log_path."""
    port = free_port()
    env = dict(os.environ if env is None else env, WRN_RUNS_DIR=str(runs))
    command = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ServerError(f"streamlit exited early:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=5)
            raise ServerError(f"streamlit did not answer within {timeout_s:.0f} s:\n{log_path.read_text()}")
        time.sleep(0.3)


def stop_streamlit(proc: subprocess.Popen) -> None:
    """Terminate the server; kill it if it has not exited after 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def app_exceptions(log_path: Path, root: Path = ROOT) -> list[str]:
    """Traceback lines through the app's own files (under `root`) in a server log. Starlette may log a
    websocket-close race when a browser context closes; only the app's own exceptions count."""
    log_text = log_path.read_text(errors="replace")
    return [line for line in log_text.splitlines() if line.strip().startswith("File") and str(root) in line]


@contextmanager
def serving(runs: Path, log_path: Path) -> Iterator[str]:
    """A dashboard server over `runs` for the with-block (yields its url); afterwards, no exception of the
    app's own in its log."""
    proc, url, _ = start_streamlit(runs, log_path)
    try:
        yield url
    finally:
        stop_streamlit(proc)
    assert not app_exceptions(log_path), f"the server logged an exception in the app:\n{log_path.read_text()}"
