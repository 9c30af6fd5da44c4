"""Messages on the pages: errors in one line, and flash messages a callback keeps for the page to draw.

A message has a tone (error, warning, success, info: the st element that draws it); "kind" is the run
format's word for record kinds alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from dashboard.formatting import plain
from wrn_core.errors import one_line

ERROR, WARNING, SUCCESS, INFO = "error", "warning", "success", "info"
TONES = (ERROR, WARNING, SUCCESS, INFO)


def show_message(tone: str, text: str) -> None:
    """st.error / st.warning / st.success / st.info of Markdown text, by tone."""
    {ERROR: st.error, WARNING: st.warning, SUCCESS: st.success, INFO: st.info}[tone](text)


def show_error(error: BaseException | str) -> None:
    """A user-facing error as one st.error line: an exception's first line, or a text, shown as written."""
    st.error(plain(one_line(error) if isinstance(error, BaseException) else error))


# Flash messages: a callback keeps what happened for the page to show on its next runs (callbacks run
# before the page draws, so they cannot draw it themselves). One session_state entry per place.
_FLASH_SUFFIX = "_flash"  # keeps flash entries apart from the widget keys they are named after


@dataclass(frozen=True)
class Flash:
    """A message kept for a place on a page."""

    tone: str  # one of TONES
    text: str  # Markdown
    about: str | None = None  # shown only where the page shows messages about this (e.g. one sweep)


def flash(key: str, tone: str, text: str, *, about: str | None = None, markdown: bool = False) -> None:
    """Keep a message for show_flash(key), replacing the one kept there; tone is error|warning|success|info.

    The text is shown as written unless markdown=True. With `about`, only show_flash(key, about=…) of the
    same value shows it (e.g. "Launched grid" beside the sweep grid only).
    """
    if tone not in TONES:
        raise ValueError(f"a message's tone must be one of {', '.join(TONES)}, not {tone!r}")
    st.session_state[key + _FLASH_SUFFIX] = Flash(tone, text if markdown else plain(text), about)


def clear_flash(key: str) -> None:
    """Forget the message kept under key (a callback calls it first, so an old message never outlives a new try)."""
    st.session_state.pop(key + _FLASH_SUFFIX, None)


def kept_flash(key: str) -> Flash | None:
    """The message kept under key, whatever it is about, or None."""
    return st.session_state.get(key + _FLASH_SUFFIX)


def show_flash(key: str, about: str | None = None) -> None:
    """Draw the message kept under key, if any and if it is about `about`; it stays until replaced or cleared."""
    message = kept_flash(key)
    if message is not None and message.about == about:
        show_message(message.tone, message.text)
