"""The `train` and `resume` commands: their flags, stop signals, the progress bar, rank 0's checks under torchrun."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Callable

from wrn_core.cli.flags import UsageError, add_runs_dir, add_train_flags, train_config_from_args
from wrn_core.config import EXTEND_MODES, ConfigError, TrainConfig
from wrn_core.store import RunStore, RunStoreError
from wrn_core.store.records import FINISHED, INPUT_ERROR, PRUNED, STOPPED

# How a trainer ends as asked (exit status 0): every epoch done, or stopped or pruned with a checkpoint.
ASKED_ENDINGS = (FINISHED, STOPPED, PRUNED)

def add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a WRN; Ctrl-C stops with a checkpoint")
    add_train_flags(train)
    train.add_argument("--name", help="run name (letters, digits, . _ -); default: generated")
    train.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    train.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")


def add_resume(sub: argparse._SubParsersAction) -> None:
    resume = sub.add_parser("resume", help="continue a stopped, interrupted or pruned run from its checkpoint")
    resume.add_argument("name")
    resume.add_argument("--epochs", type=int, help="train up to this many epochs in total")
    resume.add_argument("--extend-schedule", choices=EXTEND_MODES, default=None,
                        help="epochs beyond the planned schedule: continue at the learning rate it ended at, or restart "
                             "the schedule over the added epochs (default: restart where it ended at lr 0, as "
                             "one-cycle and cosine do, else continue)")
    add_runs_dir(resume)
    resume.add_argument("--quiet", action="store_true", help="no progress bar (e.g. when a job manager runs it)")
    resume.add_argument("--force", action="store_true", help="train even when the predicted memory exceeds the device's free memory")


# Set by Ctrl-C (SIGINT) or SIGTERM from the moment a train/resume command starts, so a stop asked
# for while the process is still importing torch or loading data stops it cleanly at its first batch.
_STOP = threading.Event()


def install_stop_handlers() -> dict:
    """Route SIGINT and SIGTERM to _STOP; returns the handlers they replace."""
    _STOP.clear()

    def on_stop_signal(signum, frame) -> None:  # noqa: ARG001
        _STOP.set()
        # A second Ctrl-C ends the process at once; the run is then found interrupted.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}


class _NoBar:
    """What the CLI uses instead of a tqdm bar when tqdm is not installed."""

    def write(self, text: str, file=None) -> None:
        print(text, file=file or sys.stderr)

    def close(self) -> None:
        pass


def _progress_bar(name: str, quiet: bool) -> tuple[Any, bool]:
    """A tqdm bar on stderr (disabled when quiet) and whether it stays quiet: always, without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:  # a bare GPU machine: train without a bar rather than not at all
        return _NoBar(), True
    return tqdm(total=0, unit="step", dynamic_ncols=True, file=sys.stderr, desc=name, disable=quiet), quiet


def _progress_printer(bar: Any, quiet: bool) -> Callable[[Any], None]:
    """The on_progress callback of train_run: notices always, the bar's step and postfix unless quiet."""

    def on_progress(progress) -> None:
        if progress.notice:
            bar.write(f"note: {progress.notice}", file=sys.stderr)
        if quiet:
            return
        if bar.total != progress.total_steps:
            bar.total = progress.total_steps
        bar.n = progress.step
        postfix = {"epoch": f"{progress.epoch}/{progress.epochs}", "phase": progress.phase}
        if progress.train_loss is not None:
            postfix["loss"] = f"{progress.train_loss:.3f}"
            postfix["acc"] = f"{progress.train_acc:.1%}"
        if progress.test_acc is not None:
            postfix["test_acc"] = f"{progress.test_acc:.1%}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    return on_progress


def _exit_code(run, final: str, dist) -> int:
    """Print the run's final line and path (rank 0); 0 when it finished, stopped or was pruned, 2 for bad input, else 1."""
    if dist is not None and not dist.is_main:
        return 0 if final in ASKED_ENDINGS else 1
    status = run.status()
    message = status.message
    if status.status != final:  # the ending could not be recorded: status.json itself failed to be written
        message = f"status.json could not be written, so the run reads {status.status}; resume to continue"
    print(f"{final}: {message}", file=sys.stderr)
    print(run.path)
    if final in ASKED_ENDINGS:
        return 0
    if status.cause == INPUT_ERROR:
        return 2
    return 1


