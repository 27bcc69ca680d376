"""Runs: params, tags, metric series, code and environment, and finding them again.

Names load on first use: opening a store reaps killed runs through
``trenches.runs.tracking`` without loading the search (pandas, Arrow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trenches.runs.code import CodeState, Environment
    from trenches.runs.search import RunInfo, Runs
    from trenches.runs.tracking import Run

_LAZY = {
    "CodeState": "trenches.runs.code",
    "Environment": "trenches.runs.code",
    "RunInfo": "trenches.runs.search",
    "Runs": "trenches.runs.search",
    "Run": "trenches.runs.tracking",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trenches.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["CodeState", "Environment", "Run", "RunInfo", "Runs"]
