"""Monitoring production: drift of inputs and predictions, alerts, outliers.

``drift(reference, current)`` works on two DataFrames; ``store.monitoring`` runs it on
a window of served requests against a version's training data and keeps the reports.
"""

from __future__ import annotations

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


def __getattr__(name: str) -> object:
    if name == "Monitoring":
        from trenches.monitoring.monitor import Monitoring

        return Monitoring
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
