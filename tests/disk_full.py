"""A disk that fills up, for tests where mounting a small tmpfs is not allowed: writes raise ENOSPC."""

from __future__ import annotations

import builtins
import errno
import os
from typing import Callable


class FillingFile:
    """A file object that accepts `room` bytes, then fails every write as a full disk does."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data):
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()


def filling_open(on: Callable[[str], bool], room: int) -> Callable:
    """An `open` for the run store's writers (see install) whose files for writing matching `on(path)` hold only `room` bytes."""
    real_open = builtins.open

    def opener(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if ("w" in mode or "a" in mode) and on(str(file)):  # `on` sees only opens for writing: it may count them
            return FillingFile(handle, room)
        return handle

    return opener


# The store's modules that open files for writing: atomic replacements and the metrics appends.
STORE_WRITERS = ("wrn_core.store.atomic", "wrn_core.store.run")


def install(opener: Callable, monkeypatch=None) -> None:
    """Make the run store write through `opener` (with a pytest monkeypatch, undone after the test)."""
    import importlib

    for name in STORE_WRITERS:
        module = importlib.import_module(name)
        if monkeypatch is not None:
            monkeypatch.setattr(module, "open", opener, raising=False)
        else:
            module.open = opener
