"""The Train page's memory pre-flight under AppTest: a run predicted not to fit the device's free memory is warned about."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from harness.apptest import APP, F
from wrn_core.engine import devices
from wrn_core.engine.devices import DeviceInfo


@pytest.fixture
def page_with_free_ram(tmp_path, monkeypatch):
    """The Train page opened on a machine whose CPU reports `free_mb` free (AppTest runs in this process)."""

    def open_page(free_mb: float) -> AppTest:
        cpu = DeviceInfo("cpu", "cpu", "test CPU", 64_000.0, free_mb, None)
        monkeypatch.setattr(devices, "list_devices", lambda: [cpu])
        at = AppTest.from_file(APP, default_timeout=60).run()
        at = at.switch_page("../pages/2_train.py").run()
        at.selectbox(key=F + "device").set_value("cpu")
        return at.run()

    monkeypatch.setenv("WRN_RUNS_DIR", str(tmp_path / "runs"))
    st.cache_resource.clear()  # a job manager cached by an earlier test belongs to its runs directory
    st.cache_data.clear()
    yield open_page
    st.cache_resource.clear()  # shuts this test's job manager down
    st.cache_data.clear()


def test_the_train_page_warns_when_the_run_is_predicted_not_to_fit(page_with_free_ram):
    roomy = page_with_free_ram(1_000_000.0)
    assert not roomy.exception
    assert not [w.value for w in roomy.warning if "predicted training memory" in w.value]

    tight = page_with_free_ram(1.0)
    assert not tight.exception
    warnings = [w.value for w in tight.warning if "predicted training memory" in w.value]
    assert len(warnings) == 1
    assert "against 1 MiB free on RAM: it may not fit" in warnings[0]
