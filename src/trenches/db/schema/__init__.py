"""The tables, in SQLAlchemy Core. Every change here comes with an Alembic migration.

Times are integers: microseconds since the Unix epoch, UTC. They are exact (a
snapshot rebuilt from timestamps must select the very same patterns), compare
the same on every backend, and read into NumPy without parsing.
"""

from __future__ import annotations

from trenches.db.schema.columns import Id, metadata
from trenches.db.schema.data import (
    alerts,
    alias_history,
    aliases,
    artifacts,
    baselines,
    checks,
    datasets,
    drift_reports,
    environments,
    explanations,
    feedback,
    import_batches,
    latest_metrics,
    metric_points,
    model_files,
    model_versions,
    models,
    pattern_changes,
    patterns,
    prediction_blocks,
    predictors,
    problem_patterns,
    problems,
    retrains,
    run_artifacts,
    run_params,
    run_tags,
    runs,
    served_requests,
    snapshots,
)
from trenches.db.schema.iceberg import iceberg_namespace_properties, iceberg_tables
from trenches.db.schema.team import (
    api_tokens,
    audit_log,
    reviews,
    role_grants,
    sessions,
    users,
)

__all__ = [
    "Id",
    "alerts",
    "alias_history",
    "aliases",
    "api_tokens",
    "artifacts",
    "audit_log",
    "baselines",
    "checks",
    "datasets",
    "drift_reports",
    "environments",
    "explanations",
    "feedback",
    "iceberg_namespace_properties",
    "iceberg_tables",
    "import_batches",
    "latest_metrics",
    "metadata",
    "metric_points",
    "model_files",
    "model_versions",
    "models",
    "pattern_changes",
    "patterns",
    "prediction_blocks",
    "predictors",
    "problem_patterns",
    "problems",
    "retrains",
    "reviews",
    "role_grants",
    "run_artifacts",
    "run_params",
    "run_tags",
    "runs",
    "served_requests",
    "sessions",
    "snapshots",
    "users",
]
