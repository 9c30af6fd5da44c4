"""Tags and notes on the pages: one run's (text boxes), many runs' (a table edited in place), a sweep's cells as a
group (Tag all cells), each saved to the run's meta.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import messages
from dashboard.settings_importance import draw_importance
from dashboard.widgets import widget_key
from wrn_core.analysis import note_preview
from wrn_core.errors import one_line
from wrn_core.store import Run, RunStore, RunStoreError
from wrn_core.store.meta import validate_tag

NOTE_PREVIEW = 60  # characters of a note shown in a table


def typed_tags(text: str) -> list[str]:
    """Tags as typed into a text box: separated by spaces or commas."""
    return text.replace(",", " ").split()


def save_tags(store_root: str, name: str, key: str, flash_key: str) -> None:
    """on_click of Save tags: the text (tags separated by spaces or commas) replaces the run's tags."""
    messages.clear_flash(flash_key)
    text = st.session_state.get(key) or ""
    tags = typed_tags(text)
    try:
        Run(Path(store_root) / name).annotate(tags=tags)
    except RunStoreError as exc:  # AnnotationError: a bad tag; nothing was written
        messages.flash(flash_key, messages.ERROR, one_line(exc), about=name)
        return
    messages.flash(flash_key, messages.SUCCESS, f"Tags of {name}: {', '.join(sorted(set(tags))) or 'none'}.", about=name)


def save_note(store_root: str, name: str, key: str, flash_key: str) -> None:
    """on_click of Save note: the text area replaces the run's note (empty clears it)."""
    messages.clear_flash(flash_key)
    try:
        Run(Path(store_root) / name).annotate(note=st.session_state.get(key) or "")
    except RunStoreError as exc:
        messages.flash(flash_key, messages.ERROR, one_line(exc), about=name)
        return
    messages.flash(flash_key, messages.SUCCESS, f"Saved the note of {name}.", about=name)


def draw_annotations(store: RunStore, run: Run, prefix: str) -> None:
    """The run's tags (a text input + Save tags) and note (a text area + Save note), saved to meta.json.

    The widgets' keys carry the annotations' last change, so a saved (or elsewhere changed) value shows
    as saved, while a rejected one stays as typed beside its error."""
    annotations = run.read_annotations()
    if annotations.problem:
        messages.show_error(annotations.problem)
    flash_key = prefix + "annotate"
    tags_key = widget_key(prefix + "tags_", run.name, annotations.updated_at)
    note_key = widget_key(prefix + "note_", run.name, annotations.updated_at)
    st.session_state.setdefault(tags_key, " ".join(annotations.tags))
    st.session_state.setdefault(note_key, annotations.note)
    t1, t2 = st.columns([4, 1], vertical_alignment="bottom")
    t1.text_input("Tags", key=tags_key, placeholder="e.g. baseline cifar-long",
                  help="separated by spaces or commas; letters, digits and . _ : + = @ - (no spaces or '/')")
    t2.button("Save tags", key=prefix + "save_tags", on_click=save_tags,
              args=(str(store.root), run.name, tags_key, flash_key), width="stretch")
    st.text_area("Note", key=note_key, height=90, placeholder="what this run tried, what it showed")
    st.button("Save note", key=prefix + "save_note", on_click=save_note,
              args=(str(store.root), run.name, note_key, flash_key))
    messages.show_flash(flash_key, about=run.name)


