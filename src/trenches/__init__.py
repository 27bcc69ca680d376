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
    DiskFull,
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
    from trenches.backfill import BackfillResult, SkippedVersion
    from trenches.comparison import Comparison, Flips
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
    from trenches.patterns.diff import DataChange, SnapshotDiff
    from trenches.problems import Problem, ProblemScore
    from trenches.runs import Run, RunInfo
    from trenches.store import Store, open
    from trenches.verdicts import Tolerance

__version__ = "0.1.0"

_LAZY = {
    "BackfillResult": "trenches.backfill",
    "SkippedVersion": "trenches.backfill",
    "Comparison": "trenches.comparison",
    "Flips": "trenches.comparison",
    "DataChange": "trenches.patterns.diff",
    "SnapshotDiff": "trenches.patterns.diff",
    "Problem": "trenches.problems",
    "ProblemScore": "trenches.problems",
    "Tolerance": "trenches.verdicts",
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
    "BackfillResult",
    "Check",
    "CheckFailed",
    "Comparison",
    "Conflict",
    "DataChange",
    "Dataset",
    "DiskFull",
    "Explanation",
    "Flips",
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
    "Problem",
    "ProblemScore",
    "Run",
    "RunInfo",
    "SchemaTooNew",
    "SkippedVersion",
    "Snapshot",
    "SnapshotDiff",
    "Store",
    "StoreBusy",
    "StoreError",
    "Tolerance",
    "TrainingData",
    "TrenchesError",
    "UntrustedModel",
    "__version__",
    "open",
]
