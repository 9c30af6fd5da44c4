"""The Architecture page under AppTest: compare starts from the model just set; depth steps through valid depths."""

from __future__ import annotations

import json

from harness.apptest import new_app, no_exception, open_page


def test_compare_starts_a_from_the_config_just_set():
    at = open_page(new_app(), "architecture")
    at.number_input(key="arch_n").set_value(3).run()
    at.number_input(key="arch_k").set_value(4).run()
    at.number_input(key="arch_dropout").set_value(0.1).run()
    at.toggle(key="arch_compare").set_value(True).run()
    no_exception(at)
    assert (at.number_input(key="arch_a_n").value, at.number_input(key="arch_a_k").value) == (3, 4)
    assert at.number_input(key="arch_a_dropout").value == 0.1
    markdown = " ".join(md.value for md in at.markdown)
    assert "WRN-22-4" in markdown and "WRN-28-10" in markdown


def test_the_depth_input_steps_through_valid_depths_only():
    at = open_page(new_app(), "architecture")
    at.radio(key="arch_by").set_value("depth d = 6N+4").run()
    depth = at.number_input(key="arch_depth")
    assert depth.value == 16 and depth.step == 6
    depth.increment().run()
    no_exception(at)
    assert at.number_input(key="arch_depth").value == 22 and not at.error
    assert any("WRN-22-8" in md.value for md in at.markdown)


def test_compare_untouched_sets_the_shown_wrn_16_8_against_wrn_28_10():
    """README: A starts as the model set above (WRN-16-8 unless changed), B as the paper's WRN-28-10."""
    at = open_page(new_app(), "architecture")
    at.toggle(key="arch_compare").set_value(True).run()
    no_exception(at)
    a = tuple(at.number_input(key=f"arch_a_{field}").value for field in ("n", "k"))
    b = tuple(at.number_input(key=f"arch_b_{field}").value for field in ("n", "k", "dropout"))
    assert (a, b) == ((2, 8), (4, 10, 0.3))
    headings = [md.value.splitlines()[0] for md in at.markdown if md.value.startswith("### WRN-")]
    assert headings[:2] == ["### WRN-16-8", "### WRN-28-10"]


def depth_page():
    at = open_page(new_app(), "architecture")
    at.radio(key="arch_by").set_value("depth d = 6N+4").run()
    return at


def test_a_typed_depth_is_said_as_typed_and_the_nearest_valid_one_shown():
    # No bounds in the box: the browser would refuse 9 unseen and the page would go on with the last valid depth.
    at = depth_page()
    assert at.number_input(key="arch_depth").min is None
    at.number_input(key="arch_depth").set_value(9).run()
    no_exception(at)
    assert [w.value for w in at.warning] == ["depth 9 is too small; the smallest valid depth is 10 (N=1): showing depth 10"]
    assert at.number_input(key="arch_depth").value == 10 and any("WRN-10-8" in md.value for md in at.markdown)
    at.number_input(key="arch_depth").set_value(15).run()
    assert [w.value for w in at.warning] == ["depth 15 is not 6N+4; the nearest valid depths are 10 and 16: showing depth 16"]
    at.number_input(key="arch_depth").set_value(27).run()
    assert at.number_input(key="arch_depth").value == 28 and "showing depth 28" in at.warning[0].value


def test_plus_and_minus_after_an_invalid_depth_step_between_valid_ones():
    at = depth_page()
    at.number_input(key="arch_depth").set_value(15).run()
    at.number_input(key="arch_depth").increment().run()
    no_exception(at)
    assert at.number_input(key="arch_depth").value == 22 and not at.warning and not at.error  # 16 + 6, not 21
    at.number_input(key="arch_depth").set_value(15).run()
    at.number_input(key="arch_depth").decrement().run()
    assert at.number_input(key="arch_depth").value == 10 and not at.warning  # 16 − 6
    at.number_input(key="arch_depth").decrement().run()
    assert at.number_input(key="arch_depth").value == 10  # below the smallest: said, and it stays
    assert at.warning and "smallest valid depth is 10" in at.warning[0].value


def test_the_block_and_layer_tables_read_like_the_group_table():
    at = open_page(new_app(), "architecture")
    tables = {tuple(d.value.columns): d for d in at.dataframe}
    blocks = next(d for cols, d in tables.items() if "projection" in cols)
    layers = next(d for cols, d in tables.items() if "layer" in cols)
    for table in (blocks, layers):
        config = json.loads(table.proto.columns)
        assert config["macs"]["label"] == "MACs" and config["macs"]["type_config"]["format"] == "localized"
        assert config["params"]["type_config"]["format"] == "localized"
        # The stem and head belong to no block: "—", not None.
        shown = table.value["block"].tolist()
        assert shown[0] == "—" and shown[-1] == "—" and "None" not in map(str, shown)


def test_the_compare_table_shows_each_figure_in_its_unit():
    at = open_page(new_app(), "architecture")
    at.toggle(key="arch_compare").set_value(True).run()
    no_exception(at)
    table = next(d.value for d in at.dataframe if "B / A" in d.value.columns)
    b = table.set_index("")["WRN-28-10"]
    assert b["parameters"] == "36,479,194" and b["MACs / image"] == "5.24 G"
    assert b["model size (fp32)"] == "139.2 MiB"  # as the metric above it says, not 139.157
    assert table["B / A"].iloc[0] > 1