def apply_table_edits(store_root: str, names: Sequence[str], edited_rows: Mapping[Any, Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """Save the tags/note cells edited in the annotations table (st.data_editor's `edited_rows`: row position ->
    changed columns) to each run's meta.json. Returns (runs saved, one-line errors); a run with a bad value
    is left as it was, the others are saved."""
    saved, errors = [], []
    for row, change in sorted(edited_rows.items(), key=lambda item: int(item[0])):
        position = int(row)
        if not 0 <= position < len(names):
            continue
        name = names[position]
        tags = change.get("tags")
        note = change.get("note")
        try:
            Run(Path(store_root) / name).annotate(
                tags=None if tags is None else [str(t) for t in tags],
                note=None if note is None else str(note),
            )
        except RunStoreError as exc:  # AnnotationError: a bad tag or note; this run is unchanged
            errors.append(f"{name}: {one_line(exc)}")
            continue
        saved.append(name)
    return saved, errors


def _save_table_edits(store_root: str, names: list[str], key: str, flash_key: str) -> None:
    """on_change of the annotations table: save what was edited, say what was and what was refused."""
    messages.clear_flash(flash_key)
    edited = (st.session_state.get(key) or {}).get("edited_rows", {})
    saved, errors = apply_table_edits(store_root, names, edited)
    if errors:
        messages.flash(flash_key, messages.ERROR, errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    elif saved:
        messages.flash(flash_key, messages.SUCCESS, f"Saved the tags and notes of {', '.join(saved)}.")
    st.session_state[flash_key + "_round"] = st.session_state.get(flash_key + "_round", 0) + 1  # a fresh table


def draw_annotations_table(store: RunStore, shown: pd.DataFrame, prefix: str) -> None:
    """Every shown run's tags and note, edited in place: pick or type tags in a cell, type the note; saved on change."""
    flash_key = prefix + "table_annotate"
    names = list(shown["name"])
    in_use = sorted({t for tags in shown["tags"] for t in tags})
    table = pd.DataFrame({"name": names, "tags": [list(t) for t in shown["tags"]], "note": list(shown["note"])})
    key = widget_key(prefix + "annotations_", *names, st.session_state.get(flash_key + "_round", 0))
    st.data_editor(
        table, key=key, hide_index=True, num_rows="fixed", disabled=["name"],
        on_change=_save_table_edits, args=(str(store.root), names, key, flash_key),
        column_config={
            "tags": st.column_config.MultiselectColumn(
                options=in_use, accept_new_options=True,
                help="pick tags or type new ones: letters, digits and . _ : + = @ - (no spaces or '/')"),
            "note": st.column_config.TextColumn(help="at most 10,000 characters", max_chars=10_000),
        },
    )
    messages.show_flash(flash_key)


def tag_cells(store_root: str, runs: Sequence[str], key: str, flash_key: str) -> None:
    """on_click of Tag all cells: add the typed tag(s) to every cell that has a run; all checked before any is written."""
    messages.clear_flash(flash_key)
    tags = typed_tags(st.session_state.get(key) or "")
    if not tags:
        messages.flash(flash_key, messages.ERROR, "type a tag to add to every cell")
        return
    try:
        for tag in tags:
            validate_tag(tag)
        for name in runs:
            Run(Path(store_root) / name).annotate(add_tags=tags)
    except RunStoreError as exc:  # AnnotationError: one line
        messages.flash(flash_key, messages.ERROR, one_line(exc))
        return
    messages.flash(flash_key, messages.SUCCESS, f"Tagged {len(runs)} cell(s) {', '.join(tags)}.")


def draw_sweep_tags_and_importance(store: RunStore, sweep: Any, cells: pd.DataFrame) -> None:
    """A sweep's cells as a group: their tags and notes, Tag all cells, and which of its axes mattered
    (parallel coordinates and importance over sweeps.cells_frame, its axes but the seed as the params)."""
    st.subheader("Tags and what mattered")
    started = [name for name in cells["run"] if (store.root / name).is_dir()]
    annotations = {name: Run(store.root / name).read_annotations() for name in started}
    st.dataframe(
        pd.DataFrame({"run": list(annotations), "tags": [list(a.tags) for a in annotations.values()],
                      "note": [note_preview(a.note, NOTE_PREVIEW) for a in annotations.values()]}),
        hide_index=True, key="sweep_tags_table", column_config={"tags": st.column_config.ListColumn()},
    )
    t1, t2 = st.columns([4, 1], vertical_alignment="bottom")
    t1.text_input("Tag for every cell", key="sweep_tag_all", placeholder="e.g. depth-vs-width",
                  help="added to each cell's tags (separate several by spaces); edit one run's tags on the Runs page")
    t2.button("Tag all cells", key="sweep_tag_cells", on_click=tag_cells, disabled=not started,
              args=(str(store.root), started, "sweep_tag_all", "sweep_tag"), width="stretch")
    if len(started) < len(cells):
        st.caption(f"{len(cells) - len(started)} pending cell(s) have no run yet: tag again once they start.")
    messages.show_flash("sweep_tag")
    params = [axis for axis in sweep.axes if axis != "seed"]
    draw_importance(cells, params, "best_test_acc", key="sweep_")
