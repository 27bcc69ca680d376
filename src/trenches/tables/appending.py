"""One append to a table made of parts: each part's data files are written on a thread
while the caller makes the next, and all of them committed at once, in the connection's
transaction, as one Iceberg snapshot. A big import then writes its first rows while it
hashes its last, and holds only the parts not yet written.

Files written before a failure or a kill are named by no commit: strays, which
``trenches compact`` removes (as for :meth:`~trenches.tables.catalog.Tables.append`)."""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from sqlalchemy.engine import Connection

from trenches.artifacts import write_error
from trenches.tables import history
from trenches.tables.catalog import TableSpec, outdated

if TYPE_CHECKING:
    from trenches.tables.catalog import Tables

#: Parts being written or waiting to be: more would only hold memory, since one
#: thread writes them.
_QUEUED = 2


class Appending:
    """Parts appended to one table (see the module's notes); a context manager whose
    exit waits for the part being written and drops the rest if :meth:`commit` was not
    reached."""

    def __init__(self, tables: Tables, conn: Connection, spec: TableSpec) -> None:
        self._tables = tables
        self._conn = conn
        self._spec = spec
        self._table: Table | None = None
        self._write_uuid = uuid.uuid4()
        self._counter = itertools.count(0)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="trenches-table-write")
        self._pending: deque[Future[list[DataFile]]] = deque()
        self._files: list[DataFile] = []

    def __enter__(self) -> Appending:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, data: pa.Table) -> None:
        """Write ``data``'s files on the writing thread (after the parts before it)."""
        if data.num_rows == 0:
            return
        table = self._open()
        data = data.cast(table.schema().as_arrow())
        # The files take the properties this commit sets on a table made earlier.
        metadata = table.metadata.model_copy(
            update={"properties": {**table.properties, **outdated(table, self._spec)}}
        )
        while len(self._pending) >= _QUEUED:
            self._files.extend(self._result(self._pending.popleft()))
        self._pending.append(
            self._pool.submit(
                lambda: list(
                    _dataframe_to_data_files(
                        metadata, data, table.io, self._write_uuid, self._counter
                    )
                )
            )
        )

    def commit(self) -> None:
        """Wait for every part's files, then add them all to the table in one snapshot
        of the connection's transaction (nothing without a part written)."""
        while self._pending:
            self._files.extend(self._result(self._pending.popleft()))
        if self._table is None:
            return
        with self._table.transaction() as tx:
            changed = outdated(self._table, self._spec)
            if changed:
                tx.set_properties(changed)
            with tx.update_snapshot().fast_append() as append:
                for file in self._files:
                    append.append_data_file(file)
            history.trim(tx, self._table)

    def _result(self, pending: Future[list[DataFile]]) -> list[DataFile]:
        try:
            return pending.result()
        except OSError as e:
            raise write_error(e, f"the table {self._spec.name} under {self._tables.root}") from None

    def _open(self) -> Table:
        """The table, locked for this transaction; made by its first part."""
        if self._table is None:
            self._table = self._tables.opened(self._conn, self._spec)
        return self._table
