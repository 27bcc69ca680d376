"""Create and upgrade the schema with Alembic; refuse a schema newer than this code.

Opening a store whose schema is current reads one row and imports nothing of Alembic
(a quarter of a second saved on every command): ``HEAD`` names the newest revision,
and a test keeps it equal to Alembic's head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from trenches.db.engine import read, write
from trenches.errors import SchemaTooNew, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest schema revision: the last file in migrations/versions.
HEAD = "0020"

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def is_known(revision: str) -> bool:
    """Whether this code knows ``revision`` (an older or the current schema)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return revision in {s.revision for s in scripts.walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """The schema revision stored in the database, or ``None`` for an empty one."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> bool:
    """Bring the schema to this code's head. Returns ``True`` when anything changed.

    Runs in one write transaction, so two processes opening a new store at once
    do not both try to create it.
    """
    with read(engine) as conn:
        if current_revision(conn) == HEAD:
            return False
    from alembic import command
    from alembic.script import ScriptDirectory

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
    with read(engine) as conn:
        return current_revision(conn) is not None
