"""A sweep's file in the runs directory, `<name>.sweep.json`: save (atomically), load, list, name."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from wrn_core.config import ConfigError
from wrn_core.store import RunStoreError, validate_run_name
from wrn_core.sweeps.grid import Sweep

SWEEP_SUFFIX = ".sweep.json"
PREDICTED_SUFFIX = ".predicted.json"  # the pre-flight's predicted training seconds per cell, beside the sweep file


def sweep_path(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / f"{validate_run_name(name)}{SWEEP_SUFFIX}"


def save_sweep(root: str | os.PathLike[str], sweep: Sweep) -> Path:
    """Write the sweep file (atomically); RunStoreError if a different sweep of that name exists."""
    path = sweep_path(root, sweep.name)
    if check_same_sweep(root, sweep):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sweep.to_dict(), indent=2))
    os.replace(tmp, path)
    return path


def check_same_sweep(root: str | os.PathLike[str], sweep: Sweep) -> bool:
    """True when this sweep is saved already, False when no sweep of its name is; RunStoreError (one line) when a
    different sweep has its name."""
    if not sweep_path(root, sweep.name).exists():
        return False
    existing = load_sweep(root, sweep.name)
    if existing.axes != sweep.axes or existing.base != sweep.base or existing.search != sweep.search:
        raise RunStoreError(
            f"a different sweep named {sweep.name!r} already exists in {root}; "
            f"use `--resume` to continue it or choose another name"
        )
    return True


def save_predicted_seconds(root: str | os.PathLike[str], sweep: Sweep, seconds: dict[str, float]) -> Path:
    """Keep the pre-flight's predicted training seconds per cell (run -> s) beside the sweep file, where a search
    with a minutes budget or the time objective reads them, whichever process drives it; the latest pre-flight
    wins. RunStoreError when a different sweep has the name (nothing is written)."""
    check_same_sweep(root, sweep)
    path = Path(root) / f"{validate_run_name(sweep.name)}{PREDICTED_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({run: float(s) for run, s in seconds.items()}, indent=1))
    os.replace(tmp, path)
    return path


def load_predicted_seconds(root: str | os.PathLike[str] | None, name: str) -> dict[str, float] | None:
    """The predicted seconds per cell the last pre-flight kept, or None (none kept, or unreadable)."""
    if root is None:
        return None
    try:
        data = json.loads((Path(root) / f"{validate_run_name(name)}{PREDICTED_SUFFIX}").read_text(encoding="utf-8"))
        return {str(run): float(s) for run, s in data.items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def load_sweep(root: str | os.PathLike[str], name: str) -> Sweep:
    """The saved sweep; RunStoreError (one line) when it is missing or unreadable."""
    path = sweep_path(root, name)
    try:
        return Sweep.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RunStoreError(f"no sweep named {name!r} in {root}") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        raise RunStoreError(f"sweep file {path.name} is unreadable ({exc})") from None


def sweep_names(root: str | os.PathLike[str]) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name[: -len(SWEEP_SUFFIX)] for p in root.glob(f"*{SWEEP_SUFFIX}") if not p.name.startswith("."))


def recent_sweep_names(root: str | os.PathLike[str]) -> list[str]:
    """Saved sweeps, newest first (by the created_at in each file; unreadable files last, by name)."""

    def created(name: str) -> float:
        try:
            return float(json.loads(sweep_path(root, name).read_text(encoding="utf-8")).get("created_at") or 0.0)
        except (OSError, ValueError, TypeError, AttributeError, RunStoreError):
            return float("-inf")

    return sorted(sweep_names(root), key=lambda name: (-created(name), name))


def default_sweep_name(now: float | None = None) -> str:
    """A name for a sweep the user did not name: sweep-<local time>, e.g. sweep-20250101-120000."""
    return "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))

