"""Tolerances for regression (per dataset, overridable per problem), problems whose
patterns may be trained on, and the patterns a snapshot holds out of training.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("tolerance_abs", sa.Float))
        batch.add_column(sa.Column("tolerance_rel", sa.Float))
    with op.batch_alter_table("problems") as batch:
        batch.add_column(sa.Column("tolerance_abs", sa.Float))
        batch.add_column(sa.Column("tolerance_rel", sa.Float))
        batch.add_column(
            sa.Column("trainable", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("held_out", sa.LargeBinary))


def downgrade() -> None:
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("held_out")
    with op.batch_alter_table("problems") as batch:
        batch.drop_column("trainable")
        batch.drop_column("tolerance_rel")
        batch.drop_column("tolerance_abs")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("tolerance_rel")
        batch.drop_column("tolerance_abs")
