"""The `ddp` command: check a data-parallel launch (batch split, rendezvous), then exec torchrun."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

from wrn_core.cli.flags import Parser, UsageError, train_config_from_args
from wrn_core.cli.train import add_resume, add_train
from wrn_core.config import ConfigError
from wrn_core.store import RunStore


def add_ddp(sub: argparse._SubParsersAction) -> None:
    ddp = sub.add_parser(
        "ddp", help="check, then launch `train` or `resume` data-parallel with torchrun",
        description="Checks what torchrun would only find out by failing or waiting (a batch that does not divide "
                    "over the processes, a rendezvous port in use, a host that cannot be reached), then runs "
                    "`python -m torch.distributed.run ... -m wrn_core COMMAND ...`. Plain torchrun works too.",
    )
    ddp.add_argument("--nproc-per-node", type=int, required=True, help="processes per node: one per GPU (or CPU gloo processes)")
    ddp.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1: --standalone)")
    ddp.add_argument("--rdzv-endpoint", help="HOST:PORT of the rendezvous on the first node (needed with --nnodes > 1)")
    ddp.add_argument("--rdzv-id", default="wrn-lab", help="job id shared by all nodes")
    ddp.add_argument("--join-timeout", type=float, default=60.0, help="seconds to wait for all nodes to join (torchrun's default is 600)")
    ddp.add_argument("--check-only", action="store_true", help="run the checks and print the torchrun command, without running it")
    ddp.add_argument("inner", nargs=argparse.REMAINDER, metavar="COMMAND",
                     help="train ... or resume NAME ... (the same flags as without ddp)")


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


def _inner_parser() -> argparse.ArgumentParser:
    """The parser of the commands ddp launches: `train` and `resume`, with the flags they have without ddp."""
    parser = Parser(prog="python -m wrn_core")  # its errors read as those of the command without ddp
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_train(sub)
    add_resume(sub)
    return parser


def cmd_ddp(args: argparse.Namespace) -> int:
    """Check the launch, then replace this process with torchrun running `-m wrn_core COMMAND`."""
    from wrn_core.engine.resume import preflight

    command = _inner_command(args)
    world_size = args.nproc_per_node * args.nnodes
    inner = _inner_parser().parse_args(command)
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
