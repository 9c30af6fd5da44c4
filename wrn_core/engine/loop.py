"""The training loop: set up, then one visible per-epoch loop that writes the run directory and reports progress.

    train_run(run)            # holds the run's lock from start to end
      begin_loading()         # status 'running': loading data
      build_session()         # (engine.build) data, model, optimizer, schedule, loaders; the checkpoint on resume
      begin_training()        # status: what it trains on
      while epochs remain:
          train_epoch()       # steps, per-step points at each logging point, stop requests
          finish_epoch()      # evaluate, checkpoint, record the epoch, status
      finish()                # status 'finished' (or _stop(): 'stopped'/'pruned' with a checkpoint; _fail(): how it raised)
"""

from __future__ import annotations

import gc
import math
import os
import socket
import threading
import time
from typing import Any

import torch

from wrn_core.data import loading_message
from wrn_core.engine import distributed
from wrn_core.engine.build import build_session
from wrn_core.engine.checkpoint import snapshot
from wrn_core.engine.distributed import Dist, RankView
from wrn_core.engine.outcome import Diverged, ending_for
from wrn_core.engine.reporter import ProgressHook, Reporter
from wrn_core.engine.session import Interval, Position, Session, checkpoint_state
from wrn_core.engine.step import Evaluation, evaluation_pass, train_step
from wrn_core.store import Run, records
from wrn_core.store.lock import ROLE_TRAINING
from wrn_core.store.records import COMPILING, DONE, EVALUATING, FINISHED, LOADING, PRUNED, RUNNING, STOPPED, TRAINING


def train_run(
    run: Run,
    stop_event: threading.Event | None = None,
    on_progress: ProgressHook | None = None,
    resume: bool = False,
    dist: Dist | None = None,
) -> str:
    """Train the run described by run/config.json; returns the final status.

    Holds the run's lock from start to end (RunBusyError, before anything is written, if another
    process holds it). Never raises for training problems: they end in status stopped, finished,
    diverged or failed with a one-line message in status.json (and a traceback in error.txt for
    unexpected errors). Points recorded before a failure stay in metrics.jsonl.

    Data-parallel (dist from torchrun, process group joined): every rank calls this; rank 0 alone
    holds the lock and writes, the others see the run through a RankView.
    """
    stop_event = stop_event or threading.Event()
    dist = dist or Dist()
    if not dist.is_main:
        run = RankView(run)  # type: ignore[assignment]
    run.acquire(ROLE_TRAINING)
    if dist.is_main:
        run.clear_stop_request()  # a request left from before this start was for a trainer that has gone
    report = Reporter(run, on_progress if dist.is_main else None)
    session: Session | None = None
    position = Position()
    try:
        begin_loading(run, report)
        session, position = build_session(run, resume, report, dist)
        begin_training(run, session, position, stop_event, report)
        while position.epoch < session.config.epochs:
            epoch_start = time.perf_counter()
            if not train_epoch(run, session, position, stop_event, report):
                return _stop(run, session, position, report)
            finish_epoch(run, session, position, epoch_start, report)
        return finish(run, session, position, report)
    except Exception as exc:  # noqa: BLE001 - any failure must end as a recorded status
        return _fail(run, exc, session, position, dist)
    finally:
        if session is not None and session.checkpoints is not None:
            session.checkpoints.wait_quietly()
        session = None
        _release_memory()
        run.remove_temporary_files()
        run.release()


# ---------------------------------------------------------------------------------------------
# Setup


def begin_loading(run: Run, report: Reporter) -> None:
    """Say the run is running and what data it loads (a folder: how many images, decoded or cached)."""
    run.write_status(RUNNING, _loading_message(run), started_at=time.time(), pid=os.getpid(), host=socket.gethostname(),
                     executor=_executor(), finished_at=None, cause=None, node=os.environ.get(records.NODE_ENV) or None,
                     gpus=os.environ.get("CUDA_VISIBLE_DEVICES"))
    report.send(None, Position(), LOADING)


