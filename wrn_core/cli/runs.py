"""The `runs` command: list (with metric columns), compare, show (with the re-run command and health findings), tag, note,
export and delete runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from wrn_core.cli.flags import Parser, UsageError, add_runs_dir, command_for, csv_list
from wrn_core.store import DEFAULT_RUNS_DIR, RunStore, RunStoreError


def add_runs(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="list, compare, show, tag, note, export, stop or delete saved runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, parser_class=Parser)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--tag", action="append", help="only runs with this tag (repeatable: all must match)")
    add_runs_dir(runs_list)
    runs_list.add_argument("--group-by", type=csv_list(str), metavar="FIELD[,FIELD]",
                           help="one row per group of runs (seeds averaged): n, mean ± std of best and final test accuracy")
    runs_list.add_argument("--filter", type=_field_filter, action="append", metavar="FIELD=VALUE[,VALUE]",
                           help="only runs with one of these values (repeat for more fields; e.g. optimizer=sgd, k=1,2)")
    runs_list.add_argument("--metric", type=_metric_spec, action="append", metavar="METRIC:AGG",
                           help="a column of a metric's best, min, max or last value over each run's epochs "
                                "(repeatable; e.g. test_loss:min, train_acc:last; reads each listed run's metrics)")
    runs_compare = runs_sub.add_parser("compare", help="runs side by side: one column per run, one row per setting")
    runs_compare.add_argument("names", nargs="+", metavar="NAME", help="two or more runs")
    runs_compare.add_argument("--all", action="store_true", help="every setting, not only those that differ")
    add_runs_dir(runs_compare)
    runs_tag = runs_sub.add_parser("tag", help="add tags to a run (safe while it trains)")
    runs_tag.add_argument("name")
    runs_tag.add_argument("tags", nargs="+", metavar="TAG", help="letters, digits and . _ : + = @ - (no spaces or '/')")
    runs_tag.add_argument("--remove", action="store_true", help="take these tags off instead")
    add_runs_dir(runs_tag)
    runs_note = runs_sub.add_parser("note", help="set a run's note; an empty text clears it")
    runs_note.add_argument("name")
    runs_note.add_argument("text", help="at most 10,000 characters")
    add_runs_dir(runs_note)
    runs_show = runs_sub.add_parser("show")
    runs_show.add_argument("name")
    runs_show.add_argument("--format", choices=("text", "json"), default="text",
                           help="json: only the JSON object, with the width series (`width`, one row per measured epoch)")
    add_runs_dir(runs_show)
    runs_export = runs_sub.add_parser("export")
    runs_export.add_argument("name", nargs="?", help="the run (or --all with --format tensorboard)")
    runs_export.add_argument("--format", choices=("csv", "json", "tensorboard"), default="csv")
    runs_export.add_argument("--out", help="write to this file instead of stdout (tensorboard: the event directory)")
    runs_export.add_argument("--all", action="store_true", help="tensorboard: every run, each in OUT/<run name>")
    runs_export.add_argument("--force", action="store_true", help="tensorboard: write into an OUT that is not empty")
    runs_export.add_argument("--width", action="store_true",
                             help="csv: the width rows (one per measured epoch and ReLU) instead of the epoch rows")
    add_runs_dir(runs_export)
    runs_stop = runs_sub.add_parser("stop", help="ask a training run to checkpoint and stop, on whichever machine it trains")
    runs_stop.add_argument("name")
    add_runs_dir(runs_stop)
    runs_delete = runs_sub.add_parser("delete")
    runs_delete.add_argument("name")
    add_runs_dir(runs_delete)


def _field_filter(text: str) -> tuple[str, list[str]]:
    """An argparse type for `--filter FIELD=VALUE[,VALUE]`: 'optimizer=sgd,adam' -> ('optimizer', ['sgd', 'adam'])."""
    field, sep, values = text.partition("=")
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not field.strip() or not parts:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. optimizer=sgd or k=1,2), got {text!r}")
    return field.strip(), parts


def _metric_spec(text: str) -> tuple[str, str]:
    """An argparse type for `--metric METRIC:AGG`: 'test_loss:min' -> ('test_loss', 'min') (analysis.TABLE_METRICS,
    analysis.AGGREGATES)."""
    from wrn_core.analysis.run_tables import AGGREGATES, TABLE_METRICS

    metric, sep, aggregate = text.partition(":")
    metric, aggregate = metric.strip().replace("-", "_"), aggregate.strip()
    if not sep or metric not in TABLE_METRICS or aggregate not in AGGREGATES:
        raise argparse.ArgumentTypeError(f"expected METRIC:AGG with METRIC one of {', '.join(TABLE_METRICS)} and AGG "
                                         f"one of {', '.join(AGGREGATES)} (e.g. test_loss:min), got {text!r}")
    return metric, aggregate


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


NOTE_PREVIEW_CHARS = 40  # of a note's first line, in `runs list`


def _check_tags(summaries: list, tags: Sequence[str]) -> None:
    """RunStoreError in one line for a tag no run has (a typo would otherwise list nothing, silently)."""
    in_use = sorted({t for s in summaries for t in s.tags})
    for tag in tags:
        if tag not in in_use:
            raise RunStoreError(f"no run has tag {tag!r}" + (f" (tags in use: {', '.join(in_use)})" if in_use else " (no run has tags)"))


def _groups_text(frame, by: Sequence[str]) -> str:
    """analysis.group_runs as a terminal table: the group fields, n, mean ± std of the accuracies (%), the runs."""
    from wrn_core import analysis

    grouped = analysis.group_runs(frame, by)
    table = analysis.groups_table(grouped)
    table["runs"] = [", ".join(names) for names in grouped["runs"]]
    return table.to_string(index=False)


def _with_metric_columns(store: RunStore, frame, metrics: Sequence[tuple[str, str]]):
    """The listed runs with a column per (metric, aggregate), after `final test acc (%)`; each run's metrics read once."""
    from wrn_core import analysis

    columns = [analysis.metric_column(metric, aggregate) for metric, aggregate in metrics]
    wanted = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if wanted:
        values = [analysis.metric_summary(store.get(name).read_metrics()) for name in frame["name"]]
        at = list(frame.columns).index("final test acc (%)") + 1
        for offset, column in enumerate(wanted):
            frame.insert(at + offset, column, [v[column] for v in values])
    return frame


