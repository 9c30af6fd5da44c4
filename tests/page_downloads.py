"""What a page's download buttons would hand the browser, for AppTest tests (AppTest keeps a deferred download's data to itself)."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.delta_generator import DeltaGenerator


def spy_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, str | None]]:
    """label -> (data as given: bytes, str or the callable made when clicked, file_name) of every download
    button drawn from now on; the buttons are drawn as usual."""
    offered: dict[str, tuple[Any, str | None]] = {}
    real = DeltaGenerator.download_button

    def spy(self, label, data, file_name=None, *args, **kwargs):
        offered[label] = (data, file_name)
        return real(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", spy)
    return offered
