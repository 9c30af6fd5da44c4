"""The `ddp` command: check a data-parallel launch (batch split, rendezvous), then exec torchrun."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from wrn_core.cli.flags import UsageError, build_parser, train_config_from_args
from wrn_core.config import ConfigError
from wrn_core.store import RunStore


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); ConfigError otherwise."""
    host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit():
        raise ConfigError(f"--rdzv-endpoint must be HOST:PORT, got {endpoint!r}")
    return host, int(port_text)


def _is_this_host(host: str, port: int) -> bool:
    """Whether `host` resolves to an address of this machine (so this node hosts the rendezvous)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError as exc:
        raise ConfigError(f"cannot resolve the rendezvous host {host!r} ({exc})") from None
    local = {"127.0.0.1", "::1"}
    try:
        local |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return bool(addresses & local)


def _check_port_free(host: str, port: int) -> None:
    """ConfigError when torchrun could not listen on `port` here."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("" if host not in ("127.0.0.1", "localhost") else "127.0.0.1", port))
        except OSError:
            raise ConfigError(f"port {port} on {host} is in use; choose a free port in --rdzv-endpoint") from None


def _wait_reachable(host: str, port: int, timeout_s: float) -> None:
    """Return once host:port accepts a connection; ConfigError after timeout_s seconds of trying."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, timeout_s)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"cannot reach the rendezvous at {host}:{port} within {timeout_s:.0f} s; start the first node "
                    f"(the one at {host}) and check that the port is open"
                ) from None
            time.sleep(1.0)


def _rendezvous_check(endpoint: str, timeout_s: float) -> None:
    """ConfigError (one line) when the rendezvous port is taken here, or cannot be reached in time from here."""
    host, port = _split_endpoint(endpoint)
    if _is_this_host(host, port):
        _check_port_free(host, port)
    else:
        _wait_reachable(host, port, timeout_s)


def _inner_command(args: argparse.Namespace) -> list[str]:
    """The `train ...` or `resume NAME ...` words to run under torchrun; UsageError for anything else."""
    command = [c for c in args.inner if c != "--"]
    if not command or command[0] not in ("train", "resume"):
        raise UsageError("python -m wrn_core ddp: give the command to run, e.g. `ddp --nproc-per-node 2 train ...` (see --help)")
    if args.nproc_per_node < 1 or args.nnodes < 1:
        raise UsageError("python -m wrn_core ddp: --nproc-per-node and --nnodes must be >= 1")
    return command


def _launcher(args: argparse.Namespace) -> list[str]:
    """The torchrun argv up to `-m`: standalone on one node, else c10d at the checked rendezvous."""
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={args.nproc_per_node}"]
    if args.nnodes == 1 and not args.rdzv_endpoint:
        return launcher + ["--standalone"]
    if not args.rdzv_endpoint:
        raise UsageError("python -m wrn_core ddp: --nnodes > 1 needs --rdzv-endpoint HOST:PORT (the first node)")
    _rendezvous_check(args.rdzv_endpoint, args.join_timeout)
    return launcher + [f"--nnodes={args.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={args.rdzv_endpoint}",
                       f"--rdzv-id={args.rdzv_id}", f"--rdzv-conf=join_timeout={int(args.join_timeout)}"]


def cmd_ddp(args: argparse.Namespace) -> int:
    """Check the launch, then replace this process with torchrun running `-m wrn_core COMMAND`."""
    from wrn_core.engine.resume import preflight

    command = _inner_command(args)
    world_size = args.nproc_per_node * args.nnodes
    inner = build_parser().parse_args(command)
    if inner.command == "train":
        config = train_config_from_args(inner)
    else:
        config = RunStore(inner.runs_dir).get(inner.name).read_config()
    preflight(config.replace(world_size=world_size))
    launcher = _launcher(args) + ["-m", "wrn_core", *command]
    if args.check_only:
        print(" ".join(launcher))
        return 0
    sys.stdout.flush()
    os.execv(sys.executable, launcher)
    return 0  # not reached
