"""A run's annotations — the user's tags and note — in meta.json, kept apart from the trainer's files.

The trainer never reads or writes meta.json, and annotating never touches run.lock, status.json or
metrics.jsonl, so a run can be tagged while it trains. Annotators (the CLI, every dashboard session)
serialise their read-modify-write on meta.lock, an flock of its own; meta.json itself is replaced
atomically, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from wrn_core.errors import one_line
from wrn_core.store.atomic import write_atomic, write_error
from wrn_core.store.errors import RunStoreError

META_FILE = "meta.json"
META_LOCK_FILE = "meta.lock"
MAX_NOTE_CHARS = 10_000
MAX_TAG_CHARS = 64
# A tag is one word a shell, a URL and a TensorBoard tag all keep intact: no spaces, no '/'.
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=@-]*$")


class AnnotationError(RunStoreError):
    """A tag or note is invalid, or the run's meta.json cannot be read or written (one line)."""


@dataclass(frozen=True)
class Annotations:
    """What the user said about a run. Tags are unique and sorted; an empty note is no note."""

    tags: tuple[str, ...] = ()
    note: str = ""
    updated_at: float | None = None  # wall-clock seconds of the last change
    problem: str = ""  # one line when meta.json exists but cannot be read (it is then left as it is)

    def to_dict(self) -> dict[str, Any]:
        return {"tags": list(self.tags), "note": self.note, "updated_at": self.updated_at}


def validate_tag(tag: Any) -> str:
    """The tag if it is 1-64 characters of letters, digits and . _ : + = @ - (no spaces, no '/'); else AnnotationError."""
    if not isinstance(tag, str) or not tag:
        raise AnnotationError("a tag cannot be empty")
    if len(tag) > MAX_TAG_CHARS:
        raise AnnotationError(f"tag {tag[:20]!r}... is {len(tag)} characters; at most {MAX_TAG_CHARS}")
    if not _TAG_RE.match(tag):
        raise AnnotationError(
            f"invalid tag {tag!r}: use letters, digits and . _ : + = @ - (no spaces or '/'), starting with a letter or digit"
        )
    return tag


def validate_note(note: Any) -> str:
    """The note if it is text of at most MAX_NOTE_CHARS characters; else AnnotationError."""
    if not isinstance(note, str):
        raise AnnotationError("a note must be text")
    if len(note) > MAX_NOTE_CHARS:
        raise AnnotationError(f"the note is {len(note):,} characters; at most {MAX_NOTE_CHARS:,}")
    return note


def _parse(data: Any) -> Annotations:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    tags = data.get("tags", [])
    note = data.get("note", "")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags) or not isinstance(note, str):
        raise ValueError("tags must be a list of strings and note a string")
    updated = data.get("updated_at")
    updated_at = float(updated) if isinstance(updated, (int, float)) and not isinstance(updated, bool) else None
    return Annotations(tuple(sorted(set(tags))), note, updated_at)


def read_annotations(run_dir: Path) -> Annotations:
    """The run's annotations; none when meta.json is missing. Never raises: an unreadable file is a `problem`."""
    path = Path(run_dir) / META_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Annotations()
    except OSError as exc:
        return Annotations(problem=f"{META_FILE} unreadable ({one_line(exc)})")
    try:
        return _parse(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return Annotations(problem=f"{META_FILE} unreadable ({one_line(exc)})")


@contextmanager
def _annotating(run_dir: Path) -> Iterator[None]:
    """Hold meta.lock: one annotator at a time reads, changes and replaces meta.json."""
    if not Path(run_dir).is_dir():
        raise AnnotationError(f"no run at {run_dir}")
    try:
        fd = os.open(Path(run_dir) / META_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AnnotationError(one_line(write_error(exc, META_LOCK_FILE))) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _write(run_dir: Path, annotations: Annotations) -> None:
    data = json.dumps(annotations.to_dict(), indent=2, ensure_ascii=False) + "\n"
    try:
        write_atomic(Path(run_dir) / META_FILE, data.encode("utf-8"), META_FILE)
    except OSError as exc:
        raise AnnotationError(str(exc)) from None


def update_annotations(
    run_dir: Path,
    add_tags: Iterable[str] = (),
    remove_tags: Iterable[str] = (),
    note: str | None = None,
    tags: Iterable[str] | None = None,
) -> Annotations:
    """Change a run's annotations and return them: `tags` replaces the set, then add_tags/remove_tags apply;
    a note (an empty one clears it) replaces the note. Everything is checked before anything is written.

    Removing a tag the run does not have is an AnnotationError, so a typo never passes silently.
    """
    new_tags = None if tags is None else [validate_tag(t) for t in tags]
    adding = [validate_tag(t) for t in add_tags]
    removing = [validate_tag(t) for t in remove_tags]
    new_note = None if note is None else validate_note(note)
    with _annotating(run_dir):
        current = read_annotations(run_dir)
        if current.problem:
            raise AnnotationError(f"{current.problem}; fix or remove {Path(run_dir) / META_FILE} first")
        result = set(current.tags if new_tags is None else new_tags) | set(adding)
        missing = [t for t in removing if t not in result]
        if missing:
            raise AnnotationError(f"run {Path(run_dir).name} has no tag {missing[0]!r}"
                                  + (f" (its tags: {', '.join(sorted(result))})" if result else " (it has no tags)"))
        result -= set(removing)
        updated = Annotations(tuple(sorted(result)), current.note if new_note is None else new_note, time.time())
        _write(run_dir, updated)
        return updated
