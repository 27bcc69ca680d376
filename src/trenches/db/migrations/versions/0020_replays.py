"""Replays: a candidate's answers to the requests of a window of the request log,
against what callers were answered (``trenches replay``), for the report and for
gates (``replay-agreement``).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "version_id",
            _ID,
            sa.ForeignKey("model_versions.id", name="fk_replays_version_id_model_versions"),
            nullable=False,
        ),
        sa.Column("since", sa.BigInteger()),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("predicted", sa.Integer(), nullable=False),
        sa.Column("agreed", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("candidate_right", sa.Integer(), nullable=False),
        sa.Column("production_right", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
    )
    op.create_index("ix_replays_version_id", "replays", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_replays_version_id", table_name="replays")
    op.drop_table("replays")
