"""wrn_core.plots.architecture: the feature-map width chart."""

from __future__ import annotations

import pandas as pd
import pytest

from wrn_core.plots import width_figure

from figures import titles


def layer_table_like(widths: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": range(len(widths)),
            "group": [g for g, _ in widths],
            "layer": [f"l{i}" for i in range(len(widths))],
            "kind": ["conv3x3"] * len(widths),
            "output_shape": ["?"] * len(widths),
            "out_channels": [w for _, w in widths],
        }
    )


def test_width_figure_step_chart_with_groups_and_jumps():
    table = layer_table_like(
        [("stem", 16), ("group 1", 16), ("group 1", 128), ("group 2", 128), ("group 2", 256), ("group 3", 256), ("group 3", 512), ("head", 10)]
    )
    fig = width_figure(table)
    assert len(fig.data) == 1
    assert fig.data[0].line.shape == "hv"
    assert list(fig.data[0].y) == [16, 16, 128, 128, 256, 256, 512, 10]
    texts = titles(fig)
    assert any("group 1" in t for t in texts) and any("group 3" in t for t in texts)
    assert {"16→128", "128→256", "256→512"} <= set(texts)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) >= 5 + 3  # 5 shaded groups + 3 boxed jumps

    narrow = layer_table_like([("stem", 16), ("group 1", 16), ("group 2", 32), ("group 3", 64), ("head", 10)])
    both = width_figure([("wide", table), ("narrow", narrow)])
    assert [t.name for t in both.data] == ["wide", "narrow"]
    assert both.data[0].line.color != both.data[1].line.color


def test_width_figure_from_real_layer_table():
    from wrn_core.config import WRNConfig
    from wrn_core.model import tables as summary_module

    table = summary_module.layer_table(WRNConfig(depth=10, widen_factor=2))
    fig = width_figure(table)
    assert max(fig.data[0].y) == 128  # 64k with k=2
    assert {"16→32", "32→64", "64→128"} <= set(titles(fig))


def _line_level_beside(trace, label) -> float:
    """The height of a step line ('hv') where the label sits: just right of its x when it reads rightwards from
    there (xanchor left), just left of it otherwise."""
    if label.xanchor == "left":
        return [y for x, y in zip(trace.x, trace.y) if x <= label.x][-1]
    return [y for x, y in zip(trace.x, trace.y) if x < label.x][-1]


def _check_labels_clear_of_their_lines(fig) -> list:
    from wrn_core.plots.architecture import JUMP_LABEL_SIZE

    y0, y1 = fig.layout.yaxis.range
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    px_per_channel = plot_px / (y1 - y0)
    half_text_px = JUMP_LABEL_SIZE * 1.3 / 2  # half a line of text, with its leading
    lines = {trace.line.color: trace for trace in fig.data}
    jumps = [a for a in fig.layout.annotations if "→" in a.text]
    for label in jumps:
        old, new = (int(w) for w in label.text.split("→"))
        assert label.yref in (None, "y") and label.yanchor == "middle"
        # Drawn where its model's line is not: beside the jump, at least half a line of text above the old width
        # and below the new one; right of the box the line runs at the new width, left of it at the old.
        level = _line_level_beside(lines[label.font.color], label)
        assert level == (new if label.xanchor == "left" else old), (label.text, level)
        assert (new - label.y) * px_per_channel >= half_text_px, label.text
        assert (label.y - old) * px_per_channel >= half_text_px, label.text
        assert label.bgcolor  # a backdrop where another model's line may pass
    return jumps


@pytest.mark.parametrize("k", [1, 8])
def test_jump_labels_sit_between_the_widths_they_join_clear_of_the_line(k):
    from wrn_core.config import WRNConfig
    from wrn_core.model import tables as summary_module

    fig = width_figure(summary_module.layer_table(WRNConfig(depth=16, widen_factor=k)))
    jumps = _check_labels_clear_of_their_lines(fig)
    assert len(jumps) == (3 if k > 1 else 2)  # with k=1 group 1 keeps the stem's 16 channels


def test_two_models_jump_labels_sit_on_either_side_of_their_jumps():
    from wrn_core.config import WRNConfig
    from wrn_core.model import tables as summary_module

    tables = [(f"WRN-{d}-{k}", summary_module.layer_table(WRNConfig(depth=d, widen_factor=k))) for d, k in ((22, 8), (28, 10))]
    fig = width_figure(tables)
    jumps = _check_labels_clear_of_their_lines(fig)
    first, second = fig.data[0].line.color, fig.data[1].line.color
    assert {a.xanchor for a in jumps if a.font.color == first} == {"left"}
    assert {a.xanchor for a in jumps if a.font.color == second} == {"right"}
    # The same group's two labels: the first model's starts right of where the second's ends.
    for a, b in zip([j for j in jumps if j.font.color == first], [j for j in jumps if j.font.color == second]):
        assert a.x > b.x, (a.text, b.text)


def test_width_axis_leaves_room_for_the_jump_boxes():
    table = layer_table_like([("stem", 16), ("group 1", 128), ("group 2", 256), ("group 3", 512), ("head", 10)])
    fig = width_figure(table)
    boxes = [s for s in fig.layout.shapes if s.type == "rect" and s.line.width]
    assert fig.layout.yaxis.range[0] == 0 and max(s.y1 for s in boxes) < fig.layout.yaxis.range[1]
