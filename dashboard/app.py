"""WRN Lab dashboard entrypoint: page config, navigation and the shared sidebar."""

from __future__ import annotations

import streamlit as st

from dashboard import cached_reads, devices, jobs, widgets
from dashboard.navigation import PAGES_DIR, keep_form_state
from wrn_core.analysis.live import live_position
from wrn_core.store.records import RUNNING, RunStatus

# Material icons, not the ▶/⏸ glyphs: many fonts lack ⏸ and draw it as a box.
PLAY, PAUSE = ":material/play_circle:", ":material/pause_circle:"

st.set_page_config(page_title="WRN Lab", page_icon="🧱", layout="wide")
keep_form_state()

# The first page is served at the root URL; /architecture, its name, reaches it too (a hidden alias page).
architecture = st.Page(PAGES_DIR / "1_architecture.py", title="Architecture", icon=":material/account_tree:",
                       url_path="home", default=True)


def _architecture_alias() -> None:
    st.switch_page(architecture)


pg = st.navigation(
    [
        architecture,
        st.Page(_architecture_alias, title="Architecture", url_path="architecture", visibility="hidden"),
        st.Page(PAGES_DIR / "2_train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page(PAGES_DIR / "3_runs.py", title="Runs", icon=":material/table_chart:", url_path="runs"),
        st.Page(PAGES_DIR / "4_sweep.py", title="Sweep", icon=":material/grid_on:", url_path="sweep"),
        st.Page(PAGES_DIR / "5_inspect.py", title="Inspect", icon=":material/biotech:", url_path="inspect"),
    ]
)


@st.fragment(run_every=1.0)
def _active_jobs() -> None:
    """Runs some process holds, from the same status and heartbeat files the pages read."""
    manager = jobs.get_job_manager()
    rows = cached_reads.active_runs(manager.store)
    if not rows:
        st.caption("No active runs.")
        return
    for name, state, progress in rows:
        if state == RUNNING and progress is not None and progress.epochs:
            # The Train page's progress line says the same of the same heartbeat (widgets.position_text).
            position = widgets.position_text(live_position(RunStatus(status=state), progress))
            st.caption(f"{PLAY} **{name}**: {position}")
        else:
            st.caption(f"{PLAY if state == RUNNING else PAUSE} **{name}** ({state})")


with st.sidebar:
    st.markdown("**WRN Lab** — Wide Residual Networks")
    st.caption(f"Runs directory: `{jobs.runs_dir()}`")
    st.caption(f"Device: {devices.cuda_description()}")
    st.markdown("**Active runs**")
    _active_jobs()

pg.run()
