"""The Train page on a machine with two (mocked) GPUs: each GPU listed with its free memory, and "all GPUs (DDP)",
which launches one process per GPU."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from fake_gpus import fake_two_gpus
from harness.apptest import APP, F
from wrn_core.jobs import JobManager


def test_two_gpus_offer_all_gpus_ddp_which_launches_one_process_per_gpu(_dashboard_isolation, monkeypatch):
    fake_two_gpus(monkeypatch)
    submitted = []

    def submit(self, config, name=None, nproc=1, force=False, **status):  # what Launch asks of the job manager
        submitted.append((config, nproc))
        return name

    monkeypatch.setattr(JobManager, "submit", submit)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("../pages/2_train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    device = at.selectbox(key=F + "device")
    assert device.options[1:] == [
        "cpu — " + device.options[1].split(" — ", 1)[1],  # this machine's CPU, whatever it is
        "cuda:0 — NVIDIA H100 80GB HBM3 (70.0 GiB free of 80.0 GiB)",
        "cuda:1 — NVIDIA A100-SXM4-40GB (10.0 GiB free of 40.0 GiB)",
        "all 2 GPUs (DDP, one process per GPU)",
    ]
    assert device.options[0] == "auto (the least loaded GPU)"
    device.set_value("ddp").run()
    at.text_input(key=F + "name").set_value("both").run()
    assert any(c.value.endswith("· 2 GPUs (DDP)") for c in at.caption if c.value.startswith("**Launch trains**"))
    at.button(key="train_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    ((config, nproc),) = submitted
    assert (config.device, config.world_size, nproc) == ("cuda", 2, 2)
