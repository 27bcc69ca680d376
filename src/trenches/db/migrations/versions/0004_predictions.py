"""Baselines, predictors and predictions.

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
        "predictions",
        sa.Column("predictor_id", Id, nullable=False),
        sa.Column("pattern_id", Id, nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("value", sa.Float),
        sa.Column("scores", sa.LargeBinary),
        sa.Column("correct", sa.Boolean),
        sa.Column("loss", sa.Float),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("predictor_id", "pattern_id", name="pk_predictions"),
        sa.ForeignKeyConstraint(
            ["predictor_id"], ["predictors.id"], name="fk_predictions_predictor_id_predictors"
        ),
        sa.ForeignKeyConstraint(
            ["pattern_id"], ["patterns.id"], name="fk_predictions_pattern_id_patterns"
        ),
    )


def downgrade() -> None:
    for name in ("predictions", "predictors", "baselines"):
        op.drop_table(name)
