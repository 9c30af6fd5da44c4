"""The Sweep page's "Ray cluster" choice: Launch starts a background Ray sweep process; without ray, one line."""

from __future__ import annotations

import sys

import pytest

from harness.apptest import S, new_app, no_exception, open_page, set_tiny_sweep

from wrn_core.jobs import ray_nodes
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
    assert any("as Ray actors (head:6379)" in s.value for s in at.success)
    table = at.dataframe[0].value
    assert {"executor", "host", "node", "retried"} <= set(table.columns)


def test_without_ray_the_launch_says_what_to_install(_dashboard_isolation, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # importlib finds no ray
    at = open_page(new_app(), "sweep")
    set_tiny_sweep(at, "noray", blocks=(1,), widen=(1,))
    at.radio(key=S + "executor").set_value("ray").run()
    at.button(key="sweep_launch").click().run()
    no_exception(at)
    assert len(at.error) == 1 and at.error[0].value.replace("\\", "") == ray_nodes.RAY_MISSING
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


A_NODE, B_NODE, GONE = "a1" * 28, "b2" * 28, "c3" * 28  # Ray node ids (56 hex digits)


def ray_sweep_on_nodes(root, written_at: float):
    """A saved 2-cell sweep whose first cell finished on node A and whose second trains on node B (its run held
    by this process, as its trainer would), with the nodes file its Ray driver would write: A and B alive, one lost."""
    from wrn_core.store import RunStore
    from wrn_core.store.lock import ROLE_TRAINING
    from wrn_core.sweeps import make_sweep, save_sweep, write_nodes
    from test_app_sweep import BASE

    store = RunStore(root)
    sweep = make_sweep("cl", BASE, [1], [1, 2])
    save_sweep(root, sweep)
    done, training = sweep.cells()
    store.create(done.config, done.run, sweep="cl", executor="ray").write_status("finished", "finished", node=A_NODE, epoch=1)
    held = store.create(training.config, training.run, hold=ROLE_TRAINING, sweep="cl", executor="ray")
    held.write_status("running", "training", node=B_NODE)
    node = {"hostname": "box", "gpus": 0.0}
    write_nodes(root, "cl", [
        {**node, "node": GONE, "address": "10.0.0.3", "cpus": 1.0, "alive": False, "last_seen": written_at - 5 * 3600},
        {**node, "node": B_NODE, "address": "10.0.0.2", "cpus": 2.0, "alive": True, "last_seen": written_at},
        {**node, "node": A_NODE, "address": "10.0.0.1", "cpus": 1.0, "alive": True, "last_seen": written_at},
    ], written_at)
    return sweep, held


def cluster_rows(at) -> list[dict]:
    table = next(t.value for t in at.dataframe if "state" in t.value.columns)
    return table[["node", "address", "CPUs", "state", "last seen", "training now", "last ran there"]].to_dict("records")


def test_a_ray_sweep_shows_its_cluster_nodes_and_the_cell_on_each(_dashboard_isolation, monkeypatch):
    import time

    from wrn_core.store.lock import ROLE_QUEUED, RunLock, queue_lock_name
    from wrn_core.sweeps import cell_tables

    monkeypatch.setattr(cell_tables, "NODES_REFRESH_S", 3600.0)  # however slow this machine, the file reads fresh

    sweep, held = ray_sweep_on_nodes(_dashboard_isolation, time.time())
    driver = RunLock(_dashboard_isolation / queue_lock_name("cl"))
    driver.acquire(ROLE_QUEUED, "sweep cl", wait_s=0.0)  # a live driver holds the sweep's queue lock
    try:
        at = open_page(new_app(), "sweep")
        at.selectbox(key=S + "open").set_value("cl").run()
        no_exception(at)
        assert "Cluster" in [h.value for h in at.subheader]
        rows = cluster_rows(at)
        assert [row.pop("last seen").split(" ", 1)[1] for row in rows] == ["s ago", "s ago", "h ago"]
        assert rows == [  # alive first, each with the cell its status names
            {"node": "a1a1a1a1", "address": "10.0.0.1", "CPUs": 1.0, "state": "alive", "training now": "", "last ran there": "cl-n1-k1-s0"},
            {"node": "b2b2b2b2", "address": "10.0.0.2", "CPUs": 2.0, "state": "alive", "training now": "cl-n1-k2-s0", "last ran there": ""},
            {"node": "c3c3c3c3", "address": "10.0.0.3", "CPUs": 1.0, "state": "lost", "training now": "", "last ran there": ""},
        ]
        assert any("it rewrites it when a node joins or is lost" in c.value for c in at.caption)
        assert not at.warning
        driver.release()  # the driver dies while its cell still trains: the table reads stale
        at.run()
        assert any("no driver runs the sweep now" in w.value for w in at.warning)
    finally:
        driver.release()
        held.release()


def test_a_local_sweep_shows_no_cluster(_dashboard_isolation):
    from test_app_sweep import BASE
    from wrn_core.sweeps import make_sweep, save_sweep

    save_sweep(_dashboard_isolation, make_sweep("here", BASE, [1], [1]))
    at = open_page(new_app(), "sweep")
    at.selectbox(key=S + "open").set_value("here").run()
    no_exception(at)
    assert "Cluster" not in [h.value for h in at.subheader]
