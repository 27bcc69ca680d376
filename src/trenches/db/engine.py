"""Engines per backend, write transactions, bulk inserts, and error translation.

Nothing engine-specific leaks out of this module: callers get a SQLAlchemy
``Engine``, use :func:`write` for every write transaction, and :func:`bulk_insert`
for high-volume rows.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, exc
from sqlalchemy.engine import Connection

from trenches.db import audit
from trenches.db.faults import disk_is_full
from trenches.errors import DiskFull, InvalidInput, StoreBusy, StoreError
from trenches.names import in_int64

#: Seconds a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 60.0


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs that name no driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, busy_timeout: float | None = None) -> Engine:
    """An engine with the settings trenches relies on for ``url``'s backend.

    ``busy_timeout``: seconds a statement waits for a lock (and, on PostgreSQL, for a
    connection) before it fails; by default :data:`BUSY_TIMEOUT_S` on SQLite and no
    limit on PostgreSQL. A background writer that must fail fast and retry later (the
    request log) gives a short one.
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if _in_memory(url):
            # Each connection of the pool would get a database of its own, and all of
            # it would be gone at exit.
            raise StoreError(
                f"{url!r} is an in-memory database, which forgets everything when the "
                "program ends; name a store folder or a .db file"
            )
        timeout = BUSY_TIMEOUT_S if busy_timeout is None else busy_timeout
        engine = create_engine(
            url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            # Pooled: closing the last connection to a WAL database checkpoints it,
            # which would cost a millisecond on every transaction.
            pool_size=5,
            max_overflow=10,
        )
        _configure_sqlite(engine, timeout)
        _writers[engine] = _Writers(timeout)
        _forget_pool_after_fork(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if busy_timeout is not None and url.startswith("postgresql"):
        ms = max(1, int(busy_timeout * 1000))
        connect_args = {
            "connect_timeout": max(1, round(busy_timeout)),
            "options": f"-c lock_timeout={ms}",
        }
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as e:
        hint = (
            "; PostgreSQL needs the postgres extra: pip install 'trenches[postgres]'"
            if url.startswith("postgresql")
            else ""
        )
        raise StoreError(f"cannot use database URL {url!r}: {e}{hint}") from e
    except (exc.ArgumentError, exc.NoSuchModuleError) as e:
        raise StoreError(f"cannot use database URL {url!r}: {e}") from e


def _in_memory(url: str) -> bool:
    rest = url.split("://", 1)[1] if "://" in url else ""
    path = rest[1:].split("?", 1)[0] if rest.startswith("/") else rest.split("?", 1)[0]
    return path in ("", ":memory:") or "mode=memory" in url


def _forget_pool_after_fork(engine: Engine) -> None:
    # A forked child must not use (or close) its parent's connections.
    ref = weakref.ref(engine)

    def _after_fork() -> None:
        e = ref()
        if e is not None:
            e.dispose(close=False)
            writers = _writers.get(e)
            if writers is not None:  # a parent's thread may have held it at the fork
                writers.lock = threading.RLock()

    os.register_at_fork(after_in_child=_after_fork)


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module, so that a write
        # transaction can start with BEGIN IMMEDIATE (see _on_begin).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front: a deferred transaction that reads
        # first and writes later can fail at once with "database is locked", since
        # SQLite cannot wait for a lock upgrade in WAL mode.
        # Straight to the driver: this runs for every transaction.
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get("trenches_write") else "BEGIN"
        )


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


