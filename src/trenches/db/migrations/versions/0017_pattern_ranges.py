"""Where pattern ids belong without a row a pattern: each import batch keeps the range
of ids it made (``first_pattern_id`` .. ``last_pattern_id``), and each pattern change
the dataset of its pattern, filled in for what is stored already.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN: a copy of the table (SQLite's batch mode) could
    # not drop the old one while the patterns' foreign keys point at it.
    op.add_column("import_batches", sa.Column("first_pattern_id", sa.BigInteger()))
    op.add_column("import_batches", sa.Column("last_pattern_id", sa.BigInteger()))
    # The ids of a batch are consecutive (an import's, or a relabel's one). One pass
    # over the patterns, then a statement a batch (UPDATE ... FROM needs SQLite 3.33).
    conn = op.get_bind()
    ranges = conn.execute(
        sa.text("SELECT batch_id, min(id), max(id) FROM patterns GROUP BY batch_id")
    ).all()
    if ranges:
        conn.execute(
            sa.text(
                "UPDATE import_batches SET first_pattern_id = :lo, last_pattern_id = :hi "
                "WHERE id = :batch"
            ),
            [{"batch": batch, "lo": lo, "hi": hi} for batch, lo, hi in ranges],
        )
    op.create_index("ix_import_batches_last_pattern_id", "import_batches", ["last_pattern_id"])
    with op.batch_alter_table("pattern_changes") as batch:
        batch.add_column(sa.Column("dataset_id", Id, nullable=True))
    op.execute(
        "UPDATE pattern_changes SET dataset_id = "
        "(SELECT dataset_id FROM patterns WHERE patterns.id = pattern_changes.pattern_id)"
    )
    with op.batch_alter_table("pattern_changes") as batch:
        batch.alter_column("dataset_id", existing_type=Id, nullable=False)
        batch.create_foreign_key(
            "fk_pattern_changes_dataset_id_datasets", "datasets", ["dataset_id"], ["id"]
        )
        batch.create_index("ix_pattern_changes_dataset_pattern", ["dataset_id", "pattern_id"])
        batch.create_index("ix_pattern_changes_new_pattern_id", ["new_pattern_id"])


def downgrade() -> None:
    with op.batch_alter_table("pattern_changes") as batch:
        batch.drop_index("ix_pattern_changes_new_pattern_id")
        batch.drop_index("ix_pattern_changes_dataset_pattern")
        batch.drop_constraint("fk_pattern_changes_dataset_id_datasets", type_="foreignkey")
        batch.drop_column("dataset_id")
    op.drop_index("ix_import_batches_last_pattern_id", table_name="import_batches")
    op.drop_column("import_batches", "last_pattern_id")
    op.drop_column("import_batches", "first_pattern_id")
