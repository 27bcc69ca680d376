"""Names that load their module on first use: every table entry resolves to what its
module defines, is then kept in the package, and an unknown name is an AttributeError.
The packages that start quickly (``trenches``, ``trenches.runs``, ``trenches.monitoring``,
``trenches.cli``) all use the one helper."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

from trenches._lazy import lazy_names

PACKAGES = ["trenches", "trenches.runs", "trenches.monitoring", "trenches.cli"]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_uses_the_one_helper(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__getattr__.__qualname__.startswith("lazy_names.")


def test_a_name_loads_its_module_once_and_stays() -> None:
    package = types.ModuleType("pkg_under_test")
    sys.modules["pkg_under_test"] = package
    try:
        package.__getattr__ = lazy_names("pkg_under_test", {"sqrt": "math"})  # type: ignore[attr-defined]
        import math

        assert package.sqrt is math.sqrt  # type: ignore[attr-defined]
        assert vars(package)["sqrt"] is math.sqrt
        with pytest.raises(AttributeError, match="has no attribute 'cube'"):
            package.cube  # type: ignore[attr-defined]  # noqa: B018
    finally:
        del sys.modules["pkg_under_test"]


def test_monitoring_and_the_cli_load_nothing_heavy_until_asked() -> None:
    heavy = "('trenches.monitoring.monitor', 'trenches.cli.commands')"
    loaded = f"print(*(m in sys.modules for m in {heavy}))"
    code = (
        f"import sys, trenches.monitoring, trenches.cli; {loaded}; "
        f"trenches.monitoring.Monitoring; trenches.cli.app; {loaded}"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"]
