"""Ray sweeps on a multi-node cluster (ray.cluster_utils.Cluster on loopback): a node lost, every node lost, the driver lost, GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.test_jobs_ray import REPO, TINY, _wait_for, epochs_once, sweep_cli
from wrn_core.jobs.executor import RAY, Placement
from wrn_core.jobs.ray_executor import RaySweep
from wrn_core.store import RunBusyError, RunStore
from wrn_core.sweeps import load_sweep, read_nodes
from wrn_core.store.lock import queue_lock_name, queue_owner
from wrn_core.store.records import FINISHED, QUEUED, RESUME, RETRY, RUNNING

# WRN-10-1 on 384 synthetic images: a few seconds an epoch here, long enough to lose a node mid-cell.
CELL = ["--blocks", "1", "--widen-factor", "1", "--synthetic-train", "384", *TINY]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(pytestconfig):
    """A head with no CPUs (it trains nothing) on loopback, serving Ray Client too; each test adds the worker
    nodes it needs and `workers` removes what is left of them after it."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    # Started outside pytest's output capture: the head's Ray Client server, started with pytest's captured
    # descriptors, fails to start its per-client server (seen: "Starting Ray client server failed").
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                             "node_ip_address": "127.0.0.1",
                                                             "ray_client_server_port": _free_port()})
    try:
        yield head
    finally:
        head.shutdown()


@pytest.fixture
def workers(cluster):
    """add(n, **node_args) starts n worker nodes; whatever is left of them is removed after the test."""
    added = []

    def add(n: int = 1, **node_args):
        node_args.setdefault("node_ip_address", "127.0.0.1")
        nodes = [cluster.add_node(num_cpus=node_args.pop("num_cpus", 1), **node_args) for _ in range(n)]
        cluster.wait_for_nodes()
        added.extend(nodes)
        return nodes

    yield add
    for node in added:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


