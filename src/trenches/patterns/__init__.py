"""Datasets, patterns, imports, splits, history and snapshots."""

from trenches.patterns.datasets import SPLITS, Dataset, ImportResult, Pattern
from trenches.patterns.history import PatternChange, PatternHistory
from trenches.patterns.inputs import InputColumn, InputSchema
from trenches.patterns.snapshots import Snapshot, TrainingData

__all__ = [
    "SPLITS",
    "Dataset",
    "ImportResult",
    "InputColumn",
    "InputSchema",
    "Pattern",
    "PatternChange",
    "PatternHistory",
    "Snapshot",
    "TrainingData",
]
