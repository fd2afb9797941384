"""The layers of ``src/``: which of our packages each may import.

From the bottom: ``capture`` (the library) and ``common`` (what both the daemon and the
analysis read: the output contract, object-store access, the version) import nothing else of
ours, but for ``common.catalogue`` (the metric catalogue), which takes capture's descriptions
of capture's own metrics, and ``common.dataset_index`` (the index beside the data), which keeps
capture's file summaries; ``observers.readers`` imports only itself; ``observers`` sits on
``capture`` and ``common``;
``monitor`` (the daemon) and ``analysis`` (the query layer) never import each other; the
umbrella CLI ``finemon`` alone sits above both.

Every import statement of every module counts, wherever it is (inside a function, under
``TYPE_CHECKING``): the source is parsed with :mod:`ast`, nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Our top-level packages, each with the packages of ours it may not import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "capture": frozenset({"common", "observers", "monitor", "analysis", "finemon"}),
    "common": frozenset({"capture", "observers", "monitor", "analysis", "finemon"}),
    "observers": frozenset({"monitor", "analysis", "finemon"}),
    "monitor": frozenset({"analysis", "finemon"}),
    "analysis": frozenset({"monitor", "finemon"}),
    "finemon": frozenset(),
}
OURS = frozenset(FORBIDDEN)
#: Subpackages with a rule of their own instead of their package's.
FORBIDDEN_IN_SUBPACKAGE: dict[str, frozenset[str]] = {
    "common.catalogue": frozenset({"observers", "monitor", "analysis", "finemon"}),
    "common.dataset_index": frozenset({"observers", "monitor", "analysis", "finemon"}),
}
READERS = "observers.readers"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(source: str, package: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``, a module of ``package``
    (relative imports are resolved against it). ``from a import b`` yields ``a`` and ``a.b``:
    ``b`` may be a module."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_modules(path.read_text(encoding="utf-8"), package)


def _top(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def _forbidden(module: str) -> frozenset[str]:
    """The packages of ours ``module`` may not import."""
    for subpackage, forbidden in FORBIDDEN_IN_SUBPACKAGE.items():
        if module == subpackage or module.startswith(f"{subpackage}."):
            return forbidden
    return FORBIDDEN[_top(module)]


def _report(found: list[tuple[Path, int, str]]) -> str:
    """One line per offending import statement."""
    lines: dict[str, str] = {}
    for path, line, module in found:
        lines.setdefault(f"{_module_name(path)}:{line}", module)
    return "\n".join(f"{where} imports {module}" for where, module in lines.items())


def test_every_package_has_a_rule() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(OURS), "a new package in src/ needs its place in FORBIDDEN"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_the_layers_below(package: str) -> None:
    found = [
        (path, line, module)
        for path in _modules()
        if _top(_module_name(path)) == package
        for line, module in _imports(path)
        if _top(module) in _forbidden(_module_name(path))
    ]
    if found:
        pytest.fail(_report(found), pytrace=False)


def test_readers_import_only_themselves() -> None:
    def is_reader(module: str) -> bool:
        return module == READERS or module.startswith(f"{READERS}.")

    # ``observers`` itself: importing a reader runs the package's __init__ (a docstring).
    found = [
        (path, line, module)
        for path in _modules()
        if is_reader(_module_name(path))
        for line, module in _imports(path)
        if _top(module) in OURS and not is_reader(module) and module != "observers"
    ]
    if found:
        pytest.fail(_report(found), pytrace=False)


def test_only_finemon_imports_both_monitor_and_analysis() -> None:
    both = [
        _module_name(path)
        for path in _modules()
        if {"monitor", "analysis"} <= {_top(module) for _, module in _imports(path)}
        and _top(_module_name(path)) != "finemon"
    ]
    assert not both, both


def test_the_import_parser_sees_every_form() -> None:
    # The checks above pass trivially if imports are missed: a lazy import, a relative one,
    # ``from PACKAGE import MODULE`` and one under TYPE_CHECKING.
    source = (
        "from typing import TYPE_CHECKING\n"
        "import capture.files as files\n"
        "from . import sibling\n"
        "from ..up import thing\n"
        "if TYPE_CHECKING:\n"
        "    from analysis import dataset\n"
        "def f():\n"
        "    import monitor.daemon\n"
    )
    modules = {module for _, module in imported_modules(source, "observers.readers")}
    assert {
        "capture.files",
        "observers.readers.sibling",
        "observers.up.thing",
        "analysis.dataset",
        "monitor.daemon",
    } <= modules


def test_a_subpackage_rule_replaces_its_packages_for_it_alone() -> None:
    assert "capture" not in _forbidden("common.catalogue")
    assert "capture" not in _forbidden("common.catalogue.health")
    assert "capture" in _forbidden("common.contract")
    assert "capture" in _forbidden("common.catalogue_elsewhere")
