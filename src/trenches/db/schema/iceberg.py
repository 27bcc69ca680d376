"""The Iceberg catalog's tables (migration 0014): pyiceberg's SQL catalog keeps the
pointer of each of the store's Iceberg tables to its current metadata file here, in the
store's own database, so that a table's commit is one row written in a trenches
transaction (see :mod:`trenches.tables.catalog`). The columns are pyiceberg's own."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from trenches.db.schema.columns import metadata

iceberg_tables = Table(
    "iceberg_tables",
    metadata,
    Column("catalog_name", String(255), primary_key=True),
    Column("table_namespace", String(255), primary_key=True),
    Column("table_name", String(255), primary_key=True),
    Column("metadata_location", String(1000)),
    Column("previous_metadata_location", String(1000)),
)

iceberg_namespace_properties = Table(
    "iceberg_namespace_properties",
    metadata,
    Column("catalog_name", String(255), primary_key=True),
    Column("namespace", String(255), primary_key=True),
    Column("property_key", String(255), primary_key=True),
    Column("property_value", String(1000), nullable=False),
)
