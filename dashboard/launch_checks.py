"""What the pages check before Launch: the trainer's refusals, the predicted training time, measured peak memory."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.jobs import get_job_manager
from wrn_core.config import ConfigError, TrainConfig
from wrn_core.errors import DataError, one_line

@st.cache_data(show_spinner=False, ttl=5, max_entries=64)
def _launch_problem_cached(config_json: str) -> str | None:
    from wrn_core.engine.resume import preflight

    try:
        preflight(TrainConfig.from_dict(json.loads(config_json)))
    except (ConfigError, DataError) as exc:
        return one_line(exc)
    return None


def launch_problem(config: TrainConfig) -> str | None:
    """What Launch would refuse this config for before training (no such device, the data missing, a batch that
    does not divide over the GPUs), in one line, or None; the same check Launch makes, re-made at most every 5 s."""
    return _launch_problem_cached(json.dumps(config.to_dict(), sort_keys=True))


def forget_launch_problems() -> None:
    """Check again at once (after a download put the data in place)."""
    _launch_problem_cached.clear()


# The predicted training time, as the Sweep page's pre-flight makes it (wrn_core.sweeps.probe): timed steps of
# the engine's own train step on the run's device, plus a new process's start-up. Timed beside the page (a wide
# model on a CPU takes minutes to time, and the page must not wait), one probe at a time, shared by every session.
# Unlike the Sweep page it loads no data (an image folder's first decode can take minutes): that comes on top.
PROBE_STEPS = 1  # timed steps after the warm-up one: the Train page times every model the form settles on
PROBE_TTL_S = 1800  # seconds a timing is trusted


@st.cache_resource(show_spinner=False)
def _probe_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="time-probe")


def _one_cell(config: TrainConfig):
    from wrn_core.sweeps import make_sweep

    return make_sweep("predicted-time", config, [config.model.blocks], [config.model.widen_factor], [config.seed])


def _probe(config: TrainConfig):
    """(Probe, '') or (None, why it could not time the steps, in one line)."""
    from wrn_core.sweeps import probe

    try:
        return probe(_one_cell(config), steps=PROBE_STEPS, measure_startup=False), ""
    except Exception as exc:  # noqa: BLE001 - any failure is a line beside Launch, never a dead thread
        return None, one_line(exc)


# ttl: a time measured while the machine was busy (another run training, say) is measured again later.
@st.cache_resource(show_spinner=False, max_entries=32, ttl=PROBE_TTL_S)
def _probe_future(key: str, _config: TrainConfig) -> Future:
    return _probe_executor().submit(_probe, _config)


@st.cache_resource(show_spinner=False, ttl=PROBE_TTL_S)
def _interpreter_future() -> Future:
    from wrn_core.sweeps.probe import interpreter_seconds

    return _probe_executor().submit(interpreter_seconds)


def predicted_time(config: TrainConfig) -> tuple[float | None, str | None]:
    """(predicted seconds to train, None) once this model, batch, optimizer, device and image size have been
    timed; (None, None) while they are; (None, the reason) when they could not be. Loading the data is left out."""
    from wrn_core.model.flops import input_size

    values = config.to_dict()
    key = json.dumps([values["model"], values["batch_size"], values["optimizer"], values["device"],
                      input_size(config)], sort_keys=True)
    startup, future = _interpreter_future(), _probe_future(key, config)
    if not (future.done() and startup.done()):
        return None, None
    measured, reason = future.result()
    if measured is None:
        return None, reason
    return _predicted_cached(json.dumps(values, sort_keys=True), key, startup.result(), measured, config)


# ttl: an image folder's size is listed again now and then (images may be added).
@st.cache_data(show_spinner=False, ttl=10, max_entries=64)
def _predicted_cached(config_json: str, key: str, startup_s: float, _measured, _config: TrainConfig):
    from dataclasses import replace

    from wrn_core.sweeps import preflight_frame

    try:
        plan = preflight_frame(_one_cell(_config), replace(_measured, startup_seconds=startup_s))
    except (ConfigError, DataError, OSError) as exc:
        return None, one_line(exc)
    return float(plan["predicted_s"].iloc[0]), None


@st.cache_data(show_spinner=False, ttl=5)
def _measured_memory_cached(root: str, model) -> list[dict[str, Any]]:
    from wrn_core.engine.monitor import measured_memory
    from wrn_core.store import RunStore

    return measured_memory(RunStore(Path(root)), model)


def measured_memory(model) -> list[dict[str, Any]]:
    """Runs of this model with their measured peak memory (re-read at most every 5 s)."""
    return _measured_memory_cached(str(get_job_manager().store.root), model)
