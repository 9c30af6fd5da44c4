"""Which settings mattered for a set of runs: parallel coordinates and random-forest importance, the forest
computed beside the page (a fragment polls it) and shared by every session."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pandas as pd
import streamlit as st

from dashboard import formatting
from wrn_core.analysis import ImportanceError, importance_frame
from wrn_core.analysis.run_tables import STATUS_METRIC_COLUMNS
from wrn_core.errors import one_line
from wrn_core.plots import parallel_coordinates_figure

BEST, FINAL = STATUS_METRIC_COLUMNS[("test_acc", "best")], STATUS_METRIC_COLUMNS[("test_acc", "last")]  # runs table columns

RANKING = "Ranking the settings (a random forest of these runs)…"
POLL_S = 0.5  # seconds between looks at a ranking still being computed


@st.cache_resource(show_spinner=False)
def _importance_executor() -> ThreadPoolExecutor:
    # One worker: a ranking nobody waits for any more (the filter changed again) delays the next by ≤ 0.3 s.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="importance")


def _rank(frame: pd.DataFrame, params: tuple, target: str) -> tuple[pd.DataFrame | None, str]:
    try:
        return importance_frame(frame, list(params), target), ""
    except ImportanceError as exc:
        return None, one_line(exc)


# The forest takes ~0.3 s for 500 runs: it is computed beside the page (a page that waited for it would
# miss the 0.5 s a filter change may take), once per distinct table, and shared by every session.
@st.cache_resource(show_spinner=False, max_entries=32)
def _importance_future(digest: str, params: tuple, target: str, _frame: pd.DataFrame) -> Future:
    return _importance_executor().submit(_rank, _frame, params, target)


def importance_of(frame: pd.DataFrame, params: Sequence[str], target: str) -> Future:
    """importance_frame of these runs as a Future of (table, '') or (None, the one-line reason it cannot answer)."""
    columns = [c for c in [*params, "status", target, BEST, FINAL] if c in frame.columns]
    data = frame[list(dict.fromkeys(columns))].reset_index(drop=True)  # only what importance reads
    digest = hashlib.sha1(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes()
                          + repr((list(data.columns), tuple(params), target)).encode()).hexdigest()
    future = _importance_future(digest, tuple(params), target, data)
    wait([future], timeout=0.05)  # the one-line refusals (too few runs, nothing varies) come at once
    return future


def _await_ranking(future: Future) -> None:
    """A fragment polling a ranking in progress: the whole page reruns once it is ready (and polling ends)."""
    if future.done():
        st.rerun(scope="app")
    st.caption(RANKING)


def draw_importance(frame: pd.DataFrame, params: Sequence[str], target: str, key: str) -> None:
    """Parallel coordinates (params → target) and the parameter-importance table of these runs; when
    importance cannot answer, its one-line reason as st.info (while it is computed, a caption saying so)."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(parallel_coordinates_figure(frame, params, target), key=key + "parcoords")
    with right:
        future = importance_of(frame, params, target)
        if not future.done():
            st.fragment(run_every=POLL_S)(_await_ranking)(future)
            return
        table, reason = future.result()
        if table is None:
            st.info(formatting.plain(reason))
            return
        st.dataframe(
            table, hide_index=True, key=key + "importance", placeholder="—",
            # The note says which settings never vary; without one it would only push the table past its column.
            column_order=[c for c in table.columns if c != "note" or table["note"].astype(bool).any()],
            column_config={
                "importance": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f",
                                                              help="random-forest importance; sums to 1"),
                "correlation": st.column_config.NumberColumn(format="%+.2f",
                                                             help="Spearman rank correlation with the accuracy: "
                                                                  "+ higher values, higher accuracy"),
            },
        )
        st.caption("Importance: how much a random forest of these runs leans on each setting to predict the "
                   "accuracy (finished runs only). Correlation: its sign says which way the setting helps.")
