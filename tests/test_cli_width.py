"""Width over training outside the dashboard: `runs show --format json`, `runs export --format csv --width`, the
TensorBoard export's width/<layer> scalars, and --width-every on the command line."""

from __future__ import annotations

import csv
import io
import json
import shlex

import pytest

try:
    from tb_events import read_back
    from width_runs import width_run
except ImportError:  # tests/ imported as a package
    from tests.tb_events import read_back
    from tests.width_runs import width_run

from wrn_core.cli import build_parser, command_for, main, train_config_from_args
from wrn_core.store import RunStore


def fraction(layer: str, epoch: int) -> float:
    return 0.9 - epoch / 10 if layer == "head.relu" else 0.75


@pytest.fixture
def runs(tmp_path):
    store = RunStore(tmp_path / "runs")
    width_run(store, "w", k=1, epochs=2, fraction=fraction,
              dead=lambda layer, channels, epoch: 3 if layer == "head.relu" and epoch == 2 else 0)
    return store


def test_runs_show_json_carries_the_width_series(runs, capsys):
    assert main(["runs", "show", "w", "--format", "json", "--runs-dir", str(runs.root)]) == 0
    shown = json.loads(capsys.readouterr().out)  # only the JSON object: no table after it
    assert [row["epoch"] for row in shown["width"]] == [1, 2]
    head = shown["width"][1]["layers"][-1]
    assert head == {"layer": "head.relu", "channels": 64, "dead": 3, "effective": pytest.approx(0.7 * 64)}
    assert shown["width"][1]["groups"][-1]["group"] == "head"
    assert shown["width"][1]["groups"][-1]["dead_fraction"] == pytest.approx(3 / 64)
    assert {"name", "status", "config", "command", "findings"} <= set(shown)


def test_runs_show_text_says_the_last_width_in_one_line(runs, capsys):
    assert main(["runs", "show", "w", "--runs-dir", str(runs.root)]) == 0
    out = capsys.readouterr().out
    assert ("width use at epoch 2 (effective ÷ allocated): group 1 75% (0 dead), group 2 75% (0 dead), "
            "group 3 75% (0 dead), head 70% (3 dead)") in out.splitlines()


def test_runs_export_csv_width_writes_a_row_per_epoch_and_layer(runs, capsys):
    assert main(["runs", "export", "w", "--format", "csv", "--width", "--runs-dir", str(runs.root)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 * 7
    last = rows[-1]
    assert (last["epoch"], last["layer"], last["group"], last["channels"], last["dead"]) == ("2", "head.relu", "head", "64", "3")
    assert float(last["effective"]) == pytest.approx(44.8) and float(last["effective_fraction"]) == pytest.approx(0.7)
    assert "tags" in last and "note" in last


@pytest.mark.parametrize("fmt", ["json", "tensorboard"])
def test_width_with_another_format_is_one_line_and_exit_2(runs, capsys, tmp_path, fmt):
    args = ["runs", "export", "w", "--format", fmt, "--width", "--runs-dir", str(runs.root)]
    assert main(args + (["--out", str(tmp_path / "tb")] if fmt == "tensorboard" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--width needs --format csv" in err
    assert not (tmp_path / "tb").exists()


def test_tensorboard_export_writes_effective_and_dead_per_layer_at_each_epochs_step(runs, tmp_path, capsys):
    out = tmp_path / "tb"
    assert main(["runs", "export", "w", "--format", "tensorboard", "--out", str(out), "--runs-dir", str(runs.root)]) == 0
    scalars = read_back(out).scalars
    assert scalars["width/head.relu/effective"] == [(10, pytest.approx(0.8 * 64)), (20, pytest.approx(0.7 * 64))]
    assert scalars["width/head.relu/dead"] == [(10, 0.0), (20, 3.0)]
    assert len([tag for tag in scalars if tag.startswith("width/")]) == 2 * 7


def test_width_every_is_a_flag_command_for_writes_and_a_negative_value_is_refused(capsys, tmp_path):
    config = train_config_from_args(build_parser().parse_args(["train", "--width-every", "3"]))
    assert config.width_every == 3
    words = shlex.split(command_for(config))
    assert words[words.index("--width-every") + 1] == "3"
    assert train_config_from_args(build_parser().parse_args(words[3:])) == config
    assert train_config_from_args(build_parser().parse_args(["train"])).width_every == 1  # the default
    assert main(["train", "--width-every", "-1", "--dataset", "synthetic", "--device", "cpu",
                 "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "width every must be >= 0" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run made
