"""wrn_core.analysis.health: diagnose on hand-made records for each rule and its edges, and on real tiny runs."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from wrn_core.analysis import SEVERITIES, diagnose
from wrn_core.config import TrainConfig, WRNConfig
from wrn_core.data import make_synthetic
from wrn_core.presets import PRESETS, QUICK_CPU
from wrn_core.reference import official_log
from wrn_core.store import RunStore
from wrn_core.engine.loop import train_run

from metric_records import RECORDS, step


def ep(n: int, train_acc: float | None, test_acc: float | None, train_loss: float | None = None,
       step: int | None = None, test_loss: float | None = 1.0) -> dict:
    """An epoch record with the fields diagnose reads (by default 150 steps per epoch, loss 2/n)."""
    return {"kind": "epoch", "epoch": n, "step": 150 * n if step is None else step, "images_seen": 4800 * n,
            "train_loss": 2.0 / n if train_loss is None else train_loss, "train_acc": train_acc,
            "test_loss": test_loss, "test_acc": test_acc}


def losses(*values: float) -> list[dict]:
    return [step(i + 1, (i + 1) / 10, v, 0.3) for i, v in enumerate(values)]


def rules(records, config=None) -> list[str]:
    return [f.rule for f in diagnose(records, config)]


def test_diagnose_finds_nothing_in_healthy_records():
    config = TrainConfig(model=WRNConfig(depth=10, widen_factor=1))
    assert diagnose(RECORDS, config) == [] and diagnose(RECORDS, config.to_dict()) == [] and diagnose(RECORDS) == []


def test_diagnose_says_too_early_to_judge_never_healthy_before_the_at_chance_rules_may_judge():
    (nothing,) = diagnose([])
    assert (nothing.rule, nothing.severity) == ("too-early", "info")
    assert nothing.message == "too early to judge: no training step recorded yet"
    # 15 steps, test and train accuracy at chance: the reported short run without an exploded loss.
    short = [ep(n, 0.11, 0.10, train_loss=2.3, step=5 * n) for n in (1, 2, 3)]
    (finding,) = diagnose(short)
    assert (finding.rule, finding.severity) == ("too-early", "info")
    assert finding.message.startswith("too early to judge: test accuracy 10.0% and train accuracy 11.0% are at chance")
    assert "after 15 steps and 3 epochs" in finding.message and "first 100 steps" in finding.message
    assert "train longer" in finding.advice
    assert rules([step(3, 0.1, 2.3, 0.1)]) == ["too-early"]  # steps only, none evaluated yet
    assert rules([ep(1, 0.40, 0.10, step=40)]) == ["too-early"]  # train climbs, test not yet judged
    assert rules([ep(1, 0.40, 0.35, step=40)]) == []  # both left the chance band: learning, nothing to wait for
    assert rules([ep(1, 0.11, 0.10, train_loss=2.0, step=250)]) == ["train-at-chance"]  # judged: no "too early"


def test_diagnose_test_at_chance_while_train_climbs():
    records = [ep(1, 0.30, 0.10), ep(2, 0.60, 0.11)]
    (finding,) = diagnose(records, {"model": {"num_classes": 10}})
    assert (finding.rule, finding.severity) == ("test-at-chance", "error")
    assert "11.0%" in finding.message and "60.0%" in finding.message
    assert "BatchNorm" in finding.advice and "labels" in finding.advice
    assert rules(records[:1]) == ["too-early"]  # one epoch is too early, and says so
    assert rules([ep(1, 0.30, 0.40), ep(2, 0.60, 0.11)]) == []  # only the last evaluation: noise
    assert rules([ep(1, 0.15, 0.10), ep(2, 0.18, 0.11)]) == []  # train accuracy has not climbed
    assert rules([ep(1, 0.30, 0.10, step=40), ep(2, 0.60, 0.11, step=80)]) == ["too-early"]  # under 100 steps
    # Chance depends on the classes: 11% is far above chance (1%) for 100 classes.
    assert rules(records, TrainConfig(model=WRNConfig(depth=10, widen_factor=1, num_classes=100))) == []
    assert rules([ep(1, 0.30, 0.005), ep(2, 0.60, 0.012)], {"model": {"num_classes": 100}}) == ["test-at-chance"]


def test_diagnose_train_at_chance_after_an_epoch_and_200_steps():
    (finding,) = diagnose([ep(1, 0.11, 0.10, train_loss=2.0, step=250)])
    assert (finding.rule, finding.severity) == ("train-at-chance", "warning")
    assert "learning rate" in finding.advice and "data" in finding.advice
    assert rules([ep(1, 0.11, 0.10, train_loss=2.0, step=150)]) == ["too-early"]  # a tiny data set's first epoch
    assert rules([ep(1, 0.40, 0.35, train_loss=2.0, step=250)]) == []
    # Two classes: chance is 50%, the band stops 10 points above it (not at 1.5 x 50% = 75%).
    assert rules([ep(1, 0.58, 0.5, train_loss=0.6, step=250)], {"model": {"num_classes": 2}}) == ["train-at-chance"]
    # Train accuracy out of the band; the test set's one evaluation at chance is not judged yet.
    assert rules([ep(1, 0.70, 0.5, train_loss=0.6, step=250)], {"model": {"num_classes": 2}}) == ["too-early"]


def test_diagnose_divergence():
    nan = [*losses(2.3, 2.1), step(3, 0.3, float("nan"), 0.1)]
    (finding,) = diagnose(nan)
    assert (finding.rule, finding.severity) == ("not-finite", "error") and "step 3" in finding.message
    assert rules([ep(1, 0.3, 0.2, test_loss=float("inf"))]) == ["not-finite"]
    exploded = diagnose(losses(2.4, 3.1, 40.0))
    assert [(f.rule, f.severity) for f in exploded] == [("exploded", "error")]
    assert "learning rate" in exploded[0].advice
    rising = diagnose(losses(2.3, 1.2, 1.0, 1.0, 0.9, 2.4, 2.5, 2.6))
    assert [(f.rule, f.severity) for f in rising] == [("diverging", "warning")]
    assert rules(losses(2.3, 1.2, 1.0, 1.0, 0.9, 2.6, 0.9)) == []  # one noisy point is not a trend
    assert rules(losses(2.3, 1.2, 0.4, 0.2, 0.5)) == []  # more than doubled, but far below a uniform guess


def test_diagnose_an_exploded_test_loss_while_the_train_loss_looks_sane():
    reported = [ep(1, 0.10, 0.10, train_loss=4.9, test_loss=24_139.0, step=5)]  # Adam at lr 5, as a user met it
    (finding,) = diagnose(reported)
    assert (finding.rule, finding.severity) == ("test-exploded", "error")
    assert finding.message == ("test loss 2.414e+04 at epoch 1 is over 10x a uniform guess's (2.30 for 10 classes) "
                               "with test accuracy 10.0%, at chance: training diverged")
    assert "learning rate" in finding.advice
    confident = diagnose([ep(1, 0.9, 0.6, test_loss=30.0)])
    assert [(f.rule, f.message.endswith("confidently wrong")) for f in confident] == [("test-exploded", True)]
    # A healthy run's first evaluation can be a few times a uniform guess (eval-mode BatchNorm statistics).
    assert rules([ep(1, 0.4, 0.3, test_loss=3.75 * 2.3026)]) == []
    assert rules([ep(1, 0.4, 0.3, test_loss=50.0), ep(2, 0.5, 0.4, test_loss=1.9)]) == []  # only the latest counts


def test_diagnose_overfitting_gap_large_and_growing():
    records = [ep(1, 0.50, 0.45), ep(2, 0.65, 0.52), ep(3, 0.78, 0.58), ep(4, 0.88, 0.60), ep(5, 0.95, 0.61)]
    (finding,) = diagnose(records)
    assert (finding.rule, finding.severity) == ("overfitting", "warning")
    assert "34 points" in finding.message  # 95% - 61%
    assert "augmentation" in finding.advice and "dropout" in finding.advice and "weight decay" in finding.advice
    steady = [ep(1, 0.90, 0.70), ep(2, 0.92, 0.72), ep(3, 0.93, 0.74), ep(4, 0.95, 0.76)]
    assert rules(steady) == []  # large but not growing
    assert rules(records[:3]) == []  # too few epochs to call a trend


def test_diagnose_flat_loss():
    stuck = [ep(n, 0.4, 0.4, train_loss=v) for n, v in enumerate((2.300, 2.304, 2.298, 2.301), start=1)]
    (finding,) = diagnose(stuck)
    assert (finding.rule, finding.severity) == ("flat-loss", "warning") and "3 epochs" in finding.message
    plateau = [ep(n, 0.8, 0.75, train_loss=v) for n, v in enumerate((0.500, 0.502, 0.499, 0.501), start=1)]
    assert [(f.rule, f.severity) for f in diagnose(plateau)] == [("flat-loss", "info")]
    assert rules(plateau[1:]) == []  # only 2 epochs of it
    fitted = [ep(n, 1.0, 0.9, train_loss=v) for n, v in enumerate((0.0100, 0.0101, 0.0100, 0.0100), start=1)]
    assert rules(fitted) == []
    assert rules([ep(n, 0.8, 0.75, train_loss=v) for n, v in enumerate((0.6, 0.55, 0.5, 0.45), start=1)]) == []


def test_diagnose_orders_by_severity_and_tolerates_odd_records():
    records = [
        {"kind": "resume", "step": 0},  # kinds diagnose does not know are ignored
        {"kind": "system", "cpu": 0.5},
        {"kind": "epoch"},  # no epoch number
        {"kind": "step", "step": None, "train_loss": 1.0},
        {"kind": "epoch", "epoch": 1, "step": "x", "train_acc": "high", "test_acc": None},
        "not a record",
        *[ep(n, 0.4, 0.4, train_loss=v, step=250 * n) for n, v in enumerate((2.300, 2.304, 2.298, 2.301), start=1)],
        ep(5, 0.45, 0.40, train_loss=2.301, step=1250),
        step(1300, 5.1, 9.0, 0.1),
    ]
    findings = diagnose(records, {"model": "not a dict"})
    assert [f.severity for f in findings] == sorted((f.severity for f in findings), key=SEVERITIES.index)
    assert findings[0].rule == "exploded"
    with pytest.raises(dataclasses.FrozenInstanceError):
        findings[0].severity = "info"  # type: ignore[misc]
    assert diagnose([{"kind": "epoch", "epoch": 1, "step": 500, "train_acc": None, "test_acc": None,
                      "train_loss": None}]) == []


def test_diagnose_the_authors_own_log_raises_no_warning():
    """The paper's WRN-40-4 run, 200 epochs, as epoch records: at most an info (its lr-0.1 plateau)."""
    records = [{"kind": "epoch", "epoch": int(r.epoch), "step": 391 * int(r.epoch), "train_loss": r.train_loss,
                "test_acc": r.test_acc} for r in official_log().itertuples()]
    for end in range(1, len(records) + 1):
        assert all(f.severity == "info" for f in diagnose(records[:end])), end