def begin_training(run: Run, session: Session, position: Position, stop_event: threading.Event, report: Reporter) -> None:
    """Say what the session trains on, take a first system reading, and heed a stop asked for while it loaded."""
    config, dist = session.config, session.dist
    run.write_status(
        RUNNING, f"training on {session.device.type}" + (f" × {dist.world_size} processes" if dist.enabled else ""),
        params=session.params, device=session.device.type, world_size=dist.world_size,
        epochs=config.epochs, model_name=config.model.name, dataset=config.dataset, optimizer=config.optimizer,
        epoch=position.epoch, step=position.step, images_seen=position.images_seen,
    )
    record_system(run, session, position)
    if dist.is_main and run.stop_requested():
        stop_event.set()  # asked for while the data loaded: stop at the first batch
    report.send(session.plan, position, COMPILING if config.compile and position.step == 0 else TRAINING)


def _executor() -> str:
    """What started this trainer, as its launcher said in the environment (local unless a known executor)."""
    named = os.environ.get(records.EXECUTOR_ENV, "")
    return named if named in records.EXECUTORS else records.EXECUTOR_LOCAL


def _loading_message(run: Run) -> str:
    """'loading data: <what>' for the status while the data loads; plain 'loading data' if the config is unreadable
    (build_session then reports that)."""
    try:
        return loading_message(run.read_config())
    except Exception:  # noqa: BLE001 - a status line must never stop the run from reporting its real error
        return "loading data"


# ---------------------------------------------------------------------------------------------
# The epochs


def train_epoch(run: Run, session: Session, position: Position, stop_event: threading.Event, report: Reporter) -> bool:
    """Train from the position to the end of the epoch; False if a stop was asked for (position is then exact).

    One process stops within one batch; data-parallel ranks agree on a stop at the next logging
    point, so that all of them stop at the same step.
    """
    config, device, dist = session.config, session.device, session.dist
    session.model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    interval = Interval(device, started=time.perf_counter())
    batches = session.train_loader.epoch(position.epoch, start_batch=position.batch_in_epoch)
    if position.epoch + 1 < config.epochs:
        session.train_loader.prefetch(position.epoch + 1)  # drawn while this epoch trains
    for images, labels in batches:
        if not dist.enabled and stop_event.is_set():
            position.train_seconds += time.perf_counter() - interval.started
            position.add_interval(*interval.local_sums())
            return False
        first_step_start = time.perf_counter() if position.step == 0 else None
        loss, logits = train_step(session.forward, session.optimizer, images, labels, device, config.label_smoothing)
        session.scheduler.step()
        position.add_step(labels.shape[0] * dist.world_size)
        interval.add(loss, logits, labels, position.step)
        if first_step_start is not None and config.compile:
            _record_compile(run, session, position, first_step_start)
        if position.step % config.log_every == 0 or position.batch_in_epoch == session.steps_per_epoch:
            if not _logging_point(run, session, position, interval, stop_event, report):
                return False
    position.train_seconds += time.perf_counter() - interval.started
    return True


def _logging_point(run: Run, session: Session, position: Position, interval: Interval, stop_event: threading.Event,
                   report: Reporter) -> bool:
    """Record the interval's per-step point (one host sync) and report it; False when data-parallel ranks agreed
    to stop before the epoch's end. Raises Diverged at the first non-finite loss."""
    dist = session.dist
    if dist.is_main and not stop_event.is_set() and run.stop_requested():
        stop_event.set()  # a stop asked for in the run directory (another process, maybe another machine)
    loss_sum, correct, images, first_bad, stop_asked = interval.totals(stop_event.is_set(), dist)
    if first_bad > 0:
        raise Diverged(int(first_bad))
    seconds = interval.restart(time.perf_counter())
    position.train_seconds += seconds
    loss, acc = loss_sum / images, correct / images
    session.recent_rate = report.rate.add(images, seconds)  # smoothed; evaluation never enters it
    run.append_metrics([records.step_record(
        step=position.step, epoch=position.epoch_progress(session.steps_per_epoch), images_seen=position.images_seen,
        time=position.train_seconds, train_loss=loss, train_acc=acc, lr=session.current_lr,
    )])
    position.add_interval(loss_sum, correct, int(images))
    if session.monitor.due():
        record_system(run, session, position)
    if session.checkpoints is not None:
        session.checkpoints.raise_if_failed()
    report.send(session.plan, position, TRAINING, loss, acc, session.recent_rate)
    return not (dist.enabled and stop_asked > 0 and position.batch_in_epoch < session.steps_per_epoch)


