"""Baselines, predictors and prediction blocks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "baselines",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dataset_id", Id, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_baselines"),
        sa.UniqueConstraint("name", name="uq_baselines_name"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_baselines_dataset_id_datasets"
        ),
    )
    op.create_table(
        "predictors",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("version_id", Id),
        sa.Column("baseline_id", Id),
        sa.Column("classes", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_predictors"),
        sa.UniqueConstraint("version_id", name="uq_predictors_version_id"),
        sa.UniqueConstraint("baseline_id", name="uq_predictors_baseline_id"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_predictors_version_id_model_versions"
        ),
        sa.ForeignKeyConstraint(
            ["baseline_id"], ["baselines.id"], name="fk_predictors_baseline_id_baselines"
        ),
    )
    op.create_table(
        "prediction_blocks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("predictor_id", Id, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("pattern_ids", sa.LargeBinary, nullable=False),
        sa.Column("label_index", sa.LargeBinary),
        sa.Column("value", sa.LargeBinary),
        sa.Column("scores", sa.LargeBinary),
        sa.Column("correct", sa.LargeBinary),
        sa.Column("loss", sa.LargeBinary),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_blocks"),
        sa.ForeignKeyConstraint(
            ["predictor_id"],
            ["predictors.id"],
            name="fk_prediction_blocks_predictor_id_predictors",
        ),
    )
    op.create_index("ix_prediction_blocks_predictor_id", "prediction_blocks", ["predictor_id"])


def downgrade() -> None:
    for name in ("prediction_blocks", "predictors", "baselines"):
        op.drop_table(name)
