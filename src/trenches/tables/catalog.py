"""The store's Iceberg tables: pyiceberg's SQL catalog in the store's own database,
committing on the connection of the trenches transaction that writes.

An Iceberg commit writes its data files, manifests and metadata file first, then moves
the table's pointer (one row of ``iceberg_tables``) to the new metadata file. Here that
row is written on the connection of the trenches write transaction in progress, so the
table's new rows become visible when the SQL rows written beside them do, and not
before: a transaction that fails or is killed leaves the pointer where it was and its
files unreferenced (``trenches compact`` removes them). A reader reads the pointer in
its own transaction, so what it sees of the tables and of the SQL rows is one moment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FSSpecHandler, PyFileSystem
from pyiceberg.catalog import MetastoreCatalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.io import PY_IO_IMPL
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from sqlalchemy.engine import Connection

from trenches.artifacts import write_error
from trenches.db.engine import advisory_lock, try_advisory_lock
from trenches.tables import history, pruning
from trenches.tables.io import PREFIX, ROOT, file_system, is_local, relative
from trenches.tables.pruning import Bound

#: The catalog's name in ``iceberg_tables``, and the one namespace of a store's tables.
CATALOG = "trenches"
NAMESPACE = "trenches"

#: Every table's properties: appends merge small manifests as they go, so that planning
#: a scan reads a handful of manifests, not one per commit; row groups of 64K rows, so
#: that a read of a few rows (a page of the web UI) skips the others by their bounds; a
#: column's dictionary given up at 64 KB, not 2 MB: a column of numbers that hardly
#: repeat (most inputs) was written twice over its first 2 MB, once as the dictionary,
#: which made files a fifth larger and their writing three times as long, while the
#: columns that do repeat (labels, splits, sources, answers) fit in far less.
PROPERTIES = {
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "32",
    "write.parquet.row-group-limit": "65536",
    "write.parquet.compression-codec": "zstd",
    "write.parquet.compression-level": "1",
    "write.parquet.dict-size-bytes": "65536",
}


#: Scan plans, and data files' footers, remembered per store (oldest forgotten first).
_PLANS_KEPT = 1024


@dataclass(frozen=True)
class TableSpec:
    """What a table is made of: its name in the store's namespace, its schema and its
    partitioning."""

    name: str
    schema: Schema
    partition: PartitionSpec = UNPARTITIONED_PARTITION_SPEC
    properties: dict[str, str] = field(default_factory=dict)


class JoinedCatalog(SqlCatalog):
    """pyiceberg's SQL catalog on an open connection: its commits join the connection's
    transaction (a Session bound to a Connection in a transaction neither commits nor
    ends it), so they last only if the transaction commits."""

    def __init__(self, conn: Connection, root: str) -> None:
        MetastoreCatalog.__init__(
            self, CATALOG, **{PY_IO_IMPL: "trenches.tables.io.StoreIO", ROOT: root}
        )
        self.engine = conn  # type: ignore[assignment]

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        location = orm_table.metadata_location
        if not location:
            return super()._convert_orm_to_iceberg(orm_table)
        metadata = _metadata(self.properties[ROOT], location)
        return Table(
            identifier=(orm_table.table_namespace, orm_table.table_name),
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(metadata.properties, location),
            catalog=self,
        )

    def close(self) -> None:  # the connection is its transaction's, not the catalog's
        pass


def outdated(table: Table, spec: TableSpec) -> dict[str, str]:
    """The properties a table made by an earlier release lacks (or has otherwise),
    with their values of today: for the next commit that writes files to set."""
    wanted = {**PROPERTIES, **spec.properties}
    return {k: v for k, v in wanted.items() if table.properties.get(k) != v}


@lru_cache(maxsize=256)
def _metadata(root: str, location: str) -> TableMetadata:
    """A metadata file, read once: it is never rewritten (each commit writes a new
    one), so its content is a function of its location."""
    from trenches.tables.io import StoreIO

    return FromInputFile.table_metadata(StoreIO({ROOT: root}).new_input(location))


class Tables:
    """The Iceberg tables of one store: their files under ``root`` (the artifacts
    location), their catalog rows in the store's database."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs = file_system(root)
        self._local = is_local(self.fs.fs)
        self._arrow_fs = None if self._local else PyFileSystem(FSSpecHandler(self.fs))
        self._plans: dict[tuple[str, int | None, str], list[tuple[str, int, int]]] = {}
        self._footers: dict[str, pq.FileMetaData] = {}
        self._plans_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Tables {self.root}>"

    def catalog(self, conn: Connection) -> JoinedCatalog:
        return JoinedCatalog(conn, self.root)

    def load(self, conn: Connection, name: str) -> Table | None:
        """The table as the connection's transaction sees it; None before its first
        rows were committed."""
        try:
            return self.catalog(conn).load_table((NAMESPACE, name))
        except NoSuchTableError:
            return None

    def version(self, conn: Connection, name: str) -> str | None:
        """Which commit of the table the connection's transaction sees: its metadata
        file's location (each commit writes a new one; None before the first). One
        indexed select, for keys of what was read from the table."""
        from sqlalchemy import select

        row = IcebergTables
        return conn.execute(
            select(row.metadata_location).where(
                row.catalog_name == CATALOG,
                row.table_namespace == NAMESPACE,
                row.table_name == name,
            )
        ).scalar()

    def append(self, conn: Connection, spec: TableSpec, data: pa.Table) -> None:
        """Append ``data`` to the table in the connection's write transaction (made
        with its first rows). Appends to one table queue behind each other until the
        transaction ends: each builds on the table as the last committed one left it."""
        if data.num_rows == 0:
            return
        try:
            self._append(conn, spec, data)
        except OSError as e:
            # Files it wrote before the error are named by no commit: strays, which
            # ``trenches compact`` removes.
            raise write_error(e, f"the table {spec.name} under {self.root}") from None

    def opened(self, conn: Connection, spec: TableSpec) -> Table:
        """The table, locked for the connection's transaction (see :func:`lock`);
        made now if it was not."""
        lock(conn, spec.name)
        table = self.load(conn, spec.name)
        if table is None:
            table = self.catalog(conn).create_table(
                (NAMESPACE, spec.name),
                schema=spec.schema,
                location=f"{PREFIX}tables/{spec.name}",
                partition_spec=spec.partition,
                properties={**PROPERTIES, **spec.properties},
            )
        return table

    def _append(self, conn: Connection, spec: TableSpec, data: pa.Table) -> None:
        table = self.opened(conn, spec)
        # The table's schema as made: Iceberg numbered its fields afresh, and the
        # columns are written by those numbers.
        data = data.cast(table.schema().as_arrow())
        with table.transaction() as tx:
            # A table made by an earlier release takes today's properties with the
            # rows that are written by them, in one commit.
            changed = outdated(table, spec)
            if changed:
                tx.set_properties(changed)
            tx.append(data)
            history.trim(tx, table)

    def write_files(self, conn: Connection, spec: TableSpec, data: pa.Table) -> list[Any]:
        """Write ``data`` as data files of the table (which exists), committing nothing:
        a Dask worker's part, which the client commits with :meth:`commit_files`. Its
        pyiceberg ``DataFile`` entries (plain records: they travel back pickled). Files
        never committed are strays, which ``trenches compact`` removes once old."""
        # pyiceberg's own writer, as Table.append uses it; its append takes the files
        # it wrote, not files written elsewhere (add_files refuses files with field ids).
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        table = self.load(conn, spec.name)
        if table is None:
            raise RuntimeError(f"the table {spec.name} is made before its files are written")
        try:
            return list(
                _dataframe_to_data_files(
                    table.metadata, data.cast(table.schema().as_arrow()), table.io
                )
            )
        except OSError as e:
            raise write_error(e, f"the table {spec.name} under {self.root}") from None

    def commit_files(self, conn: Connection, spec: TableSpec, files: Sequence[Any]) -> None:
        """Commit data files :meth:`write_files` wrote (elsewhere, perhaps) in the
        connection's write transaction, as :meth:`append` commits its own."""
        # Written by other processes, perhaps: a listing of their folder kept here (of
        # S3, by fsspec: ``trenches compact`` makes one) knows them not.
        self.fs.fs.invalidate_cache()
        table = self.opened(conn, spec)
        with table.transaction() as tx:
            changed = outdated(table, spec)
            if changed:
                tx.set_properties(changed)
            snapshot = tx.update_snapshot()
            merged = {**table.properties, **changed}.get("commit.manifest-merge.enabled") == "true"
            with snapshot.merge_append() if merged else snapshot.fast_append() as append:
                for file in files:
                    append.append_data_file(file)
            history.trim(tx, table)

    def files(
        self,
        conn: Connection,
        name: str,
        row_filter: BooleanExpression | None = None,
        *,
        snapshot_id: int | None = None,
        order_by: str | None = None,
    ) -> list[str]:
        """The data files of the table (as of ``snapshot_id``) that may hold rows
        matching ``row_filter``: partitions and column bounds pruned by pyiceberg;
        with ``order_by`` (a whole-number column), by the least value each holds."""
        planned = self._planned(conn, name, row_filter, snapshot_id, order_by)
        return [path for path, _, _ in planned]

    def spans(
        self, conn: Connection, name: str, row_filter: BooleanExpression | None, column: str
    ) -> list[tuple[str, int, int]]:
        """:meth:`files` ordered by ``column`` (a whole-number column), each with the
        least and the most value of it that the file holds (from the manifests: no file
        is opened)."""
        return self._planned(conn, name, row_filter, None, column)

    def _planned(
        self,
        conn: Connection,
        name: str,
        row_filter: BooleanExpression | None,
        snapshot_id: int | None,
        order_by: str | None,
    ) -> list[tuple[str, int, int]]:
        table = self.load(conn, name)
        if table is None:
            return []
        # A metadata file never changes, so neither does a plan over it.
        key = (table.metadata_location, snapshot_id, repr(row_filter) + f"|{order_by}")
        planned = self._plans.get(key)
        if planned is None:
            scan = table.scan(row_filter=row_filter or AlwaysTrue(), snapshot_id=snapshot_id)
            tasks = list(scan.plan_files())
            field_id = None if order_by is None else table.schema().find_field(order_by).field_id
            planned = [
                (
                    task.file.file_path,
                    _least(None if field_id is None else task.file.lower_bounds.get(field_id)),
                    _most(None if field_id is None else task.file.upper_bounds.get(field_id)),
                )
                for task in tasks
            ]
            if order_by is not None:
                planned.sort(key=lambda span: span[1])
            with self._plans_lock:  # readers on several threads share the plans
                if len(self._plans) >= _PLANS_KEPT:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = planned
        return list(planned)

    def partitions(
        self, conn: Connection, name: str, column: str
    ) -> dict[Any, list[tuple[str, int, int]]]:
        """The data files of a table partitioned by one column, by partition value,
        each with the least and the most value of ``column`` (a whole-number column)
        it holds: one plan of the whole table per commit, where a plan per partition
        (a backfill reads each of 500 versions' predictions) costs a manifest walk each."""
        table = self.load(conn, name)
        if table is None:
            return {}
        key = (table.metadata_location, None, f"partitions|{column}")
        planned = self._plans.get(key)
        if planned is None:
            field_id = table.schema().find_field(column).field_id
            grouped: dict[Any, list[tuple[str, int, int]]] = {}
            for task in table.scan().plan_files():
                grouped.setdefault(task.file.partition[0], []).append(
                    (
                        task.file.file_path,
                        _least(task.file.lower_bounds.get(field_id)),
                        _most(task.file.upper_bounds.get(field_id)),
                    )
                )
            planned = cast(Any, grouped)
            with self._plans_lock:
                if len(self._plans) >= _PLANS_KEPT:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = planned
        return cast(dict[Any, list[tuple[str, int, int]]], planned)

    def count(self, conn: Connection, name: str, row_filter: BooleanExpression) -> int:
        """How many rows of the table match ``row_filter``, from the manifests alone: a
        filter on partition columns only (the tables are append-only: no deletes)."""
        table = self.load(conn, name)
        if table is None:
            return 0
        scan = table.scan(row_filter=row_filter)
        return sum(task.file.record_count for task in scan.plan_files())

    def read(
        self,
        files: Sequence[str],
        *,
        columns: Sequence[str] | None = None,
        filters: Any = None,
        schema: pa.Schema | None = None,
        dictionary: Sequence[str] = (),
        bounds: Sequence[Bound] = (),
    ) -> pa.Table:
        """The rows of ``files`` (as :meth:`files` names them), read by pyarrow with
        column pruning and ``filters`` (a pyarrow expression or DNF list); the string
        columns named in ``dictionary`` come back dictionary-encoded (a few distinct
        values: read and reordered as small integers). ``bounds`` keep only the rows
        within them, reading only the row groups that may hold some (see
        :mod:`trenches.tables.pruning`)."""
        if bounds:
            return self._read_bounded(files, columns, filters, dictionary, bounds, schema)
        parts = [
            pq.read_table(
                self.path(f),
                columns=list(columns) if columns is not None else None,
                filters=filters,
                filesystem=self._arrow_fs,
                read_dictionary=list(dictionary) or None,
            )
            for f in files
        ]
        if not parts:
            if schema is None:
                raise ValueError("an empty read needs the schema of its result")
            fields = [schema.field(c) for c in columns] if columns is not None else schema
            return pa.Table.from_batches([], schema=pa.schema(fields))
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def _read_bounded(
        self,
        files: Sequence[str],
        columns: Sequence[str] | None,
        filters: Any,
        dictionary: Sequence[str],
        bounds: Sequence[Bound],
        schema: pa.Schema | None,
    ) -> pa.Table:
        """:meth:`read` with ``bounds``: each file's row groups chosen by their
        statistics, and filtered only where they may hold rows out of bounds."""
        extra = [] if columns is None else [b.column for b in bounds if b.column not in columns]
        parts = list(
            self.batches(
                files, columns=columns, bounds=bounds, filters=filters, dictionary=dictionary
            )
        )
        if not parts:
            return self.read([], columns=columns, schema=schema)
        data = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        return data.drop_columns(list(dict.fromkeys(extra))) if extra else data

    def batches(
        self,
        files: Sequence[str],
        *,
        columns: Sequence[str] | None,
        bounds: Sequence[Bound],
        filters: Any = None,
        dictionary: Sequence[str] = (),
        rows: int | None = None,
    ) -> Iterator[pa.Table]:
        """The rows of ``files`` within ``bounds`` (and ``filters``), file by file and,
        with ``rows``, a few row groups of about that many rows at a time: so that a
        reader may copy them where they go and let Arrow reuse their memory. Each
        batch holds ``columns`` and the bounds' columns; an empty read yields one
        empty batch, for its schema."""
        bounds = [b.narrowed() for b in bounds]
        extra = [] if columns is None else [b.column for b in bounds if b.column not in columns]
        wanted = None if columns is None else [*columns, *dict.fromkeys(extra)]
        given = False
        empty: pa.Table | None = None
        for f in files:
            opened = pq.ParquetFile(
                self.path(f), filesystem=self._arrow_fs, read_dictionary=list(dictionary) or None
            )
            groups, whole = pruning.row_groups(opened.metadata, bounds)
            if not groups:
                empty = empty or opened.read_row_groups([], columns=wanted)
                continue
            for run, inside in _runs(opened.metadata, groups, whole, rows):
                if inside:
                    part = opened.read_row_groups(run, columns=wanted)
                else:
                    found = _read_within(opened, run, wanted, bounds)
                    if found is None:  # none of its rows within the bounds
                        empty = empty or opened.read_row_groups([], columns=wanted)
                        continue
                    part = found
                if filters is not None:
                    part = part.filter(filters)
                given = True
                yield part
        if not given and empty is not None:
            yield empty

    def metadata(self, file: str) -> pq.FileMetaData:
        """One data file's Parquet footer, read once per store (a data file is
        written once under a name of its own, and never changed)."""
        found = self._footers.get(file)
        if found is None:
            found = self.footer(file)
            with self._plans_lock:
                if len(self._footers) >= _PLANS_KEPT:
                    self._footers.pop(next(iter(self._footers)))
                self._footers[file] = found
        return found

    def parquet(self, file: str) -> pq.ParquetFile:
        """One data file (as :meth:`files` names it), opened with its footer as
        :meth:`metadata` keeps it: its row groups read on demand."""
        return pq.ParquetFile(
            self.path(file), filesystem=self._arrow_fs, metadata=self.metadata(file)
        )

    def footer(self, file: str) -> pq.FileMetaData:
        """One file's Parquet footer: its row groups, their bounds and encodings."""
        return pq.ParquetFile(self.path(file), filesystem=self._arrow_fs).metadata

    def file_schema(self, file: str) -> pa.Schema:
        """The Arrow schema of one file, from its footer."""
        return self.footer(file).schema.to_arrow_schema()

    def rows_in(self, files: Sequence[str]) -> int:
        """How many rows the files hold, from their Parquet footers."""
        return sum(self.footer(f).num_rows for f in files)

    def reachable(self, metadata_locations: Sequence[str]) -> list[str]:
        """Every file the tables at these metadata files need, in every snapshot they
        keep: the metadata files, manifest lists, manifests and data files, each once
        (as ``trenches:///`` locations)."""
        from trenches.tables.io import StoreIO

        io = StoreIO({ROOT: self.root})
        found: dict[str, None] = {}
        seen_manifests: set[str] = set()
        for location in metadata_locations:
            found[location] = None
            metadata = _metadata(self.root, location)
            for snapshot in metadata.snapshots:
                if snapshot.manifest_list in found:
                    continue  # met in an earlier metadata file
                found[snapshot.manifest_list] = None
                for manifest in snapshot.manifests(io):
                    if manifest.manifest_path in seen_manifests:
                        continue
                    seen_manifests.add(manifest.manifest_path)
                    found[manifest.manifest_path] = None
                    for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                        found[entry.data_file.file_path] = None
        return list(found)

    def path(self, location: str) -> str:
        """Where pyarrow finds a ``trenches:///`` file: a local path, or one relative
        to the store's file system."""
        rel = relative(location)
        if self._local:
            return os.path.join(self.fs.path, rel)
        return rel


