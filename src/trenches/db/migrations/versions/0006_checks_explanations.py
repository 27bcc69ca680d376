"""Gate checks and stored explanations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("version_id", Id, nullable=False),
        sa.Column("criteria_digest", sa.String(64), nullable=False),
        sa.Column("criteria", sa.Text, nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("results", sa.Text, nullable=False),
        sa.Column("checked_by", sa.String(200)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checks"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_checks_version_id_model_versions"
        ),
    )
    op.create_index("ix_checks_version_id", "checks", ["version_id"])
    op.create_table(
        "explanations",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("version_id", Id, nullable=False),
        sa.Column("pattern_id", Id, nullable=False),
        sa.Column("method", sa.String(40), nullable=False),
        sa.Column("settings_digest", sa.String(64), nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_explanations"),
        sa.UniqueConstraint(
            "version_id",
            "pattern_id",
            "method",
            "settings_digest",
            name="uq_explanations_version_pattern_method_settings",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name="fk_explanations_version_id_model_versions",
        ),
        sa.ForeignKeyConstraint(
            ["pattern_id"], ["patterns.id"], name="fk_explanations_pattern_id_patterns"
        ),
    )
    op.create_index("ix_explanations_pattern_id", "explanations", ["pattern_id"])


def downgrade() -> None:
    op.drop_index("ix_explanations_pattern_id", table_name="explanations")
    op.drop_table("explanations")
    op.drop_index("ix_checks_version_id", table_name="checks")
    op.drop_table("checks")
