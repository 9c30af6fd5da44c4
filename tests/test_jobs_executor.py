"""The one sweep-executor interface (wrn_core.jobs.executor): where cells train, which cells a stop reaches, the cell
order an executor asks, and the local executor and the executors-as-one driven through it (no training here)."""

from __future__ import annotations

import pytest

from tiny_runs import tiny_config
from wrn_core.config import ConfigError
from wrn_core.jobs.executor import LOCAL, RAY, CellResources, Placement, SweepExecutor, cells_to_stop
from wrn_core.jobs.sweep_executors import SweepExecutors
from wrn_core.jobs.sweep_runner import SweepRunner
from wrn_core.store import RunStore
from wrn_core.store.lock import ROLE_TRAINING
from wrn_core.store.records import STOPPED
from wrn_core.sweeps import load_sweep, make_sweep
from wrn_core.sweeps.cell_order import GridOrder, Openings

GRID = make_sweep("g", tiny_config(), [1, 2], [1, 2])  # cells g-n1-k1-s0, g-n1-k2-s0, g-n2-k1-s0, g-n2-k2-s0
RUNS = [cell.run for cell in GRID.cells()]


def test_cells_reserve_one_gpu_each_in_a_cuda_sweep_unless_told():
    cuda = make_sweep("c", tiny_config(device="cuda"), [1], [1])
    assert CellResources.default_for(cuda) == CellResources(cpus=1.0, gpus=1.0)
    assert CellResources.default_for(GRID) == CellResources(cpus=1.0, gpus=0.0)  # a CPU sweep reserves none
    assert CellResources.default_for(cuda, cpus=4, gpus=0.5) == CellResources(cpus=4.0, gpus=0.5)
    assert Placement(executor=RAY, cpus=2).resources(cuda) == CellResources(cpus=2.0, gpus=1.0)
    with pytest.raises(ConfigError, match="--cpus-per-cell must be above 0"):
        Placement(executor=RAY, cpus=0).resources(GRID)


def test_a_placement_names_a_known_executor_and_says_where_cells_train():
    with pytest.raises(ConfigError, match="unknown executor 'slurm'"):
        Placement(executor="slurm")
    assert Placement().describe() == "one after another" and Placement().flags() == []
    assert Placement(executor=RAY, address="head:6379").describe() == "as Ray actors (head:6379)"
    assert Placement(executor=RAY).flags() == ["--executor", "ray"]


def test_the_resume_command_keeps_the_placement_and_the_runs_directory():
    """What a stopped or lost cell's message tells the user to run continues on the same cluster with the same
    reservations (half a GPU stays half), in the runs directory given, quoted for the shell."""
    half = Placement(executor=RAY, address="ray://head:10001", cpus=2, gpus=0.5, max_retries=1)
    assert half.resume_command("grid", "/data/my runs") == (
        "python -m wrn_core sweep grid --resume --executor ray --ray-address ray://head:10001 --cpus-per-cell 2 "
        "--gpus-per-cell 0.5 --max-retries 1 --runs-dir '/data/my runs'")
    assert Placement().resume_command("grid", "runs") == "python -m wrn_core sweep grid --resume --runs-dir runs"


def test_a_stop_reaches_the_cells_some_process_holds_and_those_the_executor_holds(tmp_path):
    store = RunStore(tmp_path)
    training = store.create(GRID.cells()[0].config, RUNS[0], hold=ROLE_TRAINING, sweep="g")  # another process's
    stopped = store.create(GRID.cells()[1].config, RUNS[1], sweep="g")
    stopped.write_status(STOPPED, "stopped")
    try:
        assert cells_to_stop(store, GRID) == [RUNS[0]]  # not the stopped one, nor the pending ones
        assert cells_to_stop(store, GRID, held=[RUNS[2]]) == [RUNS[0], RUNS[2]]  # in grid order
    finally:
        training.release()


def test_the_grid_hands_out_cells_in_order_as_many_as_there_is_room_for(tmp_path):
    store = RunStore(tmp_path)
    order = GridOrder(GRID)
    assert [c.run for c in order.next_cells(store, Openings(free=1))] == RUNS[:1]
    assert [c.run for c in order.next_cells(store, Openings(free=0))] == []
    assert [c.run for c in order.next_cells(store, Openings(free=0, queues=True))] == RUNS  # a queue takes them all
    assert [c.run for c in order.next_cells(store, Openings(free=2, busy=frozenset(RUNS[:1])))] == RUNS[1:3]
    assert order.prune(store) == [] and not order.is_done(store)


class FakeManager:
    """What SweepRunner uses of a JobManager, with `idle` free slots and nothing trained."""

    def __init__(self, root, idle: int) -> None:
        self.store = RunStore(root)
        self.slots = ["cpu#1", "cpu#2", "cpu#3"]
        self.idle = idle
        self.submitted: list[str] = []
        self.held: set[str] = set()
        self.stopped: list[str] = []

    def add_watcher(self, watcher) -> None:
        pass

    def load(self) -> dict[str, int]:
        return {slot: 0 if i < self.idle else 1 for i, slot in enumerate(self.slots)}

    def is_active(self, name: str) -> bool:
        return name in self.held

    def submit(self, config, name, **status) -> str:
        self.submitted.append(name)
        self.held.add(name)  # no run is made: to the store the cell is still pending
        self.idle -= 1
        return name

    def stop(self, name: str) -> bool:
        self.stopped.append(name)
        return True


def test_the_local_executor_starts_as_many_cells_as_slots_are_idle_and_stops_those_it_holds(tmp_path):
    manager = FakeManager(tmp_path, idle=2)
    runner = SweepRunner(manager)
    runner.start(GRID)  # saves the sweep, then asks the grid for two cells
    assert load_sweep(tmp_path, "g").axes == GRID.axes
    assert manager.submitted == RUNS[:2] and runner.running("g") and runner.error("g") is None
    runner.advance(force=True)
    assert manager.submitted == RUNS[:2]  # no slot idle
    manager.idle = 1
    runner.advance(force=True)  # the cells it holds (pending to the store) are not handed out again
    assert manager.submitted == RUNS[:3]
    assert runner.stop("g") == RUNS[:3] and manager.stopped == RUNS[:3]
    assert runner.active() == []  # no more cells start


class Recorder(SweepExecutor):
    """An executor that records what it is asked."""

    def __init__(self, store, asked: list, held: list[str], why: str | None = None) -> None:
        self.store, self.asked, self.held, self.why = store, asked, held, why

    def drive(self, sweep, placement) -> None:
        self.asked.append((self, sweep.name, placement.executor))

    def stop(self, name):
        return list(self.held)

    def running(self, name):
        return bool(self.held)

    def error(self, name):
        return self.why

    def wait(self, name, timeout):
        return True


def test_executors_as_one_start_on_the_placements_and_stop_and_watch_every_one(tmp_path):
    store = RunStore(tmp_path)
    asked: list = []
    local = Recorder(store, asked, held=[RUNS[0]])
    ray = Recorder(store, asked, held=[RUNS[0], RUNS[1]], why="the sweep process exited with code 2")
    executors = SweepExecutors(store, {LOCAL: local, RAY: ray})
    executors.start(GRID, Placement(executor=RAY))
    assert asked == [(ray, "g", RAY)]
    executors.resume("g")  # the saved sweep, on this machine
    assert asked[-1] == (local, "g", LOCAL)
    assert executors.stop("g") == RUNS[:2]  # each cell once
    assert executors.running("g") and executors.error("g") == "the sweep process exited with code 2"
