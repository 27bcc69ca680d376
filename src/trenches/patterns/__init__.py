"""Datasets, patterns, imports, splits, history and snapshots."""

from trenches.names import SPLITS
from trenches.patterns.datasets import Dataset
from trenches.patterns.history import PatternChange, PatternHistory
from trenches.patterns.imports import ImportResult
from trenches.patterns.inputs import InputColumn, InputSchema
from trenches.patterns.listing import PatternPage
from trenches.patterns.record import Pattern
from trenches.patterns.selection import PatternQuery
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
    "PatternPage",
    "PatternQuery",
    "Snapshot",
    "TrainingData",
]
