"""Pattern inputs in Iceberg: ``datasets.columnar`` says whether a dataset keeps its
patterns' inputs in its Iceberg table (``patterns_<id>``, datasets made from now on)
or packed in its ``patterns`` rows (datasets of an earlier release, until
``trenches migrate`` moves them); and an index of the deactivated patterns, which a
columnar read takes from the database.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "datasets",
        sa.Column("columnar", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_patterns_deactivated",
        "patterns",
        ["dataset_id", "deactivated_at"],
        sqlite_where=sa.text("deactivated_at IS NOT NULL"),
        postgresql_where=sa.text("deactivated_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_patterns_deactivated", table_name="patterns")
    op.drop_column("datasets", "columnar")
