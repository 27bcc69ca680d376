"""Create and upgrade the schema with Alembic; refuse a schema newer than this code."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import Connection

from trenches.db.engine import write
from trenches.errors import SchemaTooNew, StoreError

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def is_known(revision: str) -> bool:
    """Whether this code knows ``revision`` (an older or the current schema)."""
    scripts = ScriptDirectory.from_config(_config())
    return revision in {s.revision for s in scripts.walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The schema revision stored in the database, or ``None`` for an empty one."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to this code's head. Returns ``True`` when anything changed.

    Runs in one write transaction, so two processes opening a new store at once
    do not both try to create it.
    """
    scripts = ScriptDirectory.from_config(_config())
    with write(engine) as conn:
        current = current_revision(conn)
        head = scripts.get_current_head()
        if current == head:
            return False
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise SchemaTooNew(
                f"this store's schema is at revision {current!r}, newer than this version of "
                f"trenches knows (its newest is {head!r}); upgrade trenches "
                "(pip install -U trenches) before opening it"
            )
        if current is None and inspect(conn).has_table("patterns"):
            raise StoreError(
                "the database has trenches tables but no schema revision; "
                "it was not created by trenches init"
            )
        command.upgrade(_config(conn), "head")
        return True


def schema_exists(engine: Engine) -> bool:
    with engine.connect() as conn:
        return current_revision(conn) is not None