# ---------------------------------------------------------------------------------------------
# diagnose on real tiny runs (WRN-10-1 on the CPU, a few seconds each)

# The Quick CPU demo shrunk: 1,000 synthetic images, batch 32, 4 epochs of 31 steps (about 50%
# train and test accuracy at the end). 400 test images: with random labels their accuracy is
# 10% +- 1.5%, well inside the 15% chance band.
HEALTHY = PRESETS[QUICK_CPU].replace(synthetic_train=1000, synthetic_test=400, batch_size=32, epochs=4, device="cpu")


def train_tiny(root: Path, name: str, config: TrainConfig) -> tuple[list[dict], dict, str]:
    """Train a run in this process: (metrics records, config.json, final status).

    With one CPU thread: on a shared 2-core machine a second thread mostly waits for a
    descheduled peer (see bench.common --threads), which made these runs 3-4x slower.
    """
    run = RunStore(root).create(config, name)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        status = train_run(run)
    finally:
        torch.set_num_threads(previous)
    return run.read_metrics(), run.read_config_dict(), status


def write_shuffled_folder(root: Path, config: TrainConfig) -> Path:
    """The same synthetic images as PNGs: train/<class>/ correct, test/ images in random class folders."""
    data = make_synthetic(config.synthetic_train, config.synthetic_test, seed=config.seed)
    rng = random.Random(0)
    for split, images, labels in (("train", data.train_images, data.train_labels),
                                  ("test", data.test_images, data.test_labels)):
        for index, (image, label) in enumerate(zip(images, labels.tolist())):
            name = data.classes[label] if split == "train" else rng.choice(data.classes)
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{index:05d}.png")
    return root


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("health-runs")


