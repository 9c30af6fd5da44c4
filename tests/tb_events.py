"""Read an exported TensorBoard directory back with TensorBoard's own reader: scalars by tag, the HParams session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.hparams.metadata import EXPERIMENT_TAG, SESSION_START_INFO_TAG


@dataclass
class ReadBack:
    scalars: dict[str, list[tuple[int, float]]]  # tag -> (step, value) in file order
    wall_times: dict[str, list[float]]  # tag -> wall time of each point (unix seconds)
    hparams: dict[str, object]  # the session's hparams: number, string or bool values
    metric_tags: list[str]  # the experiment's metrics, as the HParams view lists them


def _value(value) -> object:
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value,
            "bool_value": value.bool_value}[kind]


def read_back(directory: Path) -> ReadBack:
    """Every scalar and the HParams plugin data of the event files directly in `directory` (all of them kept)."""
    accumulator = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    scalars, wall_times = {}, {}
    for tag in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(tag)
        scalars[tag] = [(e.step, e.value) for e in events]
        wall_times[tag] = [e.wall_time for e in events]
    content = accumulator.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content[SESSION_START_INFO_TAG]).session_start_info
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content[EXPERIMENT_TAG]).experiment
    return ReadBack(scalars, wall_times, {k: _value(v) for k, v in session.hparams.items()},
                    [m.name.tag for m in experiment.metric_infos])


def event_files(directory: Path) -> list[Path]:
    """The event files under directory, at any depth (an add_hparams-style subdirectory would show here)."""
    return sorted(p for p in directory.rglob("events.out.tfevents.*"))
