"""How the pages word values: labels of config choices, numbers, durations, config diffs, shell lines, and text
shown as written (`plain`)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

import streamlit as st

OPTIMIZER_LABELS = {"sgd-nesterov": "SGD-Nesterov", "adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}
SCHEDULE_LABELS = {
    "step": "step (×0.2 at 30/60/80%)",
    "cosine": "cosine",
    "onecycle": "one-cycle",
    "constant": "constant",
}
DATASET_LABELS = {
    "synthetic": "Synthetic shapes (built in)",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "folder": "Image folder",
}
def result_columns() -> dict[str, Any]:
    """st.dataframe column formats of the accuracy (%) and parameter-count columns (the Sweep page's cells table)."""
    return {
        "best test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "final test acc (%)": st.column_config.NumberColumn(format="%.2f"),
        "params": st.column_config.NumberColumn(format="localized"),
    }


def fmt_count(value: float | int | None) -> str:
    """36479194 -> '36,479,194'."""
    if value is None:
        return "—"
    return f"{int(value):,}"


def fmt_si(value: float | None, unit: str = "") -> str:
    """5243346730 -> '5.24 G' + unit."""
    if value is None:
        return "—"
    for divisor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".strip()


def fmt_mib(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1000:  # 1004.7 MiB reads better as 0.98 GiB
        return f"{value / 1024:.2f} GiB"
    return f"{value:.1f} MiB"


def fmt_seconds(seconds: float | None) -> str:
    """75 -> '1m 15s'; None -> '—'."""
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def fmt_pct(fraction: float | None) -> str:
    if fraction is None:
        return "—"
    return f"{100.0 * float(fraction):.2f}%"


def fmt_extensions(extensions: Iterable[dict[str, Any]] | None) -> str:
    """A config's extensions as 'from epoch 2: +3 epochs, restart; …' ('none' without any)."""
    parts = []
    for e in extensions or ():
        count = int(e.get("epochs") or 0)
        parts.append(f"from epoch {e.get('from_epoch')}: +{count} epoch{'s' if count != 1 else ''}, {e.get('mode', 'continue')}")
    return "; ".join(parts) or "none"


def diff_value(setting: str, value: Any) -> str:
    """One cell of the config-diff table: None is the optimizer's default, extensions in words, the rest as JSON."""
    if setting == "extensions":
        return fmt_extensions(value)
    if value is None:
        return "default"
    return value if isinstance(value, str) else json.dumps(value)


def shell_lines(command: str) -> str:
    """A shell command with each --flag (and its value) on its own ` \\`-continued line, so it never breaks mid-flag."""
    lines: list[str] = []
    for word in shlex.split(command):
        quoted = shlex.quote(word)
        if word.startswith("--") or not lines:
            lines.append(quoted)
        else:
            lines[-1] += " " + quoted
    return " \\\n  ".join(lines)


# What st.markdown (and st.error etc.) would read as formatting: emphasis, code, links, maths, strikethrough.
_MARKDOWN_SPECIALS = str.maketrans({c: "\\" + c for c in "\\`*_[]$~"})


# Kept as written: a `backticked` part (a path, a command: inline code shows its text as written), and a web
# address, made an <autolink> (inside one nothing is Markdown, so https://host/~user/ keeps its "~"; escaped, the
# backslash would end up in the link). A sentence's closing . , ; : ) is not part of the address.
_VERBATIM = re.compile(r"`[^`\n]+`|https?://[^\s<>`]*[^\s<>`.,;:)]")


def plain(text: str) -> str:
    """Text shown as written: Markdown characters backslash-escaped (ROOT/train/<class>/*.jpg keeps its `*`),
    except that a `backticked` part stays inline code and a web address a working link."""
    parts, end = [], 0
    for match in _VERBATIM.finditer(text):
        parts.append(text[end:match.start()].translate(_MARKDOWN_SPECIALS))
        verbatim = match.group(0)
        parts.append(verbatim if verbatim.startswith("`") else f"<{verbatim}>")
        end = match.end()
    parts.append(text[end:].translate(_MARKDOWN_SPECIALS))
    return "".join(parts)
