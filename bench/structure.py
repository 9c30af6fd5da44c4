"""Measures of the code's shape: import cycles, long files, long functions, run-format literals outside the store.

`python -m bench.structure` prints them (add `--list` for every item); tests/test_layering.py asserts the ones
that must stay at zero. Standard library only: the modules are parsed, never imported.

- An import cycle is a strongly connected component (two or more modules) of the graph of every import
  among `wrn_core` and `dashboard` modules, counting those under `TYPE_CHECKING` and inside functions.
  `from package import name` is an edge to `package.name` where that is a module, else to the package.
- A record-kind or phase literal is a string constant equal to a metrics record kind or a progress phase
  (`store.records.RECORD_KINDS`, `PHASES`) that is compared with (`==`, `!=`, `in`), or is the key "kind"
  of a dict item or `.get("kind")`-style lookup, outside wrn_core/store.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wrn_core", "dashboard")  # whose modules the cycle count covers
SIZED = ("wrn_core", "dashboard", "pages")  # whose files and functions are measured
LONG_FILE = 450  # lines
LONG_FUNCTION = 60  # lines, decorators and docstring included
STORE = ROOT / "wrn_core" / "store"


@dataclass(frozen=True)
class Literal:
    path: str
    line: int
    text: str


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Module name -> file, for every .py file of the packages."""
    return {_module_name(p): p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(node: ast.ImportFrom, here: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = here.split(".") if is_package else here.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of the packages it imports anywhere in its file (TYPE_CHECKING and functions too)."""
    known = modules(packages)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, name, path.name == "__init__.py")
                if base is None:
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.append(full if full in known else base)
            for target in targets:
                while target and target not in known:  # `import a.b.c` names a.b.c; a prefix may be the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found, key=lambda c: (-len(c), c))


def _files(folders: tuple[str, ...] = SIZED) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def long_files(limit: int = LONG_FILE, folders: tuple[str, ...] = SIZED) -> list[tuple[str, int]]:
    """(file, lines) for each file over `limit` lines."""
    sized = [(str(p.relative_to(ROOT)), len(p.read_text().splitlines())) for p in _files(folders)]
    return [(path, n) for path, n in sized if n > limit]


def long_functions(limit: int = LONG_FUNCTION, folders: tuple[str, ...] = SIZED) -> list[tuple[str, int]]:
    """('file:function', lines) for each function or method over `limit` lines (decorators included)."""
    found = []
    for path in _files(folders):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines = node.end_lineno - first + 1
                if lines > limit:
                    found.append((f"{path.relative_to(ROOT)}:{node.name}", lines))
    return found


def format_words() -> set[str]:
    """The record kinds and progress phases, read from store/records.py's own constants."""
    tree = ast.parse((STORE / "records.py").read_text())
    constants: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                constants[name] = node.value.value
            elif isinstance(node.value, ast.Tuple):
                groups[name] = [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    phases = groups.get("PHASES") or ["LOADING", "COMPILING", "TRAINING", "EVALUATING", "DONE"]  # before PHASES
    names = groups.get("RECORD_KINDS", []) + phases
    return {constants[n] for n in names if n in constants}


def _strings(node: ast.AST) -> list[ast.Constant]:
    """String constants of an expression, looking into tuples, lists and sets (`x in ("step", "epoch")`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [c for e in node.elts for c in _strings(e)]
    return []


SUBJECT_NAMES = ("kind", "phase", "source")  # variables and columns that hold a record kind or a phase


def _is_kind_or_phase(node: ast.AST) -> bool:
    """`x.get("kind")`, `x["kind"]`, `x.phase`, `x["phase"]`, a variable `kind`/`phase`/`source`,
    `x["source"].iloc[0]` (a curve's source is the kind of record its points came from)."""
    while isinstance(node, ast.Subscript) and not (isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        node = node.value  # x["source"].iloc[0] -> x["source"].iloc
    if isinstance(node, ast.Attribute) and node.attr == "iloc":
        node = node.value
    if isinstance(node, ast.Name):
        return node.id in SUBJECT_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in SUBJECT_NAMES
    key = None
    if isinstance(node, ast.Subscript):
        key = node.slice
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        key = node.args[0]
    return isinstance(key, ast.Constant) and key.value in SUBJECT_NAMES


def _outside_store(folders: tuple[str, ...]) -> list[tuple[Path, ast.AST]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in _files(folders) if STORE not in path.parents]


def format_literals(folders: tuple[str, ...] = SIZED) -> list[Literal]:
    """Record-kind and phase literals outside wrn_core/store: a record's kind or a progress phase compared
    with a string constant that is a kind or phase."""
    words = format_words()
    found: list[Literal] = []
    for path, tree in _outside_store(folders):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left] + list(node.comparators)
            if not any(_is_kind_or_phase(s) for s in sides):
                continue
            if any(const.value in words for side in sides for const in _strings(side)):
                found.append(Literal(str(path.relative_to(ROOT)), node.lineno, ast.unparse(node)))
    return sorted(found, key=lambda f: (f.path, f.line))


def kind_lookups(folders: tuple[str, ...] = SIZED) -> list[Literal]:
    """`.get("kind")` and `["kind"]` outside wrn_core/store: records filtered by hand instead of by the store."""
    found = []
    for path, tree in _outside_store(folders):
        for node in ast.walk(tree):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                key = node.slice
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
                key = node.args[0]
            if isinstance(key, ast.Constant) and key.value == "kind":
                found.append(Literal(str(path.relative_to(ROOT)), node.lineno, ast.unparse(node)))
    return sorted(found, key=lambda f: (f.path, f.line))


def error_import_paths(folders: tuple[str, ...] = ("wrn_core", "dashboard", "pages", "tests", "bench")) -> dict[str, set[str]]:
    """Each error class of wrn_core -> the modules it is imported from, outside the sub-package that defines it
    (a package's own modules import from the defining module; everyone else from one path)."""
    defined: dict[str, Path] = {}
    for path in sorted((ROOT / "wrn_core").rglob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined[node.name] = path
    paths: dict[str, set[str]] = {name: set() for name in defined}
    for path in _files(folders):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("wrn_core"):
                continue
            for alias in node.names:
                home = defined.get(alias.name)
                if home is None:
                    continue
                package = home.parent
                if package != ROOT / "wrn_core" and package in path.parents:
                    continue  # inside the defining sub-package
                paths[alias.name].add(node.module)
    return {name: found for name, found in paths.items() if found}


def _by_room(items: list[Literal]) -> str:
    rooms: dict[str, int] = {}
    for f in items:
        room = f.path.split("/")[0]
        rooms[room] = rooms.get(room, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(rooms.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every cycle, file, function and literal")
    args = parser.parse_args()
    found_cycles = cycles(import_graph())
    files, functions, literals = long_files(), long_functions(), format_literals()
    print(f"import cycles among {' and '.join(PACKAGES)}: {len(found_cycles)}")
    for c in found_cycles if args.list else ():
        print("   ", " ↔ ".join(c))
    print(f"files over {LONG_FILE} lines in {', '.join(SIZED)}: {len(files)}")
    for path, n in files if args.list else ():
        print(f"    {n:5d} {path}")
    print(f"functions over {LONG_FUNCTION} lines: {len(functions)}")
    for name, n in functions if args.list else ():
        print(f"    {n:5d} {name}")
    print(f"record-kind and phase literals outside wrn_core/store: {len(literals)} ({_by_room(literals)})")
    for f in literals if args.list else ():
        print(f"    {f.path}:{f.line}: {f.text}")
    paths = error_import_paths()
    several = {name: found for name, found in paths.items() if len(found) > 1}
    print(f"error classes imported from more than one path: {len(several)}")
    for name, found in sorted(several.items()) if args.list else ():
        print(f"    {name}: {', '.join(sorted(found))}")
    lookups = kind_lookups()
    print(f'.get("kind") / ["kind"] lookups outside wrn_core/store: {len(lookups)} ({_by_room(lookups)})')
    for f in lookups if args.list else ():
        print(f"    {f.path}:{f.line}: {f.text}")


if __name__ == "__main__":
    main()
