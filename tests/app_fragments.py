"""AppTest runs of one fragment alone, as the browser's run_every timer asks for them (AppTest itself always
reruns the whole script, which would hide a section that only a full run redraws)."""

from __future__ import annotations

import functools
from unittest import mock

from streamlit.testing.v1 import AppTest


def run_fragment(at: AppTest, key: str) -> AppTest:
    """Rerun only the fragment declared with @st.fragment(key=key), as its run_every timer would.

    The tree afterwards holds what that run sent: the fragment's elements, or the whole page when the
    fragment asked for a full rerun (st.rerun(scope="app"))."""
    import streamlit.testing.v1.local_script_runner as local_script_runner

    fragment_ids = at._fragment_storage.resolve_target(key)  # no public way to name a fragment to AppTest
    timer_rerun = functools.partial(local_script_runner.RerunData, fragment_id_queue=list(fragment_ids),
                                    is_auto_rerun=True)
    with mock.patch.object(local_script_runner, "RerunData", timer_rerun):
        return at.run()
