"""What a driver's error means: whether the database's disk is full (every write
reports it as ``DiskFull``), and whose fault a failed write is: the database's (locked,
unreachable, its disk full), which retrying mends, or the row's (a constraint, a value
its column cannot hold), which it never does.

Writers that must not lose rows nor stall on one (the request log) retry the first
and set the second aside. The driver's own error is looked for under SQLAlchemy's and
trenches' wrappers; SQLite's result codes and PostgreSQL's SQLSTATEs say which it is.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from sqlalchemy import exc

from trenches.errors import StoreBusy

Fault = Literal["away", "row", "unsure"]

#: Free bytes below which a disk that fails a write is taken to be full.
_NEARLY_FULL = 1 << 20

#: SQLite's primary result codes that say the database or its disk is away: busy,
#: locked, out of memory, read-only, I/O error, corrupt, full, cannot open, locking
#: protocol, not a database.
_AWAY_SQLITE = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})
#: PostgreSQL SQLSTATE classes (and one code) that say the same: transaction rollback
#: (deadlock), connection exception, insufficient resources (disk full), object in
#: use / lock not available, operator intervention (shutdown, statement timeout),
#: system error.
_AWAY_SQLSTATE = ("08", "40", "53", "55", "57", "58")


def _causes(e: BaseException) -> Iterator[BaseException]:
    """``e`` and what it wraps: the driver's error under SQLAlchemy's and ours."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [e]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack += [getattr(x, "orig", None), x.__context__, x.__cause__]


def _named(e: BaseException, *names: str) -> bool:
    # DB-API drivers all name their exception classes the same.
    return any(c.__name__ in names for c in type(e).__mro__)


def _away(e: BaseException) -> bool:
    """The database or its disk is away (locked, unreachable, full): no row's fault."""
    if isinstance(e, OSError | StoreBusy | exc.DisconnectionError | exc.TimeoutError):
        return True
    if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _AWAY_SQLITE
    if type(e).__module__.startswith("psycopg"):
        state = getattr(e, "sqlstate", None)
        if not state:  # no answer from the server at all
            return _named(e, "OperationalError", "InterfaceError")
        return str(state).startswith(_AWAY_SQLSTATE)
    return False


def _about_a_value(e: BaseException) -> bool:
    """A constraint the row breaks, or a value its column cannot hold."""
    return isinstance(e, OverflowError) or _named(e, "IntegrityError", "DataError")


def whose(e: BaseException) -> Fault:
    """Whose fault a failed write is: ``"away"`` (the database's or its disk's: locked,
    unreachable, full; retry for as long as it takes), ``"row"`` (a constraint the row
    breaks, a value its column cannot hold; retrying cannot help) or ``"unsure"``
    (anything else: the row's or the database's, only retrying tells)."""
    causes = list(_causes(e))
    if any(_away(c) for c in causes):
        return "away"
    if any(_about_a_value(c) for c in causes):
        return "row"
    return "unsure"


def disk_is_full(error: BaseException | None, database: str | None = None) -> bool:
    """Whether a driver error means the database's disk is full: SQLite says so
    (SQLITE_FULL), or fails to write (an I/O error, as when it cannot grow its shared
    memory file) with the disk holding ``database`` full; PostgreSQL's disk_full."""
    if getattr(error, "sqlstate", None) == "53100":
        return True
    name = getattr(error, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        return True
    if not name.startswith("SQLITE_IOERR") or not database or database == ":memory:":
        return False
    try:
        return shutil.disk_usage(Path(database).parent).free < _NEARLY_FULL
    except OSError:
        return False


def reason(e: BaseException) -> str:
    """What a user reads about a refused write: the driver's message, named."""
    cause = getattr(e, "orig", None) or e
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__
