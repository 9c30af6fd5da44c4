"""Run annotations (store/meta.py): validation, atomic replacement, concurrent annotators, damaged files."""

from __future__ import annotations

import json
import threading

import pytest

from wrn_core.store import AnnotationError, RunStore
from wrn_core.store.meta import MAX_NOTE_CHARS, META_FILE, read_annotations, update_annotations, validate_tag
from tiny_runs import tiny_config


@pytest.fixture()
def run(tmp_path):
    return RunStore(tmp_path).create(tiny_config(), name="r")


def test_no_meta_file_is_no_annotations(run):
    annotations = run.read_annotations()
    assert (annotations.tags, annotations.note, annotations.problem) == ((), "", "")
    assert not (run.path / META_FILE).exists()


def test_tags_are_added_sorted_unique_and_removed(run):
    assert run.annotate(add_tags=["k2", "baseline", "k2"]).tags == ("baseline", "k2")
    assert run.annotate(add_tags=["a"]).tags == ("a", "baseline", "k2")
    assert run.annotate(remove_tags=["baseline"]).tags == ("a", "k2")
    assert json.loads((run.path / META_FILE).read_text())["tags"] == ["a", "k2"]
    assert run.annotate(tags=["x"]).tags == ("x",)  # replace the set (the Runs page's inline editor)


def test_note_is_set_kept_beside_tags_and_cleared_by_empty_text(run):
    run.annotate(add_tags=["t"])
    assert run.annotate(note="lr too high?\nsecond line").note == "lr too high?\nsecond line"
    assert run.read_annotations().tags == ("t",)
    assert run.annotate(note="").note == ""
    assert run.read_annotations().tags == ("t",)


@pytest.mark.parametrize("tag", ["has space", "a/b", "", "-lead", "x" * 65, "tab\t"])
def test_bad_tags_are_refused_in_one_line_and_change_nothing(run, tag):
    run.annotate(add_tags=["keep"], note="n")
    before = (run.path / META_FILE).read_bytes()
    with pytest.raises(AnnotationError) as info:
        run.annotate(add_tags=["ok", tag])
    assert "\n" not in str(info.value)
    assert (run.path / META_FILE).read_bytes() == before


def test_removing_a_tag_the_run_lacks_is_an_error(run):
    run.annotate(add_tags=["a"])
    with pytest.raises(AnnotationError, match="has no tag 'b'"):
        run.annotate(remove_tags=["b"])
    assert run.read_annotations().tags == ("a",)


def test_a_note_over_the_limit_is_refused(run):
    run.annotate(note="short")
    with pytest.raises(AnnotationError, match="10,001 characters; at most 10,000"):
        run.annotate(note="x" * (MAX_NOTE_CHARS + 1))
    assert run.read_annotations().note == "short"
    assert len(run.annotate(note="y" * MAX_NOTE_CHARS).note) == MAX_NOTE_CHARS


def test_validate_tag_accepts_the_documented_characters():
    for tag in ("wrn-28-10", "lr=0.1", "seed:3", "v1.2", "a+b", "me@lab", "A_B"):
        assert validate_tag(tag) == tag


def test_a_damaged_meta_file_is_a_problem_on_read_and_is_never_overwritten(run):
    (run.path / META_FILE).write_text("{not json")
    annotations = read_annotations(run.path)
    assert annotations.tags == () and "meta.json unreadable" in annotations.problem
    with pytest.raises(AnnotationError, match="fix or remove"):
        run.annotate(add_tags=["t"])
    assert (run.path / META_FILE).read_text() == "{not json"
    summary = RunStore(run.path.parent).summary("r")  # the listing still has the run, with its problem
    assert "meta.json unreadable" in summary.problem


def test_concurrent_annotators_lose_no_tag(run):
    """Each thread adds its own tags; the meta lock serialises read-modify-write, so all of them survive."""
    errors = []

    def add(i: int) -> None:
        try:
            for j in range(10):
                update_annotations(run.path, add_tags=[f"t{i}-{j}"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(run.read_annotations().tags) == 40


def test_summary_and_runs_frame_carry_tags_and_note(run):
    from wrn_core.analysis import runs_frame

    run.annotate(add_tags=["b", "a"], note="why")
    summary = RunStore(run.path.parent).summary("r")
    assert (summary.tags, summary.note) == (("a", "b"), "why")
    frame = runs_frame([summary])
    assert frame.loc[0, "tags"] == ["a", "b"] and frame.loc[0, "note"] == "why"


def test_annotating_a_missing_run_directory_is_an_error(tmp_path):
    with pytest.raises(AnnotationError, match="no run at"):
        update_annotations(tmp_path / "ghost", add_tags=["t"])
    assert not (tmp_path / "ghost").exists()
