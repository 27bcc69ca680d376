"""The store's bulk facts as Apache Iceberg tables: Parquet files under the artifacts
location, their catalog in the store's database (:mod:`trenches.tables.catalog`).

pyiceberg takes most of a second to import, so a store binds only the location of its
tables when it opens; the catalog is loaded by the first command that reads or writes
a table."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from trenches.tables.catalog import Tables


@dataclass(frozen=True)
class TableCompaction:
    """What ``trenches compact`` did to one table."""

    table: str
    files_before: int
    files_after: int
    partitions_merged: int
    snapshots_expired: int
    files_removed: int
    bytes_removed: int


#: The artifacts location of each store's engine, bound when the store opens, and its
#: tables once loaded.
_roots: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_tables: weakref.WeakKeyDictionary[Engine, Tables] = weakref.WeakKeyDictionary()


def bind(engine: Engine, root: str) -> None:
    """Give the store's engine the location of its tables (its artifacts location):
    code that holds a connection reaches them by :func:`of`."""
    _roots[engine] = root
    _tables.pop(engine, None)


def of(conn: Connection) -> Tables:
    """The tables of the store the connection is to."""
    engine = conn.engine
    tables = _tables.get(engine)
    if tables is None:
        root = _roots.get(engine)
        if root is None:
            raise RuntimeError("this database is not bound to a store's tables")
        from trenches.tables.catalog import Tables

        tables = _tables[engine] = Tables(root)
    return tables
