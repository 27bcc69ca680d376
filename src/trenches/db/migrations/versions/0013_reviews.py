"""The labelling queue's reviews: a labeller's decision on an item (kept, relabelled,
sent to a problem), which takes it off the queue.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("pattern_id", sa.BigInteger),
        sa.Column("problem", sa.String(200)),
        sa.Column("reviewed_by", sa.String(200)),
        sa.Column("reviewed_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    op.create_index("ix_reviews_subject", "reviews", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_reviews_subject", table_name="reviews")
    op.drop_table("reviews")
