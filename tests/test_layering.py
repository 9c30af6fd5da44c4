"""Tests for the layout: wrn_core's rooms import only lower rooms, and the UI never imports the training loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a room may import only rooms before it (DEVELOPERS.md, "Rooms of wrn_core").
ORDER = ("errors", "config", "presets", "store", "data", "model", "reference", "engine", "sweeps", "jobs", "inspect",
         "analysis", "plots", "cli", "__main__")
LOOP = "wrn_core.engine.loop"


def _imports(path: Path) -> set[str]:
    """Every wrn_core module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wrn_core"):
            if node.module == "wrn_core":
                found |= {f"wrn_core.{alias.name}" for alias in node.names}
            else:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("wrn_core")}
    return found


def _room(module: str) -> str:
    return module.split(".")[1]


def test_every_room_imports_only_rooms_below_it():
    upward = []
    for path in sorted((ROOT / "wrn_core").rglob("*.py")):
        room = path.relative_to(ROOT / "wrn_core").parts[0].removesuffix(".py")
        if room == "__init__":
            continue
        assert room in ORDER, f"{room} is not in ORDER: place the new room in the layering"
        for module in _imports(path):
            target = _room(module)
            if target != room and target in ORDER and ORDER.index(target) > ORDER.index(room):
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert upward == []


def test_no_page_or_dashboard_helper_imports_the_training_loop():
    ui_files = sorted((ROOT / "dashboard").rglob("*.py")) + sorted((ROOT / "pages").rglob("*.py"))
    direct = [f"{p.relative_to(ROOT)}" for p in ui_files if any(m == LOOP or m.startswith(LOOP + ".") for m in _imports(p))]
    assert direct == []
    # Nor through what they import: load every wrn_core module the UI names and see what came with it.
    modules = sorted({m for p in ui_files for m in _imports(p)})
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if exc.name != name:\n"
        "            raise  # a module the UI imports is broken: that must fail, not pass\n"
        "        # else 'from wrn_core.x import name' listed a name that is not a module\n"
        f"print({LOOP!r} in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_import_cycles_among_wrn_core_and_dashboard_modules():
    # Imports under TYPE_CHECKING and inside functions count: a cycle there is still two modules that need each other.
    from bench.structure import cycles, import_graph

    assert cycles(import_graph()) == []


def test_each_error_class_is_imported_from_one_path():
    from bench.structure import error_import_paths

    several = {name: sorted(found) for name, found in error_import_paths().items() if len(found) > 1}
    assert several == {}


def test_record_kinds_and_phases_are_named_by_the_stores_constants():
    # store/records.py is the run format's one home: elsewhere in wrn_core, the dashboard and the pages a record's
    # kind or a progress phase is compared with records.STEP, records.TRAINING, ... and records are picked with
    # records.of_kind.
    from bench.structure import format_literals

    found = format_literals(("wrn_core", "dashboard", "pages"))
    assert [f"{f.path}:{f.line}: {f.text}" for f in found] == []


def test_the_dashboard_and_pages_pick_records_through_the_store():
    # No `.get("kind")` or `["kind"]` in the UI: records of a kind come from records.of_kind.
    from bench.structure import kind_lookups

    assert [f"{f.path}:{f.line}: {f.text}" for f in kind_lookups(("dashboard", "pages"))] == []


def test_no_long_file_or_function_in_the_dashboard_and_pages():
    # A page reads as gather input → call wrn_core → draw: past a screen, a function is usually two.
    from bench.structure import long_files, long_functions

    assert long_files(folders=("dashboard", "pages")) == []
    assert long_functions(folders=("dashboard", "pages")) == []


def test_the_sweep_page_names_no_executor():
    # It starts, resumes, stops and watches a sweep through dashboard.jobs' one SweepExecutors, wherever it trains.
    source = (ROOT / "pages" / "4_sweep.py").read_text()
    named = [word for word in ("on_ray", "SweepRunner", "RaySweep", "ray_executor", "ray_processes") if word in source]
    assert named == []