def _runs_list(store: RunStore, tags: Sequence[str] = (), group_by: Sequence[str] | None = None,
               filters: Sequence[tuple] | None = None, metrics: Sequence[tuple[str, str]] = ()) -> int:
    """The runs table, or (with group_by) one row per group; tags: all must match; filters: (field, values) pairs, ANDed;
    metrics: (metric, aggregate) pairs, a column each."""
    from wrn_core import analysis
    from wrn_core.analysis.grouping import TAG_FILTER

    summaries = store.summaries()
    _check_tags(summaries, tags)
    wanted: dict[str, list] = {TAG_FILTER: list(tags)} if tags else {}
    for field, values in filters or ():
        wanted.setdefault(field, []).extend(values)
    frame = analysis.runs_frame(summaries)
    if wanted:
        frame = analysis.filter_runs(frame, wanted)
    if frame.empty:
        print(f"no runs in {store.root}" + (f" tagged {', '.join(tags)}" if tags else "")
              + (" match the filters" if filters else ""))
    elif group_by:
        print(_groups_text(frame, group_by))
    else:
        frame = _with_metric_columns(store, frame, metrics)
        frame["tags"] = frame["tags"].map(", ".join)
        frame["note"] = frame["note"].map(lambda note: analysis.note_preview(note, NOTE_PREVIEW_CHARS))
        print(frame.to_string(index=False, na_rep="—"))
    return 0


def _runs_compare(store: RunStore, names: Sequence[str], everything: bool) -> int:
    """Runs side by side (analysis.compare_frame): one column per run, results then settings; only what differs
    unless `everything`."""
    from wrn_core import analysis

    if len(set(names)) < 2:
        raise UsageError("runs compare: name two or more different runs")
    configs = {name: store.get(name).read_config_dict() for name in dict.fromkeys(names)}
    results = analysis.runs_frame([store.summary(name) for name in configs])
    table = analysis.compare_frame(configs, results, only_differences=not everything)
    if table.empty:
        print(f"{', '.join(configs)}: the same results and identical configs")
        return 0
    shown = table.map(lambda v: "—" if v is None else ", ".join(v) if isinstance(v, list) else
                      analysis.note_preview(v, NOTE_PREVIEW_CHARS) if isinstance(v, str) else
                      f"{v:.2f}" if isinstance(v, float) else str(v))
    print(shown.to_string())
    return 0


def _runs_tag(run, tags: Sequence[str], remove: bool) -> int:
    """Add (or with remove, take off) tags; prints the run's tags after."""
    annotations = run.annotate(remove_tags=tags) if remove else run.annotate(add_tags=tags)
    print(f"{run.name}: " + (", ".join(annotations.tags) if annotations.tags else "no tags"))
    return 0


