"""wrn_core.plots.architecture: the feature-map width chart."""

from __future__ import annotations

import pandas as pd

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
