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
    Forbidden,
    InvalidConfig,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    NotOfferedRemotely,
    SchemaTooNew,
    StoreBusy,
    StoreError,
    TrenchesError,
    UntrustedModel,
)

if TYPE_CHECKING:
    # Types the store and what it returns hand out.
    from trenches.backfill import Backfill, BackfillResult, Gap, SkippedVersion, VersionBackfill
    from trenches.baselines import Baseline, Baselines
    from trenches.compaction import Compaction, Migration
    from trenches.comparison import Comparison, Flips
    from trenches.evaluation import EvaluateResult, Evaluation
    from trenches.explain import Explanation, Explanations
    from trenches.gates import Check, GateResult, Gates
    from trenches.json_form import from_json, to_json
    from trenches.lineage import Lineage
    from trenches.models import ModelVersion
    from trenches.models.endpoints import Endpoint, EndpointFailed
    from trenches.models.formats import Signature
    from trenches.models.registry import Models
    from trenches.models.versions import AliasMove
    from trenches.monitoring.monitor import Monitoring
    from trenches.monitoring.reports import Alert, Monitored
    from trenches.monitoring.results import ColumnDrift, DriftReport
    from trenches.patterns import (
        SPLITS,
        Dataset,
        ImportResult,
        InputColumn,
        InputSchema,
        Pattern,
        PatternChange,
        PatternHistory,
        PatternPage,
        PatternQuery,
        Snapshot,
        TrainingData,
    )
    from trenches.patterns.datasets import Datasets, DatasetSummary
    from trenches.patterns.diff import DataChange, SnapshotDiff
    from trenches.patterns.history import Patterns
    from trenches.patterns.quality import Finding, QualityReport
    from trenches.patterns.sets import PatternSet
    from trenches.patterns.snapshots import Snapshots
    from trenches.predict import PredictResult
    from trenches.predictions import Predictions
    from trenches.predictors import Predictor, Predictors
    from trenches.problems import AddResult, Problem, Problems
    from trenches.problems.scores import ProblemScore
    from trenches.report.html import write_report
    from trenches.report.problems import write_problem_graph
    from trenches.requests.feedback import Feedback
    from trenches.requests.log import Requests
    from trenches.requests.patterns import RequestPattern, ToPatterns
    from trenches.requests.reviews import Review, Reviews, WaitingRow
    from trenches.requests.window import (
        NumberColumns,
        RequestWindow,
        WindowLabels,
        WindowPart,
        WindowParts,
    )
    from trenches.retrain import OnDrift, Retrains
    from trenches.retrain.record import Figures, ProblemTally, Retrain
    from trenches.runs import Run, RunInfo
    from trenches.runs.search import Runs
    from trenches.scoring import Scoring, ScoringResult
    from trenches.settings import (
        ColumnSettings,
        Criteria,
        DriftSettings,
        GateSpec,
        GuardSettings,
        MonitorSettings,
        RetrainSettings,
        Settings,
    )
    from trenches.store import Store, open
    from trenches.tables import TableCompaction
    from trenches.team.accounts import Accounts, User
    from trenches.team.audit import Audit, AuditEntry
    from trenches.team.roles import ROLES, Grant, Grants
    from trenches.team.sessions import NewSession, Session, Sessions, SignedIn
    from trenches.team.tokens import NewToken, Token, Tokens
    from trenches.traffic.live import ArmLive, LiveComparison
    from trenches.traffic.policies import Traffic, TrafficArm, TrafficPolicy
    from trenches.traffic.replay import ProblemReplay, Replay, Replays
    from trenches.verdicts import Tolerance

__version__ = "0.1.0"