def _runs_note(run, text: str) -> int:
    """Set the run's note; an empty text clears it."""
    annotations = run.annotate(note=text)
    print(f"{run.name}: note " + (f"set ({len(annotations.note):,} characters)" if annotations.note else "cleared"))
    return 0


def _runs_show(run, runs_dir: str, fmt: str = "text") -> int:
    """The run as JSON (status, config, command, findings; with fmt json only that, and `width`), its epoch table and
    its findings; 2 if its config is unreadable."""
    from wrn_core import analysis
    from wrn_core.analysis.width import width_series

    status = run.read_status()
    log = run.read_metrics_log()
    problems = []
    try:
        config: dict[str, Any] | None = run.read_config_dict()
    except RunStoreError as exc:
        config, problems = None, [str(exc)]
    findings = analysis.diagnose(log.records, config)
    annotations = run.read_annotations()
    if annotations.problem:
        print(f"warning: {annotations.problem}", file=sys.stderr)
    shown = {"name": run.name, "path": str(run.path), "status": status, "config": config,
             "tags": list(annotations.tags), "note": annotations.note,
             "command": _rerun_command(run, runs_dir) if config is not None else None,
             "findings": [dataclasses.asdict(f) for f in findings]}
    if fmt == "json":
        print(json.dumps({**shown, "width": width_series(log.records)}, indent=2))
        return _show_problems(log, problems)
    print(json.dumps(shown, indent=2))
    _, epochs = analysis.metrics_frames(log.records)
    if not epochs.empty:
        print(epochs.convert_dtypes().to_string(index=False))  # integral epochs/steps print as ints
    print(_findings_text(findings))
    width = _width_line(log.records)
    if width:
        print(width)
    return _show_problems(log, problems)


def _width_line(records: Sequence[Any]) -> str | None:
    """The last measured epoch's effective ÷ allocated width per group, as one line; None before any measurement."""
    from wrn_core.analysis.width import width_series

    series = width_series(records)
    if not series:
        return None
    groups = ", ".join(f"{g['group']} {100 * g['effective_fraction']:.0f}% ({g['dead']} dead)" for g in series[-1]["groups"])
    return f"width use at epoch {series[-1]['epoch']} (effective ÷ allocated): {groups}"


def _show_problems(log, problems: Sequence[str]) -> int:
    """Say what `runs show` could not read, on stderr: 2 for an unreadable config, else 0."""
    if log.warning:
        print(f"warning: {log.warning}", file=sys.stderr)
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    return 0


def _runs_export(run, fmt: str, out: str | None, width: bool = False) -> int:
    """The run's metrics as CSV (with width, the width rows) or JSON, to stdout or to the file `out`."""
    from wrn_core import analysis

    log = run.read_metrics_log()
    if log.warning:
        print(f"warning: {log.warning}", file=sys.stderr)
    records = log.records
    annotations = run.read_annotations()
    if fmt == "csv" and width:
        text = analysis.export_width_csv(records, annotations=annotations)
    elif fmt == "csv":
        text = analysis.export_csv(records, annotations=annotations)
    else:
        text = analysis.export_json(records, annotations=annotations, name=run.name)
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
        raise RunStoreError(f"run {run.name!r} is not training ({run.status().status}); nothing to stop")
    run.request_stop(by="runs stop")
    print(f"stop requested: {run.name} ({owner.describe()}) checkpoints and stops at its next logging point")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """`runs list|compare|show|tag|note|export|stop|delete`, after settling the statuses of runs whose trainer has died."""
    store = RunStore(args.runs_dir)
    store.reconcile()
    if args.runs_command == "list":
        return _runs_list(store, args.tag or (), args.group_by, args.filter, args.metric or ())
    if args.runs_command == "compare":
        return _runs_compare(store, args.names, args.all)
    if args.runs_command == "export":
        from wrn_core.cli.runs_tensorboard import check_export_args, export_tensorboard_runs

        check_export_args(args)
        if args.format == "tensorboard":
            return export_tensorboard_runs(store, args)
    run = store.get(args.name)
    if args.runs_command == "tag":
        return _runs_tag(run, args.tags, args.remove)
    if args.runs_command == "note":
        return _runs_note(run, args.text)
    if args.runs_command == "show":
        return _runs_show(run, args.runs_dir, args.format)
    if args.runs_command == "export":
        return _runs_export(run, args.format, args.out, args.width)
    if args.runs_command == "stop":
        return _runs_stop(run)
    if args.runs_command == "delete":
        store.delete(args.name)
        print(f"deleted {args.name}")
        return 0
    raise UsageError(f"unknown runs command {args.runs_command!r}")
