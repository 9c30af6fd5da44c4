"""The Sweep page's "Ray cluster" choice: Launch starts a background Ray sweep process; without ray, one line."""

from __future__ import annotations

import sys

import pytest

from harness.apptest import S, new_app, no_exception, open_page, set_tiny_sweep

from wrn_core.jobs import ray_executor
from wrn_core.jobs.executor import CellResources
from wrn_core.jobs.ray_processes import RaySweepProcesses, sweep_command
from wrn_core.sweeps import load_sweep


@pytest.fixture
def started(monkeypatch) -> list:
    """The (name, address, resources) of each Ray sweep process the page starts (none is really started;
    each reads as running, as a real one would until its cells end: the page's "Launched" line lasts that long)."""
    calls: list = []
    monkeypatch.setattr(RaySweepProcesses, "start_process",
                        lambda self, name, address=None, resources=CellResources(), max_retries=3:
                        calls.append((name, address, resources)))
    monkeypatch.setattr(RaySweepProcesses, "running", lambda self, name: any(call[0] == name for call in calls))
    return calls


def test_launch_on_a_ray_cluster_starts_the_sweep_process_with_its_address(_dashboard_isolation, started):
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "onray", blocks=(1,), widen=(1,))
    assert at.radio(key=S + "executor").value == "local"  # this machine by default
    at.radio(key=S + "executor").set_value("ray").run()
    at.text_input(key=S + "ray_address").set_value("head:6379").run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert started == [("onray", "head:6379", CellResources(cpus=1.0, gpus=0.0))]  # defaults: 1 CPU, no GPU on the CPU
    assert load_sweep(_dashboard_isolation, "onray").axes["blocks"] == (1,)  # saved for the process to --resume
    assert any("as Ray tasks (head:6379)" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert {"executor", "host", "node", "retried"} <= set(table.columns)


def test_without_ray_the_launch_says_what_to_install(_dashboard_isolation, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # importlib finds no ray
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "noray", blocks=(1,), widen=(1,))
    at.radio(key=S + "executor").set_value("ray").run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.replace("\\", "") == ray_executor.RAY_MISSING
    assert not list(_dashboard_isolation.glob("*.sweep.json"))  # nothing saved


def test_sweep_command_resumes_the_saved_sweep_on_ray(tmp_path):
    command = sweep_command(tmp_path, "g", "head:6379", CellResources(cpus=2, gpus=1))
    assert command[1:] == ["-m", "wrn_core", "sweep", "g", "--resume", "--executor", "ray", "--no-probe",
                           "--cpus-per-cell", "2", "--gpus-per-cell", "1", "--max-retries", "3", "--runs-dir", str(tmp_path),
                           "--ray-address", "head:6379"]


def test_the_cells_resources_chosen_on_the_page_reach_the_ray_sweep(_dashboard_isolation, started):
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "sized", blocks=(1,), widen=(1,))
    at.radio(key=S + "executor").set_value("ray").run()
    at.number_input(key=S + "cpus_per_cell").set_value(4.0).run()
    at.number_input(key=S + "gpus_per_cell").set_value(1.0).run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert started == [("sized", None, CellResources(cpus=4.0, gpus=1.0))]


def test_stop_sweep_reaches_a_sweep_on_ray_whatever_the_form_says(_dashboard_isolation, started, monkeypatch):
    stopped: list = []
    monkeypatch.setattr(RaySweepProcesses, "stop", lambda self, name: stopped.append(name) or [])
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "halt", blocks=(1,), widen=(1,))
    at.radio(key=S + "executor").set_value("ray").run()
    at.button(key="sweep_launch").click().run()
    assert stopped == []  # Launch stops nothing
    at.session_state[S + "executor"] = "local"  # another choice on the form since: the stop still reaches Ray
    at.run()
    at.button(key="sweep_stop").click().run()
    no_exception(at)
    assert stopped == ["halt"]
    assert any("Stopping 0 cell(s)" in s.value for s in at.success)
