"""trenches: the whole life of a machine-learning model in one database.

The names below load on first use (PEP 562), so ``import trenches`` and the command
line start quickly; ``trenches.open()`` brings in what a store needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trenches._lazy import lazy_names
from trenches.errors import (
    CheckFailed,
    Conflict,
    InvalidConfig,
    InvalidInput,
    NotFound,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    TrenchesError,
    UntrustedModel,
)

if TYPE_CHECKING:
    from trenches.explain import Explanation
    from trenches.gates import Check, GateResult
    from trenches.models import ModelVersion
    from trenches.patterns import (
        SPLITS,
        Dataset,
        ImportResult,
        InputColumn,
        InputSchema,
        Pattern,
        PatternChange,
        PatternHistory,
        Snapshot,
        TrainingData,
    )
    from trenches.runs import Run, RunInfo
    from trenches.store import Store, open

__version__ = "0.1.0"

_LAZY = {
    "Explanation": "trenches.explain",
    "Check": "trenches.gates",
    "GateResult": "trenches.gates",
    "ModelVersion": "trenches.models",
    "SPLITS": "trenches.names",
    "Dataset": "trenches.patterns",
    "ImportResult": "trenches.patterns",
    "InputColumn": "trenches.patterns",
    "InputSchema": "trenches.patterns",
    "Pattern": "trenches.patterns",
    "PatternChange": "trenches.patterns",
    "PatternHistory": "trenches.patterns",
    "Snapshot": "trenches.patterns",
    "TrainingData": "trenches.patterns",
    "Run": "trenches.runs",
    "RunInfo": "trenches.runs",
    "Store": "trenches.store",
    "open": "trenches.store",
}


__getattr__ = lazy_names(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "SPLITS",
    "Check",
    "CheckFailed",
    "Conflict",
    "Dataset",
    "Explanation",
    "GateResult",
    "ImportResult",
    "InputColumn",
    "InputSchema",
    "InvalidConfig",
    "InvalidInput",
    "ModelVersion",
    "NotFound",
    "Pattern",
    "PatternChange",
    "PatternHistory",
    "Run",
    "RunInfo",
    "SchemaTooNew",
    "Snapshot",
    "Store",
    "StoreBusy",
    "StoreError",
    "TrainingData",
    "TrenchesError",
    "UntrustedModel",
    "__version__",
    "open",
]
