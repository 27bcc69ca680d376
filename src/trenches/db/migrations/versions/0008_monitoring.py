"""Drift reports, their alerts, and the passes of the retraining loop.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("version_id", Id, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("reference_rows", sa.Integer, nullable=False),
        sa.Column("current", sa.Text, nullable=False),
        sa.Column("current_rows", sa.Integer, nullable=False),
        sa.Column("since", sa.BigInteger),
        sa.Column("until", sa.BigInteger),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("drifted_columns", sa.Integer, nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_reports"),
        _fk("drift_reports", "version_id", "model_versions"),
    )
    op.create_index("ix_drift_reports_version_id", "drift_reports", ["version_id"])
    op.create_index("ix_drift_reports_created_at", "drift_reports", ["created_at"])
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("report_id", Id, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("webhook", sa.Text),
        sa.Column("delivered", sa.Boolean),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        _fk("alerts", "report_id", "drift_reports"),
    )
    op.create_index("ix_alerts_report_id", "alerts", ["report_id"])
    op.create_table(
        "retrains",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("report_id", Id),
        sa.Column("snapshot_id", Id),
        sa.Column("run_id", Id),
        sa.Column("version_id", Id),
        sa.Column("production_id", Id),
        sa.Column("check_id", Id),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("body", sa.Text),
        sa.Column("started_by", sa.String(200)),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("ended_at", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_retrains"),
        _fk("retrains", "report_id", "drift_reports"),
        _fk("retrains", "snapshot_id", "snapshots"),
        _fk("retrains", "run_id", "runs"),
        _fk("retrains", "version_id", "model_versions"),
        _fk("retrains", "production_id", "model_versions"),
        _fk("retrains", "check_id", "checks"),
    )
    op.create_index("ix_retrains_model", "retrains", ["model"])


def downgrade() -> None:
    op.drop_index("ix_retrains_model", table_name="retrains")
    op.drop_table("retrains")
    op.drop_index("ix_alerts_report_id", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_drift_reports_created_at", table_name="drift_reports")
    op.drop_index("ix_drift_reports_version_id", table_name="drift_reports")
    op.drop_table("drift_reports")
