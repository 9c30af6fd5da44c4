"""The `evaluate` command: open a trained run's checkpoint and report what it gets wrong, how it uses its width."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from wrn_core.cli.flags import add_runs_dir
from wrn_core.store import RunStore


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="evaluate a run's latest checkpoint: confusions, calibration, width use")
    evaluate.add_argument("name")
    evaluate.add_argument("--split", choices=("test", "train"), default="test")
    evaluate.add_argument("--tta", choices=("flip",), help="also average each image's logits with its mirror's")
    evaluate.add_argument("--predictions", action="store_true", help="one row per image in the JSON")
    evaluate.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:<index> or mps")
    evaluate.add_argument("--format", choices=("table", "json"), default="table")
    evaluate.add_argument("--no-cache", action="store_true", help="recompute even when the cached result is current")
    add_runs_dir(evaluate)


def _progress_bar(description: str) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A tqdm bar on stderr fed (done, total); (None, no-op) when tqdm is missing."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    bar: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=description, unit="img", file=sys.stderr, disable=None, leave=False)
        bar["bar"].update(done - bar["bar"].n)

    return update, lambda: bar["bar"].close() if "bar" in bar else None


def _run_note(run, evaluation: dict[str, Any]) -> str | None:
    """Which checkpoint a run that is still training was read at (status.json as written; the lock is not touched)."""
    from wrn_core.store.records import RunStatus

    written, _ = run.read_status_file()
    status = RunStatus.from_dict(written) if written is not None else None
    if status is None or not status.active:
        return None
    return f"the run is {status.status}: evaluated its latest checkpoint, epoch {evaluation['epoch']} (step {evaluation['step']})"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from wrn_core.analysis.checkpoint_health import evaluation_findings
    from wrn_core.inspect import evaluate_run

    run = RunStore(args.runs_dir).get(args.name)
    update, close = _progress_bar(f"evaluating {args.name}")
    try:
        evaluation = evaluate_run(run, split=args.split, tta=args.tta or "none", device=args.device,
                                  use_cache=not args.no_cache, progress=update)
    finally:
        close()
    findings = evaluation_findings(evaluation)
    note = _run_note(run, evaluation)
    if args.format == "json":
        out = {key: value for key, value in evaluation.items() if args.predictions or key != "predictions"}
        out["findings"] = [vars(f) for f in findings]
        out["note"] = note
        print(json.dumps(out, indent=2))
        return 0
    print(_evaluation_text(evaluation, findings, note))
    return 0


def _evaluation_text(evaluation: dict[str, Any], findings: list[Any], note: str | None) -> str:
    """The evaluation for a terminal: headline, per class, top confusions, width use, findings."""
    lines = [f"{evaluation['run']}: epoch {evaluation['epoch']}, {evaluation['images']:,} {evaluation['split']} images"
             + (" (cached)" if evaluation.get("cached") else "")]
    if note:
        lines.append(note)
    lines.append(f"accuracy {evaluation['accuracy']:.2%}  loss {evaluation['loss']:.4f}  ECE {evaluation['ece']:.4f}")
    if "tta_accuracy" in evaluation:
        lines.append(f"with flip TTA: accuracy {evaluation['tta_accuracy']:.2%}  loss {evaluation['tta_loss']:.4f}")
    lines += ["", f"{'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    lines += [f"{r['class'][:15]:<16}{r['precision']:>10.3f}{r['recall']:>10.3f}{r['f1']:>10.3f}{r['support']:>9}"
              for r in evaluation["per_class"]]
    if evaluation["top_confusions"]:
        lines += ["", "top confusions (true -> predicted: images)"]
        lines += [f"  {c['true']} -> {c['pred']}: {c['count']}" for c in evaluation["top_confusions"]]
    lines += ["", f"{'width use':<20}{'channels':>9}{'dead':>6}{'active':>8}{'effective':>10}"]
    lines += [f"{r['layer']:<20}{r['channels']:>9}{r['dead_channels']:>6}{r['active_fraction']:>8.0%}{r['effective_width']:>10.1f}"
              for r in evaluation["width_use"]]
    lines += [f"{g['group'] + ' (total)':<20}{g['channels']:>9}{g['dead_channels']:>6}{g['active_fraction']:>8.0%}"
              f"{g['effective_width']:>10.1f}" for g in evaluation["width_groups"]]
    lines.append("")
    lines += [f"{f.severity}: {f.message}\n  advice: {f.advice}" for f in findings] or ["health: no problems found"]
    return "\n".join(lines)
