"""Width use over training as data: the per-layer and per-group frames, the JSON series, the Sweep's per-group metric,
and the width-lost and dead-channels findings at their thresholds, on written records and on real runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

try:
    from width_runs import width_run
except ImportError:  # tests/ imported as a package
    from tests.width_runs import width_run

from wrn_core.analysis import diagnose
from wrn_core.analysis.health import DEAD_SHARE, WIDTH_LOSS_EPOCHS, WIDTH_LOSS_SHARE
from wrn_core.analysis.width import group_frame, width_frame, width_metrics, width_series
from wrn_core.engine.loop import train_run
from wrn_core.presets import PRESETS, QUICK_CPU
from wrn_core.store import RunStore


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path)


def width_rules(records) -> list[str]:
    return [f.rule for f in diagnose(records) if f.rule in ("width-lost", "dead-channels")]


def test_frames_per_layer_and_per_group(store):
    run = width_run(store, "r", k=2, epochs=2, fraction=lambda layer, epoch: 0.5 if layer.startswith("group3") else 0.8,
                    dead=lambda layer, channels, epoch: 4 if layer == "group3.0.relu2" else 0)
    layers = width_frame(run.read_metrics())
    assert len(layers) == 14 and list(layers["order"][:7]) == list(range(7))
    row = layers[(layers["epoch"] == 2) & (layers["layer"] == "group3.0.relu2")].iloc[0]
    assert (row["group"], row["channels"], row["dead"]) == ("group 3", 128, 4)
    assert row["effective_fraction"] == pytest.approx(0.5) and row["dead_fraction"] == pytest.approx(4 / 128)
    groups = group_frame(run.read_metrics())
    assert list(groups[groups["epoch"] == 1]["group"]) == ["group 1", "group 2", "group 3", "head"]
    group3 = groups[(groups["epoch"] == 2) & (groups["group"] == "group 3")].iloc[0]
    assert (group3["relus"], group3["channels"], group3["dead"]) == (2, 64 + 128, 4)
    assert group3["effective_fraction"] == pytest.approx(0.5)
    assert width_metrics(run.read_metrics()) == pytest.approx(
        {"width_group1": 0.8, "width_group2": 0.8, "width_group3": 0.5})
    series = width_series(run.read_metrics())
    assert [s["epoch"] for s in series] == [1, 2] and series[1]["layers"][5] == {
        "layer": "group3.0.relu2", "channels": 128, "dead": 4, "effective": 64.0}
    assert [g["group"] for g in series[1]["groups"]] == ["group 1", "group 2", "group 3", "head"]


def test_a_run_without_width_records_has_empty_frames_and_no_metric(store):
    run = width_run(store, "r", k=1, epochs=2, fraction=lambda layer, epoch: 1.0, measured=lambda epoch: False)
    assert width_frame(run.read_metrics()).empty and group_frame(run.read_metrics()).empty
    assert width_metrics(run.read_metrics()) == {"width_group1": None, "width_group2": None, "width_group3": None}
    assert width_series(run.read_metrics()) == []


def falling(share: float, over: int, at: int = 3, group: str = "group3"):
    """Effective width 0.8 of a group's channels until epoch `at`, then `share` less of it `over` epochs later."""
    def fraction(layer: str, epoch: int) -> float:
        if not layer.startswith(group) or epoch <= at:
            return 0.8
        return 0.8 * (1 - share * min(1.0, (epoch - at) / over))
    return fraction


@pytest.mark.parametrize("share, over, fires", [
    (WIDTH_LOSS_SHARE + 0.02, 1, True),  # lost at once
    (WIDTH_LOSS_SHARE + 0.02, WIDTH_LOSS_EPOCHS, True),  # within the window
    (WIDTH_LOSS_SHARE - 0.02, 1, False),  # not a large enough share
    (WIDTH_LOSS_SHARE + 0.02, WIDTH_LOSS_EPOCHS + 2, False),  # slowly, over more epochs than the window
])
def test_width_lost_fires_at_its_share_within_its_epochs(store, share, over, fires):
    run = width_run(store, "r", k=2, epochs=3 + over + 1, fraction=falling(share, over))
    assert width_rules(run.read_metrics()) == (["width-lost"] if fires else [])


def test_width_lost_says_which_group_and_when_and_goes_once_the_width_comes_back(store):
    lost = width_run(store, "lost", k=2, epochs=6, fraction=falling(0.5, 1, group="group2"))
    (finding,) = [f for f in diagnose(lost.read_metrics()) if f.rule == "width-lost"]
    assert finding.severity == "warning"
    assert finding.message == ("group 2 lost 50% of its effective width between epochs 3 and 4 (80% → 40% of its "
                               "channels carry the signal)")
    assert "warm-up" in finding.advice and "lr" in finding.advice
    back = width_run(store, "back", k=2, epochs=6,
                     fraction=lambda layer, epoch: 0.4 if layer.startswith("group2") and epoch == 4 else 0.8)
    assert width_rules(back.read_metrics()) == []  # recovered by the latest epoch


@pytest.mark.parametrize("dead, fires", [(20, True), (19, False)])  # of group 3's 64 + 128 channels (k=2): 10.4%, 9.9%
def test_dead_channels_fire_at_their_share_of_a_group(store, dead, fires):
    assert DEAD_SHARE == 0.10
    run = width_run(store, "r", k=2, epochs=2, fraction=lambda layer, epoch: 0.8,
                    dead=lambda layer, channels, epoch: dead if layer == "group3.0.relu1" and epoch == 2 else 0)
    assert width_rules(run.read_metrics()) == (["dead-channels"] if fires else [])
    if fires:
        (finding,) = [f for f in diagnose(run.read_metrics()) if f.rule == "dead-channels"]
        assert finding.message == ("10% of group 3's channels are dead at epoch 2 (20 of 192 almost never fire on the test "
                                   "images)")


def train_real(root: Path, name: str, config) -> list[dict]:
    """Train a run in this process with one CPU thread (on a shared 2-core machine a second thread mostly waits)."""
    run = RunStore(root).create(config, name)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train_run(run) == "finished"
    finally:
        torch.set_num_threads(previous)
    return run.read_metrics()


def test_a_real_run_built_to_lose_width_is_flagged_and_the_quick_cpu_demo_is_not(tmp_path):
    """Adam at lr 0.1 on WRN-10-2 kills ReLUs within its first epoch; the Quick CPU demo as it is keeps its width."""
    quick = PRESETS[QUICK_CPU].replace(device="cpu")
    assert width_rules(train_real(tmp_path, "quick", quick)) == []
    built = quick.replace(model=quick.model.__class__(depth=10, widen_factor=2), optimizer="adam", lr=0.1,
                          weight_decay=0.0, schedule="constant", synthetic_train=1000, synthetic_test=200,
                          batch_size=50, epochs=2)
    rules = width_rules(train_real(tmp_path, "adam-lr0.1", built))
    assert "dead-channels" in rules, rules
