"""Datasets, import batches, patterns, pattern changes and snapshots.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("label_column", sa.String(200), nullable=False),
        sa.Column("label_type", sa.String(20)),
        sa.Column("text_column", sa.String(200)),
        sa.Column("input_schema", sa.Text),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("split_train", sa.Float, nullable=False),
        sa.Column("split_validation", sa.Float, nullable=False),
        sa.Column("split_test", sa.Float, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "import_batches",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("labelled_by", sa.String(200)),
        sa.Column("note", sa.Text),
        sa.Column("file", sa.Text),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_import_batches"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_import_batches_dataset_id_datasets"
        ),
    )
    op.create_index("ix_import_batches_dataset_id", "import_batches", ["dataset_id"])
    op.create_table(
        "patterns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("split", sa.SmallInteger, nullable=False),
        sa.Column("input_key", sa.LargeBinary(16), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(16), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("num", sa.LargeBinary),
        sa.Column("obj", sa.Text),
        sa.Column("tags", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("deactivated_at", sa.BigInteger),
        sa.Column("replaces_id", Id),
        sa.PrimaryKeyConstraint("id", name="pk_patterns"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_patterns_dataset_id_datasets"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["import_batches.id"], name="fk_patterns_batch_id_import_batches"
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"], ["patterns.id"], name="fk_patterns_replaces_id_patterns"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_patterns_dataset_created", "patterns", ["dataset_id", "created_at"])
    op.create_index(
        "ix_patterns_replaces",
        "patterns",
        ["replaces_id"],
        sqlite_where=sa.text("replaces_id IS NOT NULL"),
        postgresql_where=sa.text("replaces_id IS NOT NULL"),
    )
    op.create_table(
        "pattern_changes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("pattern_id", Id, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("new_pattern_id", Id),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("changed_by", sa.String(200)),
        sa.Column("changed_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pattern_changes"),
        sa.ForeignKeyConstraint(
            ["pattern_id"], ["patterns.id"], name="fk_pattern_changes_pattern_id_patterns"
        ),
        sa.ForeignKeyConstraint(
            ["new_pattern_id"], ["patterns.id"], name="fk_pattern_changes_new_pattern_id_patterns"
        ),
    )
    op.create_index("ix_pattern_changes_pattern_id", "pattern_changes", ["pattern_id"])
    op.create_table(
        "snapshots",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("as_of", sa.BigInteger, nullable=False),
        sa.Column("max_pattern_id", sa.BigInteger, nullable=False),
        sa.Column("sources", sa.Text),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("patterns", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_snapshots_dataset_id_datasets"
        ),
    )
    op.create_index("ix_snapshots_dataset_id", "snapshots", ["dataset_id"])


def downgrade() -> None:
    op.drop_table("snapshots")
    op.drop_table("pattern_changes")
    op.drop_table("patterns")
    op.drop_table("import_batches")
    op.drop_table("datasets")
