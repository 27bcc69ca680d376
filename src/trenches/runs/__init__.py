"""Runs: params, tags, metric series, code and environment, and finding them again."""

from trenches.runs.code import CodeState, Environment
from trenches.runs.search import RunInfo, Runs
from trenches.runs.tracking import Run

__all__ = ["CodeState", "Environment", "Run", "RunInfo", "Runs"]
