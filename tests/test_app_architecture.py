"""The Architecture page under AppTest: compare starts from the model just set; depth steps through valid depths."""

from __future__ import annotations

from test_app import new_app, no_exception, open_page


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
    assert depth.value == 16 and depth.step == 6 and depth.min == 10
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
