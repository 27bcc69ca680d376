"""Alembic environment: trenches always hands over an open connection."""

from __future__ import annotations

from alembic import context

from trenches.db.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running alembic by hand
    raise RuntimeError(
        "trenches migrations run through trenches.open() or `trenches init`, "
        "which pass a connection; do not run `alembic` directly"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
