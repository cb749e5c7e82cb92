"""The import layers of docs/architecture.md hold: no module of hookyard imports a module of
a higher layer, at module level or inside a function. Imports under `if TYPE_CHECKING:` are
not counted (they never run, and a type may name what a lower layer is handed).

A module belongs to the layer of the longest prefix below that names it, so a package can
have a module placed apart (`db.tables` gathers every package's tables for the migrations;
the provider adapters bind a source to its domain's handlers). Within a layer, imports go
either way.

Also: only the inbox queries `events`, and every module that declares a table is in the
registry of `db/tables.py`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hookyard.db.tables import MODULES

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "hookyard"

# Lowest first.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "hookyard",  # the package itself: __version__
            "hookyard.config",
            "hookyard.logs",
            "hookyard.metrics",
            "hookyard.private_file",
            "hookyard.proxy",
            "hookyard.contacts",
            "hookyard.bus",
            "hookyard.http",
            "hookyard.db",
            "hookyard.queue",
        ),
    ),
    ("contracts", ("hookyard.providers", "hookyard.live")),
    ("inbox", ("hookyard.inbox",)),
    ("destinations", ("hookyard.destinations",)),
    ("accounts", ("hookyard.accounts",)),
    ("notify", ("hookyard.notify",)),
    ("domain", ("hookyard.domain",)),
    ("sync", ("hookyard.sync",)),
    ("alerts", ("hookyard.alerts",)),
    (
        "adapters",
        (
            "hookyard.providers.c2s",
            "hookyard.providers.hubspot",
            "hookyard.providers.meta",
            "hookyard.providers.tcr",
            "hookyard.providers.registry",
            "hookyard.sources",
        ),
    ),
    ("services", ("hookyard.worker", "hookyard.ingress", "hookyard.deadline", "hookyard.api")),
    ("web", ("hookyard.web",)),
    (
        "entry points",
        (
            "hookyard.app",
            "hookyard.runtime",
            "hookyard.supervisor",
            "hookyard.cli",
            "hookyard.bench",
            "hookyard.testing",
            "hookyard.db.tables",
            "hookyard.db.migrations",
        ),
    ),
)

# (importer, imported): imports that run upward for now, each with why.
EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULE_PATHS = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, found = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best:
                best, found = len(prefix), index
    assert found >= 0, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, but not those under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield other
                yield from _nodes(other)
            continue
        yield child
        yield from _nodes(child)


def _target(name: str) -> str | None:
    """The hookyard module `name` is, or is in (`hookyard.x.y` → the module, or its package
    when `y` is a name defined in `x`)."""
    while name and name not in MODULE_PATHS:
        name = name.rpartition(".")[0]
    return name or None


def imports_in(module: str, tree: ast.AST, is_package: bool = False) -> Iterator[Import]:
    package = module if is_package else module.rpartition(".")[0]
    for node in _nodes(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "hookyard" or name.startswith("hookyard."):
                target = _target(name)
                if target is not None and target != module:
                    yield Import(module, target, node.lineno)


def imports_of(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    yield from imports_in(module, tree, is_package=path.name == "__init__.py")


ALL_IMPORTS = [i for m, p in MODULE_PATHS.items() for i in imports_of(m, p)]


def test_every_module_has_a_layer() -> None:
    for module in MODULE_PATHS:
        layer_of(module)


def test_no_import_runs_upward() -> None:
    upward = [
        f"{i.importer} (line {i.line}, layer {LAYERS[layer_of(i.importer)][0]}) imports "
        f"{i.imported} (layer {LAYERS[layer_of(i.imported)][0]})"
        for i in ALL_IMPORTS
        if layer_of(i.imported) > layer_of(i.importer)
        and (i.importer, i.imported) not in EXCEPTIONS
    ]
    assert upward == []


def test_every_exception_is_still_needed() -> None:
    seen = {(i.importer, i.imported) for i in ALL_IMPORTS}
    stale = [pair for pair in EXCEPTIONS if pair not in seen]
    assert stale == [], "remove these from EXCEPTIONS: the import is gone"
    for importer, imported in EXCEPTIONS:
        assert layer_of(imported) > layer_of(importer), f"{importer} → {imported} is not upward"


def test_the_checker_sees_function_level_imports_and_skips_type_checking() -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from hookyard.app import create_app\n"
        "else:\n"
        "    from hookyard import cli\n"
        "def f():\n"
        "    from hookyard.api import auth\n"
        "    from . import db\n"
    )
    found = {(i.imported, i.line) for i in imports_in("hookyard.config", ast.parse(code))}
    assert found == {("hookyard.cli", 5), ("hookyard.api.auth", 7), ("hookyard.db", 8)}
    assert layer_of("hookyard.api.auth") > layer_of("hookyard.config")


INBOX_TABLES = {"events", "requests", "rejected_requests"}


def test_only_the_inbox_imports_its_tables() -> None:
    found = []
    for module, path in MODULE_PATHS.items():
        if module == "hookyard.inbox" or module.startswith("hookyard.inbox."):
            continue
        for node in _nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "hookyard.db.schema":
                names = {alias.name for alias in node.names} & INBOX_TABLES
                if names:
                    found.append(f"{module}:{node.lineno} imports {sorted(names)}")
    assert found == [], "query the inbox through hookyard.inbox (store.py, queries.py)"


def test_every_table_module_is_registered() -> None:
    declaring = set()
    for module, path in MODULE_PATHS.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Table"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Name)
                and node.args[1].id == "metadata"
            ):
                declaring.add(module)
    assert declaring  # the scan finds tables at all
    assert declaring == {m.__name__ for m in MODULES}
