"""The Sweep page's Cluster table: a Ray sweep's nodes as its driver last wrote them, and the cells on each."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import messages
from wrn_core.store import RunStoreError
from wrn_core.store.lock import queue_lock_name, queue_owner
from wrn_core.sweeps import cluster_frame, cluster_table, nodes_freshness, read_nodes


def draw_cluster(root, name: str, cells: pd.DataFrame, active: bool) -> None:
    """The nodes of the sweep's Ray cluster (nothing for a sweep no Ray driver has written nodes for): address,
    CPUs, GPUs, alive or lost, and which cell runs on which, with when the driver wrote them."""
    try:
        nodes = read_nodes(root, name)
    except RunStoreError as exc:
        messages.show_error(exc)
        return
    if nodes is None:
        return
    st.subheader("Cluster")
    driving = queue_owner(root, queue_lock_name(name)) is not None  # a live driver holds the sweep's queue lock
    now = time.time()
    line, stale = nodes_freshness(nodes, now, driving, active)
    (st.warning if stale else st.caption)(line)
    st.dataframe(cluster_table(cluster_frame(nodes, cells), now), hide_index=True,
                 column_config={
                     "node": st.column_config.TextColumn(help="Ray's node id (its first 8 hex digits, as in the cells table)"),
                     "state": st.column_config.TextColumn(help="alive, or lost: Ray no longer reaches it"),
                     "last seen": st.column_config.TextColumn(help="when the driver last saw the node alive"),
                     "training now": st.column_config.TextColumn(help="the cells training on the node now"),
                     "last ran there": st.column_config.TextColumn(help="the other cells whose trainer last ran on the node"),
                 })
