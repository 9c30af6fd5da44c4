"""Width use over training on the pages: the layers × epochs map (Train, Inspect) and the runs' per-group comparison (Runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import streamlit as st

from dashboard import cached_reads

from wrn_core.analysis.width import WIDTH_METRICS, group_frame, width_frame, width_metrics
from wrn_core.plots.width import group_width_figure, width_map
from wrn_core.store import Run, RunStore

MAP_CAPTION = ("Each row a ReLU in forward order (named as in the layer table), each column an epoch's test pass. "
               "Colour: effective width (how many channels carry the signal, the participation ratio) ÷ the channels "
               "allocated; hover for the dead channels (zero on ≥ 99% of positions).")
DEAD_CAPTION = ("Colour: the share of each layer's channels that are dead (zero on ≥ 99% of positions over the test "
                "images); hover for the effective width.")
NO_WIDTH = ("This run measures no width use (`--width-every 0`); runs measure it on each epoch's test pass unless "
            "told not to.")


# Shared like cached_reads's live figure (cache_resource: no unpickling; nobody mutates it): rebuilt when metrics.jsonl,
# the colouring or the planned epochs change, not on every second the live view polls.
@st.cache_resource(show_spinner=False, max_entries=16)
def _map_cached(path: str, stamp: tuple[int, int], color_by: str, epochs: int | None):
    return width_map(width_frame(Run(Path(path)).read_metrics()), color_by, epochs)


def width_map_view(run: Run, planned_epochs: int | None, key: str) -> None:
    """The run's layers × epochs map with a toggle to colour by dead channels; `key` prefixes its widgets."""
    dead = st.toggle("colour by dead channels", key=key + "_dead",
                     help="off: effective ÷ allocated width; on: the share of each layer's channels that are dead")
    path, stamp = cached_reads.metrics_stamp(run)
    figure = _map_cached(path, stamp, "dead" if dead else "effective", int(planned_epochs) if planned_epochs else None)
    st.plotly_chart(figure, key=key + "_chart")
    st.caption(NO_WIDTH if _width_every(run) == 0 else DEAD_CAPTION if dead else MAP_CAPTION)


def _width_every(run: Run) -> int | None:
    """The run's --width-every (None when its config.json cannot be read: the page says why elsewhere)."""
    try:
        value = run.read_config_dict().get("width_every", 1)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def runs_width_comparison(records: Mapping[str, list[dict[str, Any]]], colors: Mapping[str, str]) -> None:
    """The ticked runs' per-group effective width over epochs, one panel per group so that runs of any k line up."""
    runs = [(name, group_frame(run_records), colors.get(name, "#636efa")) for name, run_records in records.items()]
    measured = [entry for entry in runs if not entry[1].empty]
    st.plotly_chart(group_width_figure(measured), key="runs_width_chart")
    missing = [name for name, groups, _ in runs if groups.empty]
    caption = ("Per group, the mean over its ReLUs of effective ÷ allocated width, at each epoch's test pass: a line "
               "that falls is a group that stopped using channels it has.")
    if missing:
        caption += f" No width records: {', '.join(missing)}."
    st.caption(caption)


def with_width_columns(store: RunStore, cells: pd.DataFrame) -> pd.DataFrame:
    """A sweep's cells with a column per WIDTH_METRICS (each group's effective ÷ allocated width at the cell's last
    measured epoch; None before one), from each run's records as the live view reads them (re-read on change)."""
    values = []
    for name in cells["run"]:
        run = Run(store.root / name)
        values.append(width_metrics(cached_reads.read_records(run)) if run.path.is_dir() else dict.fromkeys(WIDTH_METRICS))
    return cells.assign(**{column: [v[column] for v in values] for column in WIDTH_METRICS})
