"""WRN Lab dashboard entrypoint: page config, navigation and the shared sidebar."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

DASHBOARD_DIR = Path(__file__).resolve().parent
if str(DASHBOARD_DIR) not in sys.path:  # streamlit adds it; AppTest and imports elsewhere may not
    sys.path.insert(0, str(DASHBOARD_DIR))

import lab_ui  # noqa: E402

PAGES_DIR = DASHBOARD_DIR.parent / "pages"

st.set_page_config(page_title="WRN Lab", page_icon="🧱", layout="wide")
lab_ui.keep_form_state()

pg = st.navigation(
    [
        st.Page(PAGES_DIR / "1_architecture.py", title="Architecture", icon=":material/account_tree:", url_path="architecture", default=True),
        st.Page(PAGES_DIR / "2_train.py", title="Train", icon=":material/model_training:", url_path="train"),
        st.Page(PAGES_DIR / "3_runs.py", title="Runs", icon=":material/table_chart:", url_path="runs"),
    ]
)


@st.fragment(run_every=2.0)
def _active_jobs() -> None:
    jobs = lab_ui.get_job_manager().jobs()
    if not jobs:
        st.caption("No active jobs.")
        return
    for job in jobs:
        p = job.progress
        if job.state == "running" and p is not None:
            st.caption(f"▶ **{job.name}** on {job.device}: epoch {p.epoch}/{p.epochs}, {p.phase}")
        else:
            st.caption(f"{'▶' if job.state == 'running' else '⏸'} **{job.name}** ({job.state} on {job.device})")


with st.sidebar:
    st.markdown("**WRN Lab** — Wide Residual Networks")
    st.caption(f"Runs directory: `{lab_ui.runs_dir()}`")
    st.caption(f"Device: {lab_ui.cuda_description()}")
    st.markdown("**Jobs**")
    _active_jobs()

pg.run()