def _record_compile(run: Run, session: Session, position: Position, first_step_start: float) -> None:
    """The `compile` event: how long torch.compile's warm-up and the first step took."""
    if session.device.type == "cuda":
        torch.cuda.synchronize(session.device)
    seconds = time.perf_counter() - first_step_start
    run.append_metrics([records.event_record(
        "compile", f"torch.compile warm-up and first step took {seconds:.1f} s", position.step, position.epoch,
        position.train_seconds + seconds, seconds)])


def finish_epoch(run: Run, session: Session, position: Position, epoch_start: float, report: Reporter) -> None:
    """Evaluate, hand the checkpoint to its writer, record the epoch and update the status.

    The epoch record says how long this boundary kept training waiting (`boundary_s`, evaluation
    excluded) and how much of that was waiting for the previous checkpoint (`checkpoint_wait_s`).
    """
    config, device = session.config, session.device
    boundary_start = time.perf_counter()
    rate = session.recent_rate
    train_phase_seconds = boundary_start - epoch_start
    report.send(session.plan, position, EVALUATING, rate=rate)
    evaluation = evaluation_pass(session.evaluator, session.test_loader, device, session.dist,
                                 measure_width=config.measures_width(position.epoch + 1))
    test_loss, test_acc = evaluation.loss, evaluation.accuracy
    eval_seconds = time.perf_counter() - boundary_start
    position.train_seconds += eval_seconds
    if not math.isfinite(test_loss):
        raise Diverged(position.step)
    checks = _data_parallel_checks(session, position.epoch)
    train_loss, train_acc, trained = position.end_epoch(test_acc)
    waited = _checkpoint(run, session, position, durable=position.epoch >= config.epochs)
    run.append_metrics([records.epoch_record(
        epoch=position.epoch, step=position.step, images_seen=position.images_seen, time=position.train_seconds,
        train_loss=train_loss, train_acc=train_acc, test_loss=test_loss, test_acc=test_acc, lr=session.current_lr,
        epoch_seconds=time.perf_counter() - epoch_start,
        images_per_s=trained / train_phase_seconds if train_phase_seconds > 0 else None,
        peak_mem_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        boundary_s=time.perf_counter() - boundary_start - eval_seconds, checkpoint_wait_s=waited,
        **checks,
    )] + _width_records(position, evaluation))
    record_system(run, session, position)  # at least one reading per epoch, however short
    run.write_status(
        RUNNING, f"epoch {position.epoch}/{config.epochs}: test accuracy {test_acc:.1%}", epoch=position.epoch,
        step=position.step, images_seen=position.images_seen, train_seconds=position.train_seconds,
        best_test_acc=position.best_test_acc, final_test_acc=test_acc,
    )
    report.send(session.plan, position, TRAINING, rate=rate)


def _width_records(position: Position, evaluation: Evaluation) -> list[dict[str, Any]]:
    """The epoch's width record, when its evaluation measured width use (over every rank's shard)."""
    if evaluation.width is None:
        return []
    return [records.width_record(epoch=position.epoch, step=position.step, time=position.train_seconds,
                                 images=evaluation.images, layers=evaluation.width)]


