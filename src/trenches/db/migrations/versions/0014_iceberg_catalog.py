"""The Iceberg catalog: pyiceberg's SQL catalog tables in the store's own database,
and the one namespace of the store's tables (``trenches``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "iceberg_tables",
        sa.Column("catalog_name", sa.String(255), nullable=False),
        sa.Column("table_namespace", sa.String(255), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("metadata_location", sa.String(1000)),
        sa.Column("previous_metadata_location", sa.String(1000)),
        sa.PrimaryKeyConstraint(
            "catalog_name", "table_namespace", "table_name", name="pk_iceberg_tables"
        ),
    )
    properties = op.create_table(
        "iceberg_namespace_properties",
        sa.Column("catalog_name", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("property_key", sa.String(255), nullable=False),
        sa.Column("property_value", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint(
            "catalog_name", "namespace", "property_key", name="pk_iceberg_namespace_properties"
        ),
    )
    op.bulk_insert(
        properties,
        [
            {
                "catalog_name": "trenches",
                "namespace": "trenches",
                "property_key": "exists",
                "property_value": "true",
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("iceberg_namespace_properties")
    op.drop_table("iceberg_tables")