def id_in(dialect: str, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids`` as one bound value, however many ids: SQLite reads a JSON array
    with json_each, PostgreSQL compares with ANY of an array. An expanding IN of
    thousands of bound parameters costs more to build than the query takes to run."""
    from sqlalchemy import BigInteger, any_, bindparam, func, literal_column, select
    from sqlalchemy.dialects.postgresql import ARRAY

    values = [int(i) for i in ids]
    if values and not (in_int64(min(values)) and in_int64(max(values))):
        wrong = next(v for v in values if not in_int64(v))
        raise InvalidInput(f"id {wrong} is out of range: the store's ids are 64-bit integers")
    if dialect == "sqlite":
        import orjson

        array: Any = bindparam(None, orjson.dumps(values).decode())
        return column.in_(select(literal_column("value")).select_from(func.json_each(array)))
    if dialect == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger)))
    return column.in_(values)


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


class _Writers:
    """The writers of one SQLite store in this process, queued on a lock.

    SQLite has one writer at a time. Left to itself, a writer that finds the lock taken
    sleeps and retries (its busy handler: 1 ms, 2 ms, ... up to 100 ms a sleep), so
    under many writers of one process (the team server's threads) the lock stays free
    between sleepers and the slowest wait seconds. Here they wait on a lock that hands
    over at once, first come first served; other processes still meet the busy timeout.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.lock = threading.RLock()  # reentrant: a write inside a write waits as before

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self.lock.acquire(timeout=self.timeout):
            raise StoreBusy(
                f"the database stayed locked for over {self.timeout:g} s by other writers "
                "of this process; try again when they have finished"
            )
        try:
            yield
        finally:
            self.lock.release()


#: The writers' queue of each SQLite engine (none for PostgreSQL, whose rows lock).
_writers: weakref.WeakKeyDictionary[Engine, _Writers] = weakref.WeakKeyDictionary()


@contextmanager
def write(engine: Engine, *, audited: bool = True) -> Iterator[Connection]:
    """One write transaction: committed when the block ends, rolled back if it raises.

    When a change is marked (:func:`trenches.db.audit.change`) and its audit row is not
    written yet, the row goes into this transaction just before it commits. Bookkeeping
    that is no part of any change (a token's last use) passes ``audited=False``.
    """
    writers = _writers.get(engine)
    with (
        writers.turn() if writers is not None else nullcontext(),
        translate_errors(engine),
        engine.connect() as conn,
    ):
        conn.execution_options(trenches_write=True)
        with conn.begin():
            yield conn
            marked = audit.write_pending(conn) if audited else None
        if marked is not None:
            marked.recorded = True  # only now: a failed commit leaves it to the next one


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only connection with one consistent view of the data: on PostgreSQL a
    REPEATABLE READ transaction (every statement sees the moment of the first; a
    read-only one never fails for it), on SQLite its one read snapshot."""
    with translate_errors(engine), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def advisory_lock(conn: Connection, name: str) -> None:
    """Queue behind every other write transaction that takes the lock ``name`` until
    this one ends. SQLite has one writer at a time already (trenches' write
    transactions begin IMMEDIATE); PostgreSQL takes an advisory transaction lock."""
    if conn.dialect.name == "postgresql":
        key = zlib.crc32(f"trenches.{name}".encode())
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")


def try_advisory_lock(conn: Connection, name: str) -> bool:
    """Take the lock ``name`` (see :func:`advisory_lock`) until this transaction ends
    if no other transaction holds it; False, at once, if one does."""
    if conn.dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"trenches.{name}".encode())
    return bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_xact_lock({key})").scalar())


def database_name(engine: Engine) -> str:
    """The SQLite file, or the server URL without its password: what a message names."""
    if engine.dialect.name == "sqlite":
        return str(engine.url.database)
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def translate_errors(engine: Engine | None = None) -> Iterator[None]:
    """Turn driver errors that a user can act on into trenches errors, on one line
    (drivers' messages span several), naming the database when ``engine`` is given."""
    try:
        yield
    except _operational_errors() as e:
        orig = e.orig if isinstance(e, exc.DBAPIError) else e
        text = " ".join(str(orig if orig is not None else e).split())
        if "locked" in text or "busy" in text:
            raise StoreBusy(
                f"the database stayed locked for over {BUSY_TIMEOUT_S:.0f} s by another "
                "process; try again when it has finished"
            ) from e
        database = engine.url.database if engine is not None else None
        if disk_is_full(orig, database):
            where = f"the disk holding {database}" if database else "the database's disk"
            raise DiskFull(
                f"{where} is full ({text}); nothing of this change was written: "
                "free some space and try again"
            ) from e
        where = f" ({database_name(engine)})" if engine is not None else ""
        raise StoreError(f"database error{where}: {text}") from e
    except exc.DatabaseError as e:
        if _nul_in_text(e):
            # PostgreSQL text cannot hold one, not even to look it up: a name or a
            # reason from a user (a team server's request) is refused, not a crash.
            raise InvalidInput(
                "text with a NUL character (\\x00) cannot be stored or looked up; remove it"
            ) from e
        # Only the bare class: its subclasses (IntegrityError, DataError) are refusals
        # of a row that callers handle themselves. SQLite raises this one for a file
        # that is not a database, or one cut short or overwritten.
        if type(e) is not exc.DatabaseError:
            raise
        where = database_name(engine) if engine is not None else "the database"
        text = _one_line(e)
        if "not a database" in text:
            raise StoreError(f"{where} is not a trenches store: {text}") from e
        if "malformed" in text or "corrupt" in text:
            raise StoreError(
                f"{where} is damaged ({text}); restore it from a backup (trenches restore)"
            ) from e
        raise StoreError(f"database error ({where}): {text}") from e


def _nul_in_text(e: exc.DatabaseError) -> bool:
    """psycopg's refusal of a NUL character in a text parameter."""
    return isinstance(e, exc.DataError) and "NUL (0x00)" in _one_line(e)


def _one_line(e: exc.DBAPIError) -> str:
    return " ".join(str(e.orig if e.orig is not None else e).split())


def _operational_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's OperationalError, and the drivers' own: the bulk paths run on the
    driver's cursor, whose errors SQLAlchemy does not wrap."""
    found: list[type[Exception]] = [exc.OperationalError, sqlite3.OperationalError]
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        found.append(psycopg.OperationalError)
    return tuple(found)


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


def insert_ignore_many(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    key: Sequence[str],
) -> None:
    """Insert many rows (tuples in ``columns`` order), skipping each whose ``key``
    matches a stored row: loading the same rows twice stores them once. SQLite and
    PostgreSQL share the ``ON CONFLICT ... DO NOTHING`` syntax."""
    if not rows:
        return
    if conn.dialect.name not in ("sqlite", "postgresql"):
        for row in rows:
            insert_ignore(conn, table, dict(zip(columns, row, strict=True)))
        return
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, [tuple(r) for r in rows])
    finally:
        cursor.close()


def execute_raw(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement on the driver's cursor, for hot paths where building a
    SQLAlchemy statement costs more than running it. ``sql`` uses ``?`` placeholders.
    Returns the cursor (``lastrowid`` on SQLite, ``fetchone()`` after RETURNING)."""
    cursor = conn.connection.cursor()
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    cursor.execute(sql, tuple(params))
    return cursor


def insert_returning_id(conn: Connection, table: Table, values: Mapping[str, Any]) -> int:
    """Insert one row and return its generated ``id``, on the driver's cursor."""
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
    if conn.dialect.name == "sqlite":
        return int(execute_raw(conn, sql, list(values.values())).lastrowid)
    if conn.dialect.name == "postgresql":
        return int(execute_raw(conn, sql + " RETURNING id", list(values.values())).fetchone()[0])
    return int(conn.execute(table.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]


def upsert_latest(conn: Connection, table: Table, rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``(run_id, key, step, value, logged_at)`` rows, replacing the row with the
    same (run_id, key) only by a higher or equal step. SQLite and PostgreSQL share the
    ``ON CONFLICT`` syntax."""
    if not rows:
        return
    sql = (
        f"INSERT INTO {table.name} (run_id, key, step, value, logged_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, key) DO UPDATE SET step = excluded.step, "
        "value = excluded.value, logged_at = excluded.logged_at "
        f"WHERE excluded.step >= {table.name}.step"
    )
    cursor = conn.connection.cursor()
    if conn.dialect.name == "postgresql":
        sql = sql.replace("?", "%s")
    cursor.executemany(sql, [tuple(r) for r in rows])


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


#: Byte ranges asked of one stored value in one query (PostgreSQL).
_RANGES_PER_QUERY = 400


def blob_ranges(
    conn: Connection, column: Any, row_id: int, ranges: Sequence[tuple[int, int]]
) -> list[bytes] | None:
    """The bytes ``[start, start + length)`` of each of ``ranges`` of the binary value in
    ``column`` (of a table whose primary key ``id`` is ``row_id``); None when the value
    is null. SQLite reads only the pages that hold them (incremental blob I/O), where
    ``substr`` would load the whole value once per range."""
    table = column.table
    if conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)
        try:
            blob = raw.blobopen(table.name, column.name, row_id, readonly=True)
        except sqlite3.OperationalError:  # a null value has no bytes to open
            return None
        with blob:
            out = []
            for start, length in ranges:
                blob.seek(start)
                out.append(blob.read(length))
            return out
    from sqlalchemy import func, select

    found: list[bytes] = []
    for at in range(0, len(ranges), _RANGES_PER_QUERY):
        part = ranges[at : at + _RANGES_PER_QUERY]
        row = conn.execute(
            select(*(func.substr(column, start + 1, length) for start, length in part)).where(
                table.c.id == row_id
            )
        ).one()
        if row[0] is None:
            return None
        found += [bytes(x) for x in row]
    return found
