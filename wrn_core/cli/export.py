"""The `export` command: a trained run's network as a file to take away (ONNX, safetensors, pt2), with its metadata."""

from __future__ import annotations

import argparse
import sys

from wrn_core.cli.flags import add_runs_dir
from wrn_core.store import RunStore


def add_export(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser("export", help="export a run's network (images in [0, 1] in, logits out) with its metadata")
    export.add_argument("name")
    # Not argparse choices: an unknown format gets the export's own one line.
    export.add_argument("--format", required=True, help="onnx, safetensors or pt2")
    export.add_argument("--out", help="the file to write (default: NAME.<ext> in the current directory)")
    add_runs_dir(export)


def cmd_export(args: argparse.Namespace) -> int:
    from wrn_core.inspect import ExportError, load_network
    from wrn_core.inspect.network_export import check_format, export_network

    try:
        check_format(args.format)  # before the checkpoint and the data are read
        network, _ = load_network(RunStore(args.runs_dir).get(args.name))
        path = export_network(network, args.format, args.out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({args.format}, epoch {network.epoch}, step {network.step})")
    return 0
