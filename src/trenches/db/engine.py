"""Engines per backend, write transactions, bulk inserts, and error translation.

Nothing engine-specific leaks out of this module: callers get a SQLAlchemy
``Engine``, use :func:`write` for every write transaction, and :func:`bulk_insert`
for high-volume rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, exc
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from trenches.errors import StoreBusy, StoreError

#: Seconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 60.0


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the settings trenches relies on for ``url``'s backend."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
            # One connection per checkout: SQLite connections are cheap, and a
            # pooled connection must never carry a lock across processes after fork.
            poolclass=NullPool,
        )
        _configure_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
        raise StoreError(f"cannot use database URL {url!r}: {e}") from e


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module, so that a write
        # transaction can start with BEGIN IMMEDIATE (see _on_begin).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads
        # first and writes later can fail at once with "database is locked", since
        # SQLite cannot wait for a lock upgrade in WAL mode.
        if conn.get_execution_options().get("trenches_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def lock_patterns(conn: Connection, *, for_snapshot: bool = False) -> None:
    """Order this transaction with every other writer of patterns.

    A snapshot is rebuilt from timestamps, so a pattern write must never commit with a
    time (or an id) that an already-taken snapshot would count. Writers therefore take
    their times inside the transaction, after this lock: on SQLite ``BEGIN IMMEDIATE``
    already serialises writers; on PostgreSQL pattern writers take a self-excluding
    lock, and a snapshot a lock that waits for writers in flight.
    """
    if conn.dialect.name == "postgresql":
        mode = "SHARE" if for_snapshot else "SHARE ROW EXCLUSIVE"
        conn.exec_driver_sql(f"LOCK TABLE patterns IN {mode} MODE")


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises."""
    with translate_errors(), engine.connect() as conn:
        conn.execution_options(trenches_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only connection with one consistent view of the data."""
    with translate_errors(), engine.connect() as conn, conn.begin():
        yield conn


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver errors that a user can act on into trenches errors."""
    try:
        yield
    except exc.OperationalError as e:
        text = str(e.orig) if e.orig is not None else str(e)
        if "locked" in text or "busy" in text:
            raise StoreBusy(
                f"the database stayed locked for over {BUSY_TIMEOUT_S:.0f} s by another "
                "process; try again when it has finished"
            ) from e
        raise StoreError(f"database error: {text}") from e


def insert_ignore(conn: Connection, table: Table, values: dict[str, Any]) -> None:
    """Insert a row unless one with the same key exists (no error, no change)."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    elif conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    else:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
        except exc.IntegrityError:
            pass


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


#: Rows per INSERT statement on SQLite: one statement for many rows saves a round of
#: statement stepping per row; 100 rows of a wide table stay well under SQLite's
#: 32,766 bound parameters.
_SQLITE_ROWS_PER_STATEMENT = 100


def _sqlite_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    constants: Mapping[str, Any],
) -> None:
    names = [*columns, *constants]
    one = "(" + ", ".join(["?"] * len(columns) + [_literal(v) for v in constants.values()]) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
    per = max(1, min(_SQLITE_ROWS_PER_STATEMENT, 30_000 // max(1, len(columns))))
    materialised = rows if isinstance(rows, list) else list(rows)
    full = len(materialised) - len(materialised) % per
    cursor = conn.connection.cursor()
    try:
        if full:
            flat = [v for row in materialised[:full] for v in row]
            width = per * len(columns)
            groups = [flat[i : i + width] for i in range(0, len(flat), width)]
            cursor.executemany(head + ", ".join([one] * per), groups)
        if full < len(materialised):
            cursor.executemany(head + one, materialised[full:])
    finally:
        cursor.close()


def bulk_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Insert many rows (tuples in ``columns`` order) inside ``conn``'s transaction.

    ``constants`` are values shared by every row (ints, strings or None). SQLite gets
    one prepared ``executemany`` with the constants written into the statement, so
    that each row binds only its own values; PostgreSQL gets ``COPY``; other backends
    get SQLAlchemy's own ``executemany``.
    """
    constants = dict(constants or {})
    dialect = conn.dialect.name
    if dialect == "sqlite":
        _sqlite_insert(conn, table, columns, rows, constants)
        return
    extra = tuple(constants.values())
    names = [*columns, *constants]
    if dialect == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        sql = f"COPY {table.name} ({', '.join(names)}) FROM STDIN"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row((*row, *extra))
    else:
        conn.execute(
            table.insert(), [dict(zip(names, (*row, *extra), strict=True)) for row in rows]
        )
