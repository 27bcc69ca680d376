"""The house rules that keep the code readable (CONVENTIONS.md): no module past 600
lines, and ruff's complexity rules on with the limits the code meets."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "trenches"

#: A module past this becomes a package split by concept.
MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(SRC.rglob("*.py"))
    }
    assert sizes, f"no modules found under {SRC}"
    over = {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, (
        f"modules over {MAX_MODULE_LINES} lines (split each into a package by concept): "
        + ", ".join(f"{path} ({n} lines)" for path, n in sorted(over.items()))
    )


def test_ruff_checks_complexity_with_the_house_limits() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"][
        "lint"
    ]
    assert {"C90", "PLR0912", "PLR0913", "PLR0915"} <= set(lint["select"])
    assert not {"C90", "C901", "PLR0912", "PLR0913", "PLR0915"} & set(lint.get("ignore", []))
    assert lint["mccabe"]["max-complexity"] <= 12
    pylint = lint["pylint"]
    assert pylint["max-branches"] <= 14
    assert pylint["max-statements"] <= 60
    assert pylint["max-args"] <= 8
