"""wrn_core.plots.architecture: two models compared line up by group, boxes in their own colours, labels above."""

from __future__ import annotations

from wrn_core.config import WRNConfig
from wrn_core.model.tables import layer_table
from wrn_core.plots import width_figure


def compare():
    small = layer_table(WRNConfig(depth=10, widen_factor=8))
    big = layer_table(WRNConfig(depth=28, widen_factor=10))
    return small, big, width_figure([("WRN-10-8", small), ("WRN-28-10", big)])


def first_x_of(table, trace, group: str) -> float:
    return min(x for x, g in zip(trace.x, table["group"]) if g == group)


def test_compared_models_line_up_by_group():
    small, big, fig = compare()
    a, b = fig.data
    assert max(a.x) < 5 and max(b.x) < 5  # the same span, however many layers each has
    for group, slot in (("group 1", 1), ("group 2", 2), ("group 3", 3), ("head", 4)):
        assert slot <= first_x_of(small, a, group) < slot + 0.5
        assert slot <= first_x_of(big, b, group) < slot + 0.5


def test_each_models_jump_boxes_take_its_line_colour():
    _, _, fig = compare()
    box_colours = [s.line.color for s in fig.layout.shapes if s.type == "rect" and s.line.width]
    assert sorted(set(box_colours)) == sorted({fig.data[0].line.color, fig.data[1].line.color})
    assert box_colours.count(fig.data[0].line.color) == 3 and box_colours.count(fig.data[1].line.color) == 3
    jumps = [a for a in fig.layout.annotations if "→" in a.text]
    assert {a.font.color for a in jumps} == {fig.data[0].line.color, fig.data[1].line.color}


def test_group_labels_sit_above_the_plot():
    _, _, fig = compare()
    labels = [a for a in fig.layout.annotations if a.text.startswith(("group", "stem", "head"))]
    assert [a.text.split("<br>")[0] for a in labels] == ["stem", "group 1", "group 2", "group 3", "head"]
    assert all(a.yref == "paper" and a.y >= 1 and a.yanchor == "bottom" for a in labels)
    assert "128 ch / 160 ch" in labels[1].text  # both models' widths of group 1