def _run_with_progress(run, resume: bool, quiet: bool = False, dist=None) -> int:
    """Train in this thread with a tqdm bar (none when quiet).

    Ctrl-C (SIGINT) or SIGTERM stops cooperatively with a checkpoint; a second Ctrl-C ends the
    process at once and the run is then found interrupted.
    """
    from wrn_core.engine.loop import train_run

    bar, quiet = _progress_bar(run.name, quiet)
    try:
        final = train_run(run, stop_event=_STOP, on_progress=_progress_printer(bar, quiet), resume=resume, dist=dist)
    finally:
        bar.close()
        if dist is not None:
            from wrn_core.engine import distributed

            distributed.close(dist)
    return _exit_code(run, final, dist)


class RankError(Exception):
    """Rank 0 failed before training; the other ranks leave with its exit code and print nothing."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _on_rank0(dist, action):
    """Run action() on rank 0 only and share its outcome: its value, or its error on every rank.

    Rank 0 raises the error itself (the CLI prints its one line); the others raise RankError.
    """
    from wrn_core.engine import distributed

    if not dist.enabled:
        return action()
    outcome: tuple[str, object] = ("ok", None)
    error: BaseException | None = None
    if dist.is_main:
        try:
            outcome = ("ok", action())
        except (ConfigError, RunStoreError, UsageError, OSError) as exc:
            error, outcome = exc, ("error", 1 if isinstance(exc, OSError) else 2)
        except Exception as exc:  # noqa: BLE001 - e.g. DataError; never leave the other ranks waiting
            from wrn_core.errors import DataError

            error, outcome = exc, ("error", 2 if isinstance(exc, DataError) else 1)
    outcome = distributed.broadcast(outcome, dist)
    if error is not None:
        raise error
    if outcome[0] == "error":
        raise RankError(int(outcome[1]))  # type: ignore[arg-type]
    return outcome[1]


def _memory_refusal(config: TrainConfig, force: bool) -> None:
    """ConfigError when the run is predicted not to fit its device's free memory (unless forced)."""
    from wrn_core.engine.resume import memory_refusal

    need = memory_refusal(config)
    if need is not None and not force:
        raise ConfigError(f"{need}: it would not fit; use a smaller batch or model, another device, or --force")


def cmd_train(args: argparse.Namespace) -> int:
    """Create a run from the flags (locked by rank 0) and train it."""
    from wrn_core.engine import distributed
    from wrn_core.engine.resume import preflight

    dist = distributed.from_env()
    config = train_config_from_args(args).replace(world_size=dist.world_size)
    preflight(config)
    _memory_refusal(config, args.force)
    store = RunStore(args.runs_dir)
    distributed.init(dist, distributed.device_for(config.device, dist).type)
    created = []

    def create() -> str:
        # Created locked (by rank 0): from its first file on, the run is this process's to train.
        created.append(store.create(config, args.name, hold="training"))
        return created[0].name

    name = _on_rank0(dist, create)
    run = created[0] if created else store.get(name)
    return _run_with_progress(run, resume=False, quiet=args.quiet or not dist.is_main, dist=dist)


def cmd_resume(args: argparse.Namespace) -> int:
    """Take a saved run's lock, plan the epochs left (or added) and train them."""
    from wrn_core.engine import distributed
    from wrn_core.engine.resume import prepare_resume

    dist = distributed.from_env()
    store = RunStore(args.runs_dir)
    run = store.get(args.name)
    distributed.init(dist, distributed.device_for(run.read_config().device, dist).type)

    def prepare():
        run.acquire("training")  # a second trainer stops here: "run X is being trained by pid P on HOST"
        try:
            return prepare_resume(run, args.epochs, args.extend_schedule, world_size=dist.world_size,
                                  check=lambda config: _memory_refusal(config, args.force))
        except BaseException:
            run.release()
            raise

    plan = _on_rank0(dist, prepare)
    if dist.is_main and plan.note:
        print(f"note: {plan.note}", file=sys.stderr)  # before the first step, so nothing trains unexplained
    if dist.is_main and plan.warning:
        print(f"warning: {plan.warning}", file=sys.stderr)
    return _run_with_progress(run, resume=True, quiet=args.quiet or not dist.is_main, dist=dist)
