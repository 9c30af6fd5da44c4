"""The `runs` command: list, show (with the re-run command and health findings), export and delete runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from wrn_core.cli.flags import DEFAULT_RUNS_DIR, UsageError, command_for
from wrn_core.store import RunStore, RunStoreError


def _rerun_command(run, runs_dir: str) -> str | None:
    """command_for a stored run (a new run, generated name, same runs directory); None if unreadable."""
    try:
        config = run.read_config()
    except (OSError, ValueError):  # ConfigError and RunCorruptError are ValueErrors
        return None
    return command_for(config, runs_dir=None if runs_dir == DEFAULT_RUNS_DIR else runs_dir)


def _findings_text(findings: Sequence[Any]) -> str:
    """Training-health findings as lines for a terminal."""
    if not findings:
        return "health: no problems found"
    lines = ["health:"]
    for finding in findings:
        lines.append(f"  {finding.severity}: {finding.message}")
        lines.append(f"    advice: {finding.advice}")
    return "\n".join(lines)


def _runs_list(store: RunStore) -> int:
    from wrn_core import analysis

    frame = analysis.runs_frame(store.summaries())
    if frame.empty:
        print(f"no runs in {store.root}")
    else:
        print(frame.to_string(index=False))
    return 0


def _runs_show(run, runs_dir: str) -> int:
    """The run as JSON (status, config, command, findings), its epoch table and its findings; 2 if its config is unreadable."""
    from wrn_core import analysis

    status = run.read_status()
    log = run.read_metrics_log()
    problems = []
    try:
        config: dict[str, Any] | None = run.read_config_dict()
    except RunStoreError as exc:
        config, problems = None, [str(exc)]
    findings = analysis.diagnose(log.records, config)
    print(json.dumps({"name": run.name, "path": str(run.path), "status": status, "config": config,
                      "command": _rerun_command(run, runs_dir) if config is not None else None,
                      "findings": [dataclasses.asdict(f) for f in findings]}, indent=2))
    _, epochs = analysis.metrics_frames(log.records)
    if not epochs.empty:
        print(epochs.convert_dtypes().to_string(index=False))  # integral epochs/steps print as ints
    print(_findings_text(findings))
    if log.warning:
        print(f"warning: {log.warning}", file=sys.stderr)
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    return 0


def _runs_export(run, fmt: str, out: str | None) -> int:
    """The run's metrics as CSV or JSON, to stdout or to the file `out`."""
    from wrn_core import analysis

    log = run.read_metrics_log()
    if log.warning:
        print(f"warning: {log.warning}", file=sys.stderr)
    records = log.records
    text = analysis.export_csv(records) if fmt == "csv" else analysis.export_json(records)
    if out:
        Path(out).write_text(text)
        print(out)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def _runs_stop(run) -> int:
    """Ask a training run to stop, wherever it trains: it checkpoints and ends `stopped` at its next logging point."""
    from wrn_core.store.lock import ROLE_TRAINING

    owner = run.owner()
    if owner is None or owner.role != ROLE_TRAINING:
        raise RunStoreError(f"run {run.name!r} is not training ({run.read_status().get('status')}); nothing to stop")
    run.request_stop(by="runs stop")
    print(f"stop requested: {run.name} ({owner.describe()}) checkpoints and stops at its next logging point")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """`runs list|show|export|stop|delete`, after settling the statuses of runs whose trainer has died."""
    store = RunStore(args.runs_dir)
    store.reconcile()
    if args.runs_command == "list":
        return _runs_list(store)
    run = store.get(args.name)
    if args.runs_command == "show":
        return _runs_show(run, args.runs_dir)
    if args.runs_command == "export":
        return _runs_export(run, args.format, args.out)
    if args.runs_command == "stop":
        return _runs_stop(run)
    if args.runs_command == "delete":
        store.delete(args.name)
        print(f"deleted {args.name}")
        return 0
    raise UsageError(f"unknown runs command {args.runs_command!r}")
