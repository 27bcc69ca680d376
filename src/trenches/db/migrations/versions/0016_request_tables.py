"""The request log in Iceberg: a served request's inputs and outputs leave its
``served_requests`` row (null) once they are moved into the request log's tables;
rows that still hold them are the staged ones, found by a partial index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("served_requests") as batch:
        batch.alter_column("inputs", existing_type=sa.Text(), nullable=True)
        batch.alter_column("outputs", existing_type=sa.Text(), nullable=True)
    op.create_index(
        "ix_served_requests_staged",
        "served_requests",
        ["id"],
        sqlite_where=sa.text("inputs IS NOT NULL"),
        postgresql_where=sa.text("inputs IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_served_requests_staged", table_name="served_requests")
    with op.batch_alter_table("served_requests") as batch:
        batch.alter_column("inputs", existing_type=sa.Text(), nullable=False)
        batch.alter_column("outputs", existing_type=sa.Text(), nullable=False)