_LAZY = {
    "BackfillResult": "trenches.backfill",
    "SkippedVersion": "trenches.backfill",
    "Compaction": "trenches.compaction",
    "Migration": "trenches.compaction",
    "TableCompaction": "trenches.tables",
    "Comparison": "trenches.comparison",
    "Flips": "trenches.comparison",
    "Evaluation": "trenches.evaluation",
    "DataChange": "trenches.patterns.diff",
    "SnapshotDiff": "trenches.patterns.diff",
    "Problem": "trenches.problems",
    "ProblemScore": "trenches.problems",
    "Tolerance": "trenches.verdicts",
    "Explanation": "trenches.explain",
    "Check": "trenches.gates",
    "GateResult": "trenches.gates",
    "ModelVersion": "trenches.models",
    "Endpoint": "trenches.models.endpoints",
    "EndpointFailed": "trenches.models.endpoints",
    "SPLITS": "trenches.names",
    "Dataset": "trenches.patterns",
    "ImportResult": "trenches.patterns",
    "InputColumn": "trenches.patterns",
    "InputSchema": "trenches.patterns",
    "Pattern": "trenches.patterns",
    "PatternChange": "trenches.patterns",
    "PatternHistory": "trenches.patterns",
    "PatternPage": "trenches.patterns",
    "PatternQuery": "trenches.patterns",
    "Snapshot": "trenches.patterns",
    "TrainingData": "trenches.patterns",
    "Run": "trenches.runs",
    "RunInfo": "trenches.runs",
    "Store": "trenches.store",
    "open": "trenches.store",
    "VersionBackfill": "trenches.backfill",
    "Backfill": "trenches.backfill",
    "Scoring": "trenches.scoring",
    "ScoringResult": "trenches.scoring",
    "Gap": "trenches.backfill",
    "Baselines": "trenches.baselines",
    "Baseline": "trenches.baselines",
    "Explanations": "trenches.explain",
    "Gates": "trenches.gates",
    "Lineage": "trenches.lineage",
    "Signature": "trenches.models.formats",
    "Models": "trenches.models.registry",
    "AliasMove": "trenches.models.versions",
    "Monitoring": "trenches.monitoring.monitor",
    "Monitored": "trenches.monitoring.reports",
    "Alert": "trenches.monitoring.reports",
    "DriftReport": "trenches.monitoring.results",
    "ColumnDrift": "trenches.monitoring.results",
    "Datasets": "trenches.patterns.datasets",
    "DatasetSummary": "trenches.patterns.datasets",
    "Patterns": "trenches.patterns.history",
    "Snapshots": "trenches.patterns.snapshots",
    "Problems": "trenches.problems",
    "AddResult": "trenches.problems",
    "QualityReport": "trenches.patterns.quality",
    "Finding": "trenches.patterns.quality",
    "Retrains": "trenches.retrain",
    "Retrain": "trenches.retrain.record",
    "OnDrift": "trenches.retrain",
    "Figures": "trenches.retrain.record",
    "ProblemTally": "trenches.retrain.record",
    "Runs": "trenches.runs.search",
    "EvaluateResult": "trenches.evaluation",
    "PredictResult": "trenches.predict",
    "Predictions": "trenches.predictions",
    "Predictor": "trenches.predictors",
    "Predictors": "trenches.predictors",
    "PatternSet": "trenches.patterns.sets",
    "Settings": "trenches.settings",
    "MonitorSettings": "trenches.settings",
    "RetrainSettings": "trenches.settings",
    "Criteria": "trenches.settings",
    "GateSpec": "trenches.settings",
    "DriftSettings": "trenches.settings",
    "ColumnSettings": "trenches.settings",
    "Requests": "trenches.requests.log",
    "Feedback": "trenches.requests.feedback",
    "ToPatterns": "trenches.requests.patterns",
    "Review": "trenches.requests.reviews",
    "Reviews": "trenches.requests.reviews",
    "WaitingRow": "trenches.requests.reviews",
    "RequestPattern": "trenches.requests.patterns",
    "RequestWindow": "trenches.requests.window",
    "NumberColumns": "trenches.requests.window",
    "WindowLabels": "trenches.requests.window",
    "WindowPart": "trenches.requests.window",
    "WindowParts": "trenches.requests.window",
    "write_report": "trenches.report.html",
    "write_problem_graph": "trenches.report.problems",
    "to_json": "trenches.json_form",
    "Accounts": "trenches.team.accounts",
    "User": "trenches.team.accounts",
    "Audit": "trenches.team.audit",
    "AuditEntry": "trenches.team.audit",
    "ROLES": "trenches.team.roles",
    "Grant": "trenches.team.roles",
    "Grants": "trenches.team.roles",
    "NewToken": "trenches.team.tokens",
    "Token": "trenches.team.tokens",
    "Tokens": "trenches.team.tokens",
    "Session": "trenches.team.sessions",
    "Sessions": "trenches.team.sessions",
    "NewSession": "trenches.team.sessions",
    "SignedIn": "trenches.team.sessions",
    "from_json": "trenches.json_form",
    "GuardSettings": "trenches.settings",
    "TrafficArm": "trenches.traffic.policies",
    "TrafficPolicy": "trenches.traffic.policies",
    "Traffic": "trenches.traffic.policies",
    "ArmLive": "trenches.traffic.live",
    "LiveComparison": "trenches.traffic.live",
    "Replay": "trenches.traffic.replay",
    "ProblemReplay": "trenches.traffic.replay",
    "Replays": "trenches.traffic.replay",
}


