"""Every module the package imports at run time comes from a declared dependency.

`make demo` installs only ``[project].dependencies``; an import that only the test
extras (or a developer's machine) provide breaks a new user's first command. This
scans the imports of ``src/trenches`` and holds them against ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "trenches"


def _normal(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, spec
    return _normal(match[1])


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """(the base dependencies, each extra's dependencies), as normalised names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {_requirement_name(s) for s in project["dependencies"]}
    extras = {
        extra: {_requirement_name(s) for s in specs}
        for extra, specs in project.get("optional-dependencies", {}).items()
    }
    return base, extras


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(folder: Path) -> dict[str, list[str]]:
    """Top-level module names imported by the code under ``folder`` at run time (not in
    ``if TYPE_CHECKING:`` blocks), each with where it is imported (file:line)."""
    found: dict[str, list[str]] = {}

    def visit(node: ast.AST, where: Path) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for sub in child.orelse:
                    visit(sub, where)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            for name in names:
                top = name.split(".")[0]
                found.setdefault(top, []).append(
                    f"{where.relative_to(folder.parent)}:{child.lineno}"
                )
            visit(child, where)

    for path in sorted(folder.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), path)
    return found


#: Libraries trenches works with only where the user installed them, each behind the
#: extra that installs it, and imported only when a model of its kind is met (see
#: trenches.models.boosting and .neural): module -> extra.
OPTIONAL = {
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "onnxmltools": "xgboost",
    "torch": "torch",
}


def undeclared(
    folder: Path,
    base: set[str],
    *,
    beside: tuple[Path, ...] = (),
    optional: dict[str, set[str]] | None = None,
) -> list[str]:
    """What ``folder`` imports that no base dependency provides, one line each (the
    modules and packages of ``folder`` and of the folders ``beside`` it are its own);
    ``optional``: modules another set of dependencies (an extra) may provide."""
    optional = optional or {}
    providers = importlib.metadata.packages_distributions()
    local = {p.stem for f in (folder, *beside) for p in f.glob("*.py")}
    local |= {p.parent.name for f in (folder, *beside) for p in f.glob("*/*.py")}
    local |= {"trenches", "__future__"}
    problems = []
    for module, places in sorted(runtime_imports(folder).items()):
        if module in sys.stdlib_module_names or module in local:
            continue
        dists = {_normal(d) for d in providers.get(module, [])}
        if module in optional and (dists & optional[module] or _normal(module) in optional[module]):
            continue  # its extra provides it (installed here or not)
        if not dists:
            problems.append(f"{module} (at {places[0]}): no installed distribution provides it")
        elif not dists & base:
            problems.append(
                f"{module} (at {places[0]}) comes from {', '.join(sorted(dists))}, "
                "which is not in [project].dependencies"
            )
    return problems


def test_every_runtime_import_is_a_declared_dependency() -> None:
    base, extras = declared()
    optional = {module: extras[extra] for module, extra in OPTIONAL.items()}
    assert undeclared(SRC, base, optional=optional) == []


def test_an_optional_library_counts_only_where_its_extra_declares_it() -> None:
    base, extras = declared()
    wrong = {"xgboost": extras["lightgbm"], "torch": extras["xgboost"]}
    problems = undeclared(SRC, base, optional=wrong)
    assert any(p.startswith("xgboost (at trenches/models/boosting.py") for p in problems)
    assert any(p.startswith("torch (at trenches/models/neural.py") for p in problems)


def test_the_scan_finds_an_import_only_the_test_extras_provide(tmp_path: Path) -> None:
    # The very fault a new user met: the demo imported httpx, a test extra then.
    (tmp_path / "demo.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "if TYPE_CHECKING:\n"
        "    import hypothesis\n"
        "def serve():\n"
        "    import pytest\n",
        encoding="utf-8",
    )
    problems = undeclared(tmp_path, {"numpy"})
    # pytest is imported at run time inside a function; hypothesis only for type checks.
    assert len(problems) == 1 and problems[0].startswith(f"pytest (at {tmp_path.name}/demo.py:7)")


def test_the_test_extras_hold_what_the_tests_import() -> None:
    base, extras = declared()
    problems = undeclared(ROOT / "tests", base | extras["test"], beside=(ROOT / "bench",))
    assert problems == []
