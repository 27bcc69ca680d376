"""Pattern ids that need no row in ``patterns``: a columnar dataset's patterns live in
its table alone, so the tables that name a pattern (its changes, problems,
explanations, feedback) no longer point at a database row with a foreign key. Which
dataset an id is of comes from the batches' ranges (0017).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

#: (table, column) of every foreign key to ``patterns.id`` but a pattern's own link to
#: the pattern it relabels, which only the database rows of older datasets hold.
_POINTING = (
    ("pattern_changes", "pattern_id"),
    ("pattern_changes", "new_pattern_id"),
    ("problem_patterns", "pattern_id"),
    ("explanations", "pattern_id"),
    ("feedback", "pattern_id"),
)


def upgrade() -> None:
    for table in dict.fromkeys(table for table, _ in _POINTING):
        with op.batch_alter_table(table) as batch:
            for _, column in (p for p in _POINTING if p[0] == table):
                batch.drop_constraint(f"fk_{table}_{column}_patterns", type_="foreignkey")


def downgrade() -> None:
    for table in dict.fromkeys(table for table, _ in _POINTING):
        with op.batch_alter_table(table) as batch:
            for _, column in (p for p in _POINTING if p[0] == table):
                batch.create_foreign_key(
                    f"fk_{table}_{column}_patterns", "patterns", [column], ["id"]
                )