__getattr__ = lazy_names(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ROLES",
    "SPLITS",
    "Accounts",
    "AddResult",
    "Alert",
    "AliasMove",
    "ArmLive",
    "Audit",
    "AuditEntry",
    "Backfill",
    "BackfillResult",
    "Baseline",
    "Baselines",
    "Check",
    "CheckFailed",
    "ColumnDrift",
    "ColumnSettings",
    "Compaction",
    "Comparison",
    "Conflict",
    "Criteria",
    "DataChange",
    "Dataset",
    "DatasetSummary",
    "Datasets",
    "DiskFull",
    "DriftReport",
    "DriftSettings",
    "Endpoint",
    "EndpointFailed",
    "EvaluateResult",
    "Evaluation",
    "Explanation",
    "Explanations",
    "Feedback",
    "Figures",
    "Finding",
    "Flips",
    "Forbidden",
    "Gap",
    "GateResult",
    "GateSpec",
    "Gates",
    "Grant",
    "Grants",
    "GuardSettings",
    "ImportResult",
    "InputColumn",
    "InputSchema",
    "InvalidConfig",
    "InvalidInput",
    "Lineage",
    "LiveComparison",
    "Migration",
    "ModelVersion",
    "Models",
    "MonitorSettings",
    "Monitored",
    "Monitoring",
    "NewSession",
    "NewToken",
    "NotAuthenticated",
    "NotFound",
    "NotOfferedRemotely",
    "NumberColumns",
    "OnDrift",
    "Pattern",
    "PatternChange",
    "PatternHistory",
    "PatternPage",
    "PatternQuery",
    "PatternSet",
    "Patterns",
    "PredictResult",
    "Predictions",
    "Predictor",
    "Predictors",
    "Problem",
    "ProblemReplay",
    "ProblemScore",
    "ProblemTally",
    "Problems",
    "QualityReport",
    "Replay",
    "Replays",
    "RequestPattern",
    "RequestWindow",
    "Requests",
    "Retrain",
    "RetrainSettings",
    "Retrains",
    "Review",
    "Reviews",
    "Run",
    "RunInfo",
    "Runs",
    "SchemaTooNew",
    "Scoring",
    "ScoringResult",
    "Session",
    "Sessions",
    "Settings",
    "Signature",
    "SignedIn",
    "SkippedVersion",
    "Snapshot",
    "SnapshotDiff",
    "Snapshots",
    "Store",
    "StoreBusy",
    "StoreError",
    "TableCompaction",
    "ToPatterns",
    "Token",
    "Tokens",
    "Tolerance",
    "Traffic",
    "TrafficArm",
    "TrafficPolicy",
    "TrainingData",
    "TrenchesError",
    "UntrustedModel",
    "User",
    "VersionBackfill",
    "WaitingRow",
    "WindowLabels",
    "WindowPart",
    "WindowParts",
    "__version__",
    "from_json",
    "open",
    "to_json",
    "write_problem_graph",
    "write_report",
]