def shown_json(runs, name: str) -> dict:
    shown = subprocess.run([sys.executable, "-m", "wrn_core", "sweeps", "show", name, "--format", "json", "--runs-dir",
                            str(runs)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def cells(runs, name: str) -> list[dict]:
    return shown_json(runs, name)["cells"]


def node_of(cluster, node_id: str):
    return next(node for node in cluster.worker_nodes if node.node_id == node_id)


def epochs_done(run) -> int:
    return sum(r["kind"] == "epoch" for r in run.read_metrics())


def test_a_node_lost_mid_cell_is_retried_on_another_and_the_sweep_finishes_by_itself(tmp_path, cluster, workers):
    workers(2)
    runs = tmp_path / "runs"
    sweep = sweep_cli("n", *CELL, "--seeds", "0,1", "--epochs", "6", address=cluster.address, runs=runs, wait=False)
    store = RunStore(runs)
    try:
        def one_past_epoch_2():
            return [n for n in ("n-n1-k1-s0", "n-n1-k1-s1") if store.exists(n) and epochs_done(store.get(n)) >= 2
                    and store.get(n).read_status()["status"] == RUNNING and store.get(n).read_status().get("node")]

        _wait_for(one_past_epoch_2, what="a cell past its second epoch")
        name = one_past_epoch_2()[0]
        lost_node = store.get(name).read_status()["node"]
        # The driver's nodes file: every node of the cluster, alive, with its address and CPUs.
        nodes = {n["node"]: n for n in read_nodes(runs, "n").nodes if n["alive"]}  # (earlier tests' nodes read lost)
        assert set(nodes) == {cluster.head_node.node_id, *(node.node_id for node in cluster.worker_nodes)}
        assert all(n["address"] == "127.0.0.1" for n in nodes.values())
        assert nodes[lost_node]["cpus"] == 1.0 and nodes[cluster.head_node.node_id]["cpus"] == 0.0
        cluster.remove_node(node_of(cluster, lost_node))
        # ... rewritten while the driver still drives the sweep (its queue lock; the lost cell restarts meanwhile):
        # the removed node reads lost.
        _wait_for(lambda: not {n["node"]: n for n in read_nodes(runs, "n").nodes}[lost_node]["alive"]
                  and queue_owner(runs, queue_lock_name("n")) is not None,
                  timeout=60, what="the nodes file saying the removed node is lost while the driver runs")
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, err
    run = store.get(name)
    retries = [r for r in run.read_metrics() if r["kind"] == RETRY]
    assert len(retries) == 1 and retries[0]["node"] == lost_node and retries[0]["epoch"] >= 2, retries
    resumed = [r for r in run.read_metrics() if r["kind"] == RESUME]
    assert resumed and resumed[-1]["from_epoch"] >= 2  # from its checkpoint, not from scratch
    shown = {c["run"]: c for c in cells(runs, "n")}
    for cell in shown.values():
        assert cell["status"] == FINISHED
        assert epochs_once(store.get(cell["run"])) == [1, 2, 3, 4, 5, 6]
    assert shown[name]["retries"] == 1 and shown[name]["node"] != lost_node
    assert shown[name]["node"] in {node.node_id for node in cluster.worker_nodes}
    assert f"retried 1× (node {lost_node[:8]} lost in epoch" in out  # the cells table the user watched
    shown_nodes = {n["node"]: n for n in shown_json(runs, "n")["nodes"]}  # sweeps show carries the nodes
    assert shown_nodes[lost_node]["alive"] is False and shown_nodes[lost_node]["last_seen"] is not None
    assert shown_nodes[lost_node]["cpus"] == 1.0  # what it had, though Ray no longer lists it with resources
    assert shown_nodes[shown[name]["node"]]["alive"] and name in shown_nodes[shown[name]["node"]]["ran"]
    other = next(n for n in shown if n != name)
    assert shown[other]["retries"] == 0 and shown[other]["retried"] == ""


def test_cells_wait_while_no_node_is_left_and_continue_on_one_that_joins(tmp_path, cluster, workers):
    (only,) = workers(1)
    runs = tmp_path / "runs"
    sweep = sweep_cli("w", *CELL, "--epochs", "4", address=cluster.address, runs=runs, wait=False)
    store = RunStore(runs)
    try:
        _wait_for(lambda: store.exists("w-n1-k1-s0") and epochs_done(store.get("w-n1-k1-s0")) >= 1,
                  what="the cell's first epoch")
        cluster.remove_node(only)
        run = store.get("w-n1-k1-s0")
        # Started again, it waits in Ray's queue: no node has a CPU for it.
        _wait_for(lambda: any(r["kind"] == RETRY for r in run.read_metrics()) and run.read_status()["status"] == QUEUED,
                  what="the lost cell queued again")
        assert sweep.poll() is None and run.owner() is None  # the driver waits; nothing trains it
        workers(1)
        out, err = sweep.communicate(timeout=300)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 0, err
    assert run.read_status()["status"] == FINISHED
    assert epochs_once(run) == [1, 2, 3, 4]
    assert sum(r["kind"] == RETRY for r in run.read_metrics()) == 1


REATTACH_EPOCHS = 40


def test_a_new_driver_re_attaches_to_cells_training_after_the_first_died(tmp_path, cluster, workers):
    workers(2)
    runs = tmp_path / "runs"
    # Enough epochs that the cells still train when the second driver takes over (on a quiet machine 8 were
    # over before it had started).
    first = sweep_cli("d", *CELL, "--seeds", "0,1", "--epochs", str(REATTACH_EPOCHS), address=cluster.address, runs=runs,
                      wait=False)
    store = RunStore(runs)
    names = ["d-n1-k1-s0", "d-n1-k1-s1"]
    try:
        _wait_for(lambda: first.poll() is not None or all(store.exists(n) and epochs_done(store.get(n)) >= 1 for n in names),
                  timeout=400, what="both cells' first epoch")
        assert first.poll() is None, first.communicate()[1]
        trainers = {n: store.get(n).owner().pid for n in names}
        os.kill(first.pid, signal.SIGKILL)  # the driver dies; its cells' actors are detached
        first.wait(30)
        assert all(psutil.pid_exists(pid) for pid in trainers.values())
        second = sweep_cli("d", "--resume", "--no-probe", address=cluster.address, runs=runs, wait=False)
        _wait_for(lambda: second.poll() is not None or queue_owner(runs, queue_lock_name("d")) is not None,
                  timeout=400, what="the second driver holding the sweep")
        assert second.poll() is None, second.communicate()[1]
        assert all(store.get(n).read_status()["status"] == RUNNING for n in names)  # re-attached while they train
        with pytest.raises(RunBusyError, match="another `sweep d` drives its cells"):  # a third driver, at once
            RaySweep(store).drive(load_sweep(runs, "d"), Placement(executor=RAY))
        out, err = second.communicate(timeout=300)
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert second.returncode == 0, err
    for name in names:
        run = store.get(name)
        status = run.read_status()
        assert status["status"] == FINISHED and status["pid"] == trainers[name]  # the same trainer to the end
        assert not [r for r in run.read_metrics() if r["kind"] in (RESUME, RETRY)]  # never started twice
        assert epochs_once(run) == list(range(1, REATTACH_EPOCHS + 1))


def test_gpu_cells_get_the_gpu_ray_assigned_and_share_one_only_when_fractional(tmp_path, cluster, workers):
    (node,) = workers(1, num_cpus=2, num_gpus=1)
    runs = tmp_path / "runs"
    whole = sweep_cli("g", *CELL, "--seeds", "0,1", "--epochs", "1", "--gpus-per-cell", "1", address=cluster.address,
                      runs=runs)
    assert whole.returncode == 0, whole.stderr
    store = RunStore(runs)
    spans = []
    for name in ("g-n1-k1-s0", "g-n1-k1-s1"):
        status = store.get(name).read_status()
        assert status["status"] == FINISHED and status["gpus"] == "0" and status["node"] == node.node_id
        spans.append((status["started_at"], status["finished_at"]))
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 <= b0  # one GPU, whole GPUs: one cell after the other
    shown = {c["run"]: c for c in cells(runs, "g")}
    assert {c["gpus"] for c in shown.values()} == {"0"}
    half = sweep_cli("h", *CELL, "--seeds", "0,1", "--epochs", "1", "--gpus-per-cell", "0.5", address=cluster.address,
                     runs=runs)
    assert half.returncode == 0, half.stderr
    assert {store.get(n).read_status()["gpus"] for n in ("h-n1-k1-s0", "h-n1-k1-s1")} == {"0"}
    # Asked from a fresh driver process: this pytest process may hold another module's Ray session state, and
    # a second ray.init here was seen to wait forever for its GCS client after the local-Ray tests had run.
    fit = subprocess.run(
        [sys.executable, "-c",
         "import sys, ray\n"
         "from wrn_core.jobs.executor import CellResources\n"
         "from wrn_core.jobs.ray_nodes import cells_at_once\n"
         "ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)\n"
         "print(cells_at_once(ray, CellResources(cpus=1, gpus=0.5)), cells_at_once(ray, CellResources(cpus=1, gpus=1)))\n"
         "ray.shutdown()\n",
         cluster.address], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout.split() == ["2", "1"]  # two half-GPU cells fit on one GPU; whole-GPU cells one at a time


def test_a_sweep_through_ray_client_trains_on_the_cluster(tmp_path, cluster, workers):
    (node,) = workers(1)
    port = cluster.head_node._ray_params.ray_client_server_port
    runs = tmp_path / "runs"
    done = sweep_cli("c", *CELL, "--epochs", "1", address=f"ray://127.0.0.1:{port}", runs=runs)
    assert done.returncode == 0, done.stderr
    status = RunStore(runs).get("c-n1-k1-s0").read_status()
    assert status["status"] == FINISHED and status["node"] == node.node_id


@pytest.mark.parametrize("address", ["ray://head.example:10001", "10.0.0.5:6379", "head:6379", "auto"])
def test_ray_addresses_of_both_forms_pass_the_check(address):
    from wrn_core.jobs.ray_connection import check_address

    check_address(address)


@pytest.mark.parametrize("address", ["http://head:8265", "head", "ray://head", "head:port", "ray:/head:1"])
def test_a_malformed_ray_address_is_refused_in_one_line_before_anything_starts(tmp_path, address, capsys):
    from wrn_core.cli import main

    code = main(["sweep", "x", *CELL, "--epochs", "1", "--executor", "ray", "--ray-address", address,
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "is not a Ray address" in err and "HEAD:6379" in err and "ray://HEAD:10001" in err
    assert not (tmp_path / "runs").exists() or not RunStore(tmp_path / "runs").names()


def test_an_unreachable_ray_address_is_refused_in_one_line(tmp_path, capsys):
    from wrn_core.cli import main

    port = _free_port()  # a loopback port nobody listens on
    code = main(["sweep", "x", *CELL, "--epochs", "1", "--executor", "ray", "--ray-address", f"ray://127.0.0.1:{port}",
                 "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and f"ray://127.0.0.1:{port}" in err, err
    assert "nothing answers" in err  # said at once, before Ray Client's half minute of retries


def test_the_retries_a_history_holds_are_said_with_the_last_reason():
    from wrn_core.store.records import retries_text, retry_record

    assert retries_text([{"kind": "epoch", "epoch": 1, "step": 3}]) == ""
    records = [retry_record(1, 3, "a" * 32, 1, "node aaaaaaaa lost in epoch 2", 1.0),
               retry_record(2, 3, "b" * 32, 2, "worker on node bbbbbbbb died in epoch 3", 2.0)]
    assert retries_text(records) == "retried 2× (worker on node bbbbbbbb died in epoch 3)"


def test_max_retries_below_zero_is_refused():
    from wrn_core.config import ConfigError
    from wrn_core.jobs.executor import RAY, Placement

    with pytest.raises(ConfigError, match="--max-retries must be 0 or more"):
        Placement(executor=RAY, max_retries=-1)


def test_half_gpu_cells_must_each_fit_in_half_the_free_memory(monkeypatch):
    from wrn_core.config import TrainConfig, WRNConfig
    from wrn_core.engine import devices
    from wrn_core.sweeps import make_sweep, preflight_frame

    monkeypatch.setattr(devices, "check_memory", lambda config, size: devices.MemoryCheck("cuda:0", 600.0, 1000.0, False))
    sweep = make_sweep("f", TrainConfig(model=WRNConfig(depth=10, widen_factor=1), device="cpu"), [1], [1])
    assert preflight_frame(sweep)["fits"].all()  # 600 MiB of 1000 free: one cell fits
    assert not preflight_frame(sweep, gpu_share=0.5)["fits"].any()  # two of them on one GPU do not
    assert preflight_frame(sweep, gpu_share=0.75)["fits"].all()  # a 0.75 share is 750 MiB


def test_a_ray_sweep_pinned_to_one_gpu_is_refused_in_one_line(tmp_path, capsys):
    from wrn_core.cli import main

    code = main(["sweep", "x", *[f for f in CELL if f not in ("--device", "cpu")], "--device", "cuda:1", "--epochs", "1",
                 "--executor", "ray", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: on Ray each cell trains on the GPUs Ray assigns it (CUDA_VISIBLE_DEVICES): use " \
                               "--device cuda, not cuda:1"


def test_the_nodes_file_is_rewritten_at_once_when_a_node_is_lost_and_every_few_seconds_else(tmp_path, monkeypatch):
    """NodesPublisher against a stand-in for ray.nodes() and the clock (no Ray)."""
    from types import SimpleNamespace

    from wrn_core.jobs import ray_nodes
    from wrn_core.sweeps.sweep_file import NODES_REFRESH_S

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(ray_nodes, "time", SimpleNamespace(time=lambda: clock.now))
    a = {"NodeID": "a" * 56, "Alive": True, "NodeManagerAddress": "10.0.0.1", "NodeManagerHostname": "ha",
         "Resources": {"CPU": 2.0, "GPU": 1.0}}
    b = {**a, "NodeID": "b" * 56, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 1.0}}
    listed = [a, b]
    asked = []
    fake_ray = SimpleNamespace(nodes=lambda: asked.append(clock.now) or [dict(n) for n in listed])
    publisher = ray_nodes.NodesPublisher(tmp_path)

    def at(t: float):
        clock.now = 1000.0 + t
        publisher.publish(fake_ray, ["s"])
        return read_nodes(tmp_path, "s")

    publisher.publish(fake_ray, ["s"], force=True)  # as the driver starts
    first = read_nodes(tmp_path, "s")
    assert first.written_at == 1000.0 and [(n["address"], n["cpus"], n["gpus"], n["alive"]) for n in first.nodes] == [
        ("10.0.0.1", 2.0, 1.0, True), ("10.0.0.2", 1.0, 0.0, True)]
    at(0.5)
    assert asked == [1000.0]  # Ray is asked at most every NODES_POLL_S
    listed[1] = {**b, "Alive": False, "Resources": {}}  # Ray lists a dead node without its resources
    lost = at(1.5)
    assert lost.written_at == 1001.5  # at once, not at the next refresh
    assert lost.nodes[1] == {"node": "b" * 56, "address": "10.0.0.2", "hostname": "ha", "cpus": 1.0, "gpus": 0.0,
                             "alive": False, "last_seen": 1000.0}
    assert at(3.0).written_at == 1001.5  # nothing changed: not rewritten yet
    del listed[1]  # Ray forgets the dead node: it stays lost
    refreshed = at(1.5 + NODES_REFRESH_S)
    assert refreshed.written_at == 1001.5 + NODES_REFRESH_S and not refreshed.nodes[1]["alive"]
    assert refreshed.nodes[0]["last_seen"] == refreshed.written_at
