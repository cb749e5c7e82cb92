"""The suite's own shape: no module of tests/ imports a test module (a helper two modules share
lives in a plain module, tests/support.py or tests/*_support.py; a fixture they share in
conftest.py), and none imports a fixture (pytest finds fixtures by name: an imported one is a
second definition that hides where the fixture lives)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    return ".".join(("tests", *path.relative_to(TESTS).with_suffix("").parts))


def suite() -> dict[str, ast.Module]:
    """Every module of tests/, by its dotted name."""
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(TESTS.rglob("*.py"))}


def is_test_module(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith("test_")


def imports(importer: str, tree: ast.Module, known: set[str]) -> list[tuple[str, str | None]]:
    """(module, name) for everything `importer` imports from tests/ (name None for a whole
    module), wherever the import statement is (functions too), however it is spelled:
    `tests.x`, relative, or `x` with tests/ on the path."""
    package = importer.rsplit(".", 1)[0]

    def resolve(module: str) -> str | None:
        for candidate in (module, f"tests.{module}"):
            if candidate in known or any(k.startswith(candidate + ".") for k in known):
                return candidate
        return None

    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (module := resolve(alias.name)) is not None:
                    found.append((module, None))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            module = resolve(base)
            if module is None:
                continue
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    found.append((f"{module}.{alias.name}", None))  # a submodule
                else:
                    found.append((module, alias.name))
    return found


def fixtures(tree: ast.Module) -> set[str]:
    """The names of the module's functions decorated `@pytest.fixture` (with or without
    arguments, or `@fixture`)."""

    def is_fixture(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return (isinstance(target, ast.Attribute) and target.attr == "fixture") or (
            isinstance(target, ast.Name) and target.id == "fixture"
        )

    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(is_fixture(d) for d in node.decorator_list)
    }


def test_the_checks_see_every_spelling_of_an_import() -> None:
    known = {"tests.test_worker", "tests.support", "tests.people"}
    spellings = [
        "from tests.test_worker import accept",
        "from tests import test_worker",
        "import tests.test_worker",
        "from .test_worker import accept",
        "from . import test_worker",
        "import test_worker",
        "def helper():\n    from test_worker import accept",
    ]
    for source in spellings:
        found = imports("tests.test_api", ast.parse(source), known)
        assert [m for m, _ in found] == ["tests.test_worker"], source
    found = imports("tests.test_api", ast.parse("from tests.people import People, people"), known)
    assert found == [("tests.people", "People"), ("tests.people", "people")]
    assert fixtures(ast.parse("@pytest.fixture\ndef a(): ...\n@pytest.fixture(scope='session')"
                              "\ndef b(): ...\ndef c(): ...")) == {"a", "b"}  # fmt: skip


def test_no_module_of_the_suite_imports_a_test_module() -> None:
    modules = suite()
    assert "tests.test_worker" in modules and "tests.support" in modules  # the suite was found
    found = sorted(
        f"{importer} imports {module}"
        for importer, tree in modules.items()
        for module, _ in imports(importer, tree, set(modules))
        if is_test_module(module) and module != importer
    )
    assert found == []


def test_no_module_of_the_suite_imports_a_fixture() -> None:
    modules = suite()
    defined = {name: fixtures(tree) for name, tree in modules.items()}
    assert {"db_url", "runtime", "world"} <= defined["tests.conftest"]  # the fixtures were found
    found = sorted(
        f"{importer} imports the fixture {module}.{name}"
        for importer, tree in modules.items()
        for module, name in imports(importer, tree, set(modules))
        if name is not None and name in defined.get(module, set())
    )
    assert found == []