def test_real_healthy_run_raises_no_problem_at_any_point(runs_root):
    records, config, status = train_tiny(runs_root, "healthy", HEALTHY)
    assert status == "finished"
    seen = []
    for end in range(1, len(records) + 1):  # what the live view sees after every record
        findings = diagnose(records[:end], config)
        assert [f.rule for f in findings] in ([], ["too-early"]), (end, records[end - 1], findings)
        seen.append(bool(findings))
    assert seen[0], "before its first step a run is too early to judge, not healthy"
    assert not seen[-1], "the finished run, well above chance, has nothing to say"


def test_real_run_with_shuffled_test_labels_is_flagged(runs_root, tmp_path):
    folder = write_shuffled_folder(tmp_path / "shuffled", HEALTHY)
    config = HEALTHY.replace(dataset="folder", data_dir=str(folder))
    records, stored, status = train_tiny(runs_root, "shuffled", config)
    assert status == "finished"
    findings = diagnose(records, stored)
    assert [(f.rule, f.severity) for f in findings] == [("test-at-chance", "error")], findings
    assert "BatchNorm" in findings[0].advice


def test_real_run_at_lr_50_is_flagged_as_diverged(runs_root):
    # log_every 1: the engine writes no record for the step whose loss turns NaN, so log every step.
    config = HEALTHY.replace(lr=50.0, schedule="constant", epochs=1, log_every=1)
    records, config, status = train_tiny(runs_root, "lr50", config)
    # BatchNorm usually keeps the exploding loss finite (1e9 and more), so the engine may finish.
    assert status in ("finished", "diverged")
    assert [r for r in records if r["kind"] == "step"], "diagnose needs the records to judge"
    assert {f.rule for f in diagnose(records, config) if f.severity == "error"} & {"exploded", "not-finite"}