def _read_within(
    opened: pq.ParquetFile, run: list[int], columns: list[str] | None, bounds: Sequence[Bound]
) -> pa.Table | None:
    """The rows of the row groups ``run`` within ``bounds``, or None when there are
    none. The bounds' columns are read first, and the others only when some row is
    within them: a row group's bounds say only that it may hold wanted rows (the rows
    of one split of a file span its ids, so a read of another split's ids reaches
    each of its row groups), and its inputs are most of what it holds."""
    keys = list(dict.fromkeys(b.column for b in bounds))
    if columns is None or set(columns) <= set(keys):
        part = opened.read_row_groups(run, columns=columns)
        return pruning.filtered(part, bounds)
    narrow = opened.read_row_groups(run, columns=keys)
    mask = pruning.mask(narrow, bounds)
    if mask is not None and not mask.any():
        return None
    rest = opened.read_row_groups(run, columns=[c for c in columns if c not in keys])
    of = [narrow if c in keys else rest for c in columns]
    part = pa.Table.from_arrays(
        [t.column(c) for t, c in zip(of, columns, strict=True)],
        schema=pa.schema([t.schema.field(c) for t, c in zip(of, columns, strict=True)]),
    )
    return part if mask is None else part.filter(pa.array(mask))


def _runs(
    metadata: pq.FileMetaData, groups: list[int], whole: list[bool], rows: int | None
) -> Iterator[tuple[list[int], bool]]:
    """The chosen row groups of a file in runs of about ``rows`` rows (None: one run),
    each with whether every group of it is wholly within the read's bounds."""
    if rows is None:
        yield groups, all(whole)
        return
    run: list[int] = []
    inside, size = True, 0
    for group, in_bounds in zip(groups, whole, strict=True):
        run.append(group)
        inside = inside and in_bounds
        size += metadata.row_group(group).num_rows
        if size >= rows:
            yield run, inside
            run, inside, size = [], True, 0
    if run:
        yield run, inside


def _least(bound: bytes | None) -> int:
    """A long or int column's lower bound in a manifest (Iceberg's single-value
    serialisation: little-endian), or the least long when the file has none."""
    if bound is None:
        return -(2**63)
    return int.from_bytes(bound, "little", signed=True)


def _most(bound: bytes | None) -> int:
    """A long or int column's upper bound in a manifest, or the most long when the
    file has none."""
    if bound is None:
        return 2**63 - 1
    return int.from_bytes(bound, "little", signed=True)


def lock(conn: Connection, name: str) -> None:
    """Queue behind the other writers of the table until this transaction ends."""
    advisory_lock(conn, f"tables.{name}")


def try_lock(conn: Connection, name: str) -> bool:
    """Take the table's lock (see :func:`lock`) if no other writer holds it; False, at
    once, if one does."""
    return try_advisory_lock(conn, f"tables.{name}")
