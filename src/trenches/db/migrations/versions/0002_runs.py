"""Runs: artifacts, environments, runs, params, tags, metric points, latest metrics, run
artifacts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_artifacts"),
    )
    op.create_table(
        "environments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("python", sa.String(100), nullable=False),
        sa.Column("platform", sa.String(300), nullable=False),
        sa.Column("packages", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("digest", name="uq_environments_digest"),
    )
    op.create_table(
        "runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("snapshot_id", Id),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("process_started", sa.BigInteger),
        sa.Column("git_state", sa.String(20), nullable=False),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("git_branch", sa.String(255)),
        sa.Column("git_root", sa.Text),
        sa.Column("git_diff_sha256", sa.String(64)),
        sa.Column("git_tag", sa.String(255)),
        sa.Column("environment_id", Id),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_runs_snapshot_id_snapshots"
        ),
        sa.ForeignKeyConstraint(
            ["git_diff_sha256"], ["artifacts.sha256"], name="fk_runs_git_diff_sha256_artifacts"
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"], ["environments.id"], name="fk_runs_environment_id_environments"
        ),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    for name in ("run_params", "run_tags"):
        op.create_table(
            name,
            sa.Column("run_id", Id, nullable=False),
            sa.Column("key", sa.String(250), nullable=False),
            sa.Column("value", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("run_id", "key", name=f"pk_{name}"),
            sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=f"fk_{name}_run_id_runs"),
        )
    op.create_index("ix_run_params_key_value", "run_params", ["key", "value"])
    op.create_table(
        "metric_points",
        sa.Column("run_id", Id, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("logged_at", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_metric_points_run_id_runs"),
    )
    op.create_index("ix_metric_points_run_key_step", "metric_points", ["run_id", "key", "step"])
    op.create_table(
        "latest_metrics",
        sa.Column("run_id", Id, nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("logged_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_latest_metrics"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_latest_metrics_run_id_runs"),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", Id, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_run_artifacts"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_artifacts_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["sha256"], ["artifacts.sha256"], name="fk_run_artifacts_sha256_artifacts"
        ),
    )


def downgrade() -> None:
    for name in (
        "run_artifacts",
        "latest_metrics",
        "metric_points",
        "run_tags",
        "run_params",
        "runs",
        "environments",
        "artifacts",
    ):
        op.drop_table(name)