def test_real_short_run_at_adam_lr_5_is_flagged_never_healthy(runs_root, capsys):
    """The case a user met: Adam at lr 5, 3 short epochs on synthetic images, test accuracy at chance and
    the test loss in the thousands, which every page and `runs show` called healthy."""
    config = HEALTHY.replace(optimizer="adam", lr=5.0, synthetic_train=320, synthetic_test=200, batch_size=64,
                             epochs=3, log_every=1)  # 5 steps an epoch, 15 in all
    records, stored, _ = train_tiny(runs_root, "adam-lr5", config)
    evaluated = [r for r in records if r["kind"] == "epoch"]
    assert len(evaluated) == 3 and evaluated[-1]["test_acc"] <= 0.15  # at chance, as reported
    findings = diagnose(records, stored)
    assert findings and findings[0].severity == "error", findings
    assert findings[0].rule in {"test-exploded", "exploded", "not-finite"}
    from wrn_core.cli import main

    assert main(["runs", "show", "adam-lr5", "--runs-dir", str(runs_root)]) == 0
    shown = capsys.readouterr().out
    assert "no problems found" not in shown and f"error: {findings[0].message}" in shown


def test_real_short_run_at_chance_says_too_early_to_judge(runs_root, capsys):
    config = HEALTHY.replace(lr=1e-5, schedule="constant", synthetic_train=320, synthetic_test=200, batch_size=64,
                             epochs=3, log_every=1)  # 15 steps at a rate that barely moves the weights
    records, stored, _ = train_tiny(runs_root, "short-at-chance", config)
    (finding,) = diagnose(records, stored)
    assert (finding.rule, finding.severity) == ("too-early", "info")
    assert finding.message.startswith("too early to judge: ") and "after 15 steps and 3 epochs" in finding.message
    from wrn_core.cli import main

    assert main(["runs", "show", "short-at-chance", "--runs-dir", str(runs_root)]) == 0
    shown = capsys.readouterr().out
    assert "no problems found" not in shown and "info: too early to judge: " in shown


def test_real_run_at_a_tiny_lr_is_stuck_at_chance_and_flat(runs_root):
    config = HEALTHY.replace(synthetic_train=400, synthetic_test=100, batch_size=8, epochs=4, lr=1e-5,
                             schedule="constant", log_every=25)  # 4 x 50 = 200 steps
    records, stored, _ = train_tiny(runs_root, "tiny-lr", config)
    assert {(f.rule, f.severity) for f in diagnose(records, stored)} == {("train-at-chance", "warning"),
                                                                        ("flat-loss", "warning")}


def test_real_run_without_augmentation_on_300_images_overfits(runs_root):
    config = HEALTHY.replace(synthetic_train=300, synthetic_test=200, batch_size=32, epochs=6, lr=0.05,
                             schedule="constant", augment=False)
    records, stored, _ = train_tiny(runs_root, "overfit", config)
    assert [f.rule for f in diagnose(records, stored)] == ["overfitting"]
