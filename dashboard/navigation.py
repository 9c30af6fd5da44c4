"""The pages as one app: where their files are (PAGES_DIR), and the form values kept while another page is shown."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
# Session-state keys of value widgets that must survive a page switch (see keep_form_state).
PERSISTENT_PREFIXES = ("arch_", "train_f_", "runs_v_", "sweep_f_", "sweep_v_")


def keep_form_state() -> None:
    """Re-own form values so Streamlit keeps them while their page is not shown.

    Streamlit drops a widget's state at the end of a run in which the widget was not drawn;
    assigning the value to its key turns it into ordinary session state that survives.
    """
    for key in list(st.session_state.keys()):
        if not (isinstance(key, str) and key.startswith(PERSISTENT_PREFIXES)):
            continue
        value = st.session_state[key]
        # Only plain input values; element states (table selections, charts) are not assignable.
        if value is None or isinstance(value, (bool, int, float, str, list, tuple)):
            st.session_state[key] = value
