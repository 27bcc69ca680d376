"""The problem database: problems and their positive and negative patterns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "problems",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("closed_at", sa.BigInteger),
        sa.Column("close_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_problems"),
        sa.UniqueConstraint("slug", name="uq_problems_slug"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_problems_dataset_id_datasets"
        ),
    )
    op.create_table(
        "problem_patterns",
        sa.Column("problem_id", Id, nullable=False),
        sa.Column("pattern_id", Id, nullable=False),
        sa.Column("polarity", sa.String(10), nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("problem_id", "pattern_id", name="pk_problem_patterns"),
        sa.ForeignKeyConstraint(
            ["problem_id"], ["problems.id"], name="fk_problem_patterns_problem_id_problems"
        ),
        sa.ForeignKeyConstraint(
            ["pattern_id"], ["patterns.id"], name="fk_problem_patterns_pattern_id_patterns"
        ),
    )


def downgrade() -> None:
    op.drop_table("problem_patterns")
    op.drop_table("problems")
