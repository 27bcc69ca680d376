"""Runs: params, tags, metric series, code and environment, and finding them again.

Names load on first use: opening a store reaps killed runs through
``trenches.runs.tracking`` without loading the search (pandas, Arrow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trenches._lazy import lazy_names

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


__getattr__ = lazy_names(__name__, _LAZY)


__all__ = ["CodeState", "Environment", "Run", "RunInfo", "Runs"]
