"""Monitoring production: drift of inputs and predictions, alerts, outliers.

``drift(reference, current)`` works on two DataFrames; ``store.monitoring`` runs it on
a window of served requests against a version's training data and keeps the reports.
"""

from __future__ import annotations

from trenches._lazy import lazy_names
from trenches.monitoring.drift import (
    ColumnDrift,
    ColumnSettings,
    DriftReport,
    DriftSettings,
    drift,
    infer_kind,
)

__all__ = [
    "ColumnDrift",
    "ColumnSettings",
    "DriftReport",
    "DriftSettings",
    "Monitoring",
    "drift",
    "infer_kind",
]


#: Loaded on first use: the monitor brings in the store.
__getattr__ = lazy_names(__name__, {"Monitoring": "trenches.monitoring.monitor"})
