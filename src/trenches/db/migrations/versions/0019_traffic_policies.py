"""Traffic policies: how a model's requests are shared between its versions (shadow,
canary, A/B, bandit), each change a row; the request log records the policy and arm
that answered each request, and a version answering in another's shadow; feedback
records whether its label was the answer given, which bandits and guards count.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "traffic_policies",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "model_id",
            _ID,
            sa.ForeignKey("models.id", name="fk_traffic_policies_model_id_models"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("arms", sa.Text(), nullable=False),
        sa.Column("floor", sa.Float(), nullable=False),
        sa.Column("rating_max", sa.Float()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_traffic_policies_model_id", "traffic_policies", ["model_id"])
    with op.batch_alter_table("served_requests") as batch:
        batch.add_column(sa.Column("policy_id", _ID))
        batch.add_column(sa.Column("arm", sa.String(80)))
        batch.add_column(sa.Column("shadow_of", sa.String(64)))
    op.create_index(
        "ix_served_requests_policy_id",
        "served_requests",
        ["policy_id"],
        sqlite_where=sa.text("policy_id IS NOT NULL"),
        postgresql_where=sa.text("policy_id IS NOT NULL"),
    )
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("correct", sa.SmallInteger()))
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    with op.batch_alter_table("feedback") as batch:
        batch.drop_column("correct")
    op.drop_index("ix_served_requests_policy_id", table_name="served_requests")
    with op.batch_alter_table("served_requests") as batch:
        batch.drop_column("shadow_of")
        batch.drop_column("arm")
        batch.drop_column("policy_id")
    op.drop_index("ix_traffic_policies_model_id", table_name="traffic_policies")
    op.drop_table("traffic_policies")
