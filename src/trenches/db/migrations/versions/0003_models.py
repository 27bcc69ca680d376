"""The model registry: models, versions, files, aliases and their history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_id", Id),
        sa.Column("dataset_id", Id),
        sa.Column("task", sa.String(20)),
        sa.Column("flavor", sa.String(50), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("onnx_error", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_model_versions_model_id_models"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_model_versions_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_model_versions_dataset_id_datasets"
        ),
    )
    op.create_table(
        "model_files",
        sa.Column("version_id", Id, nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("details", sa.Text),
        sa.PrimaryKeyConstraint("version_id", "format", name="pk_model_files"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_model_files_version_id_model_versions"
        ),
        sa.ForeignKeyConstraint(
            ["sha256"], ["artifacts.sha256"], name="fk_model_files_sha256_artifacts"
        ),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", Id, nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("version_id", Id, nullable=False),
        sa.PrimaryKeyConstraint("model_id", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], name="fk_aliases_model_id_models"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"], name="fk_aliases_version_id_model_versions"
        ),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, nullable=False),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("from_version_id", Id),
        sa.Column("to_version_id", Id),
        sa.Column("moved_by", sa.String(200)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("moved_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alias_history"),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name="fk_alias_history_model_id_models"
        ),
        sa.ForeignKeyConstraint(
            ["from_version_id"],
            ["model_versions.id"],
            name="fk_alias_history_from_version_id_model_versions",
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["model_versions.id"],
            name="fk_alias_history_to_version_id_model_versions",
        ),
    )
    op.create_index("ix_alias_history_model_id", "alias_history", ["model_id"])


def downgrade() -> None:
    for name in ("alias_history", "aliases", "model_files", "model_versions", "models"):
        op.drop_table(name)
