"""trenches: the whole life of a machine-learning model in one database."""

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
