"""The rules every caller shares before a run trains: the pre-flight, and whether and how a run can resume."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from wrn_core.config import ConfigError, TrainConfig
from wrn_core.data import check_available
from wrn_core.engine.devices import check_memory, resolve_device
from wrn_core.engine.optim import lr_factor
from wrn_core.model.flops import input_size
from wrn_core.store import Run, RunStoreError
from wrn_core.store.records import STOPPED, RunStatus


def preflight(config: TrainConfig) -> str:
    """Check what can be checked before a run is created; returns the device type to queue on.

    Raises ConfigError or DataError with a one-line message (CUDA missing, data not found, a batch
    that does not divide over the data-parallel processes).
    """
    device = resolve_device(config.device)
    if config.batch_size % config.world_size != 0:
        raise ConfigError(
            f"batch size {config.batch_size} does not divide over {config.world_size} processes; "
            f"use a multiple of {config.world_size} (--batch-size is the global batch)"
        )
    check_available(config)
    return device.type



@dataclass(frozen=True)
class ResumePlan:
    """What a resume will do, decided before it starts."""

    device: str  # device type to queue on
    config: TrainConfig  # the config it trains (target and schedule plan updated)
    done_epochs: int
    warning: str | None  # e.g. continuing a schedule that ended at lr 0
    note: str | None = None  # what was decided for the caller, e.g. the schedule restarted because it ended at lr 0


def resume_target_error(status: RunStatus, config_epochs: int, epochs: int | None) -> str | None:
    """Why a run with this status cannot resume to `epochs` (None: its own target), or None if it can.

    The one rule the CLI, the job manager and the pages share.
    """
    if status.active:
        return f"it is {status.status}"
    done = status.epoch
    if epochs is not None:
        if epochs <= done:
            return f"it has already completed {done} epochs; ask for more than {done}"
        return None
    if done >= config_epochs:
        return f"it already finished its {config_epochs} epochs; give a larger number of epochs to continue"
    return None


# Steps per epoch used to read the plan's final lr: any positive number gives the same end value.
_PLAN_STEPS = 1000


def extension_lr_ends_at_zero(config: TrainConfig) -> bool:
    """Whether the learning-rate plan (schedule and extensions so far) ends at lr 0, as one-cycle and cosine do:
    epochs added with `continue` would then train nothing."""
    return lr_factor(config, config.planned_epochs * _PLAN_STEPS, _PLAN_STEPS) <= 1e-12


def default_extend(config: TrainConfig) -> str:
    """How added epochs extend this plan unless the user says otherwise: `restart` where it ended at lr 0,
    else `continue` (a step or constant schedule keeps training at the lr it reached)."""
    return "restart" if extension_lr_ends_at_zero(config) else "continue"


def restart_note(config: TrainConfig) -> str:
    """The one line saying why added epochs restart the schedule by default."""
    return (f"the {config.schedule} schedule ended at learning rate 0, so the added epochs restart it "
            f"(choose 'continue' to keep lr 0)")


def memory_refusal(config: TrainConfig) -> str | None:
    """'<need> of <free>' when the run is predicted not to fit its device's free memory, else None."""
    check = check_memory(config, input_size(config) or (32, 32))
    return None if check.fits else check.message()


def prepare_resume(run: Run, epochs: int | None = None, extend: str | None = None, world_size: int = 1,
                   check: Callable[[TrainConfig], None] | None = None) -> ResumePlan:
    """Check that a run can continue (optionally to `epochs` in total) and record the new target.

    `check` gets the planned config (world size set) after the shared checks and before anything is
    written: a caller's own refusal (the CLI's memory pre-flight) then leaves the run as it was.

    The caller must hold the run's lock (Run.acquire). Raises RunStoreError (nothing left to do),
    RunCorruptError (config or checkpoint unreadable) or ConfigError/DataError from preflight,
    before anything is written. The caller then trains with resume=True.
    extend None: default_extend(config) (restart a plan that ended at lr 0, said in plan.note).
    """
    if not run.lock.held:
        raise RunStoreError(f"run {run.name!r} must be locked before it is resumed")
    status = run.status()
    config = run.read_config()
    if status.active:
        # We hold the lock, so whoever queued or trained it is this process (or its launcher), or gone.
        status = replace(status, status=STOPPED)
    reason = resume_target_error(status, config.epochs, epochs)
    if reason is not None:
        raise RunStoreError(f"cannot resume run {run.name!r}: {reason}")
    done = status.epoch
    warning = note = None
    if epochs is not None:
        extended = epochs > config.planned_epochs
        if extend is None:
            extend = default_extend(config)
            if extended and extend == "restart":
                note = restart_note(config)
        config = config.with_target(epochs, extend)
        if extended and extend == "continue":
            start = config.extensions[-1].from_epoch
            if lr_factor(config, start * 1000, 1000) == 0.0:
                warning = (f"the {config.schedule} schedule ended at learning rate 0, so continuing it trains nothing; "
                           f"use the 'restart' extension to run the schedule again over the added epochs")
    if run.has_checkpoint():
        run.check_checkpoint()
    device = preflight(config.replace(world_size=world_size))
    if check is not None:
        check(config.replace(world_size=world_size))
    run.write_config(config)
    run.write_status(epochs=config.epochs, finished_at=None)
    return ResumePlan(device=device, config=config, done_epochs=done, warning=warning, note=note)