def _data_parallel_checks(session: Session, epoch: int) -> dict[str, Any]:
    """For a data-parallel epoch: whether every rank holds the same weights and the shards were disjoint."""
    dist = session.dist
    if not dist.enabled:
        return {}
    with torch.no_grad():
        weights = torch.stack([p.detach().double().sum() for p in session.model.parameters()]).tolist()
    replicas = distributed.gather(weights, dist)
    shards = distributed.gather(session.train_loader.epoch_indices(epoch).cpu().tolist(), dist)
    seen = [index for shard in shards for index in shard]
    return {
        "world_size": dist.world_size,
        "replicas_agree": all(r == replicas[0] for r in replicas),
        "shards_disjoint": len(set(seen)) == len(seen),
        "images_per_epoch": len(seen),
    }


def _checkpoint(run: Run, session: Session, position: Position, durable: bool = False) -> float:
    """Snapshot the state and hand it to the checkpoint writer; returns the seconds spent waiting for disk.

    With durable, wait until it is written: the last epoch's checkpoint is on disk before the status
    says the run has finished. Every rank takes part (the RNG states are gathered); rank 0 writes.
    """
    state = checkpoint_state(session, position)
    if not session.dist.is_main:
        return 0.0
    assert session.checkpoints is not None
    waited = session.checkpoints.submit(snapshot(state, session.checkpoints.pinned))
    if durable:
        waited += session.checkpoints.wait()
    return waited


def record_system(run: Run, session: Session, position: Position) -> None:
    """Append a `system` record: process CPU and memory, CUDA memory, GPU load (see engine.monitor)."""
    run.append_metrics([records.system_record(
        step=position.step, epoch=position.epoch_progress(session.steps_per_epoch),
        time=position.train_seconds, wall_time=time.time(), **session.monitor.sample(),
    )])


# ---------------------------------------------------------------------------------------------
# The end: finished, stopped, or how it raised


def finish(run: Run, session: Session, position: Position, report: Reporter) -> str:
    """Every epoch done (the last checkpoint is on disk): record `finished`."""
    run.write_status(FINISHED, f"finished {session.config.epochs} epochs: best test accuracy {position.best_test_acc:.1%}",
                     finished_at=time.time(), train_seconds=position.train_seconds)
    report.send(session.plan, position, DONE)
    return FINISHED


def _stop(run: Run, session: Session, position: Position, report: Reporter) -> str:
    """A stop asked for mid-epoch: checkpoint the exact position (on disk before the status), then record `stopped`,
    or `pruned` where the run directory's stop request asks for it (a sweep's pruner, with its reason)."""
    _checkpoint(run, session, position, durable=True)
    epoch_at = position.epoch_progress(session.steps_per_epoch)
    ends, why = run.read_stop_request() if run.stop_requested() else (STOPPED, "")
    if ends == PRUNED:
        message = (f"pruned at epoch {epoch_at:.2f} (step {position.step})" + (f": {why}" if why else "")
                   + f"; `python -m wrn_core resume {run.name}` continues it by hand")
    else:
        message = f"stopped at epoch {epoch_at:.2f} (step {position.step}); resume to continue"
    run.write_status(ends, message, step=position.step, images_seen=position.images_seen,
                     train_seconds=position.train_seconds, finished_at=time.time())
    run.clear_stop_request()  # answered: a later resume must not stop at once
    report.send(session.plan, position, DONE)
    return ends


def _fail(run: Run, exc: Exception, session: Session | None, position: Position, dist: Dist) -> str:
    """The session raised: record the status, message and cause it ends with (outcome.ending_for)."""
    status, message, cause = ending_for(exc, session.config if session else None, position.step,
                                        run.error_path if dist.is_main else None)
    if session is not None and session.checkpoints is not None:
        # Before _end removes temporary files: a checkpoint still being written would lose its file.
        session.checkpoints.wait_quietly()
    return _end(run, status, message, position, cause)


def _end(run: Run, status: str, message: str, position: Position, cause: str) -> str:
    run.remove_temporary_files()  # a write cut short may have left one; it also frees the space it took
    try:
        run.write_status(status, message, finished_at=time.time(), step=position.step, cause=cause)
    except OSError:
        # Still no room for status.json: once the lock is released, readers find the run interrupted.
        pass
    return status


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
