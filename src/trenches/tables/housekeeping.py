"""Housekeeping of the store's Iceberg tables (``trenches compact``): small files
merged, old Iceberg snapshots expired, and files no kept snapshot needs removed.

Each step is safe beside other writers and readers:

- A merge rewrites one partition in one write transaction, after taking the table's
  writer lock: no append can land between reading the partition and replacing it.
- An Iceberg snapshot is expired only once the snapshot that replaced it was made
  before ``before_us`` (by default three days ago): a reader that loaded the table
  since still finds its files.
- A file is removed only when no kept snapshot reaches it and it was written before
  ``before_us``: a writer still on its way to its commit (its files are written first)
  does not lose them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression
from pyiceberg.transforms import IdentityTransform
from sqlalchemy import Engine

from trenches.db.engine import read, write
from trenches.tables import TableCompaction, history
from trenches.tables.catalog import NAMESPACE, Tables, TableSpec, lock, outdated
from trenches.tables.filters import equal
from trenches.tables.io import PREFIX

#: A partition whose files add up to more than this is not merged (it is read whole).
MERGE_BYTES = 256 * 1024 * 1024


def names(engine: Engine) -> list[str]:
    """The tables the store has."""
    from trenches.db import schema as t

    c = t.iceberg_tables.c
    with read(engine) as conn:
        return list(
            conn.execute(
                t.iceberg_tables.select()
                .with_only_columns(c.table_name)
                .where(c.table_namespace == NAMESPACE)
                .order_by(c.table_name)
            ).scalars()
        )


def compact(
    engine: Engine,
    tables: Tables,
    name: str,
    spec: TableSpec | None,
    *,
    before_us: int,
    sort_by: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
) -> TableCompaction:
    """Merge the table's small files, partition by partition (when its ``spec`` is
    known), then expire what is no longer needed and remove what nobody reaches (see
    the module's notes)."""
    say = progress or (lambda _: None)
    cutoff_ms = before_us // 1000
    before = _data_files(engine, tables, name)
    merged = 0
    for key in [] if spec is None else _partitions_to_merge(before, spec):
        assert spec is not None
        with write(engine) as conn:
            lock(conn, spec.name)
            table = tables.load(conn, spec.name)
            assert table is not None
            row_filter = _partition_filter(spec, key)
            files = tables.files(conn, spec.name, row_filter)
            if len(files) < 2:
                continue
            rows = tables.read(files)
            if sort_by:
                rows = rows.sort_by([(c, "ascending") for c in sort_by])
            rows = rows.cast(table.schema().as_arrow())
            with table.transaction() as tx:
                changed = outdated(table, spec)
                if changed:
                    tx.set_properties(changed)
                tx.overwrite(rows, overwrite_filter=row_filter)
            merged += 1
            say(f"{spec.name}: merged {len(files)} files of partition {dict(key)}")
    expired = _expire(engine, tables, name, cutoff_ms)
    if expired:
        say(f"{name}: expired {expired} Iceberg snapshots")
    removed, size = _remove_unreached(engine, tables, name, cutoff_ms)
    if removed:
        say(f"{name}: removed {removed} files no kept snapshot needs ({size:,} bytes)")
    after = _data_files(engine, tables, name)
    return TableCompaction(name, len(before), len(after), merged, expired, removed, size)


def remove_strays(
    engine: Engine,
    tables: Tables,
    *,
    before_us: int,
    progress: Callable[[str], None] | None = None,
) -> list[TableCompaction]:
    """Remove the files of tables the catalog does not know, written before
    ``before_us``: a table's first commit that never committed (its transaction was
    killed) leaves its files, and no catalog row, behind."""
    say = progress or (lambda _: None)
    known = set(names(engine))
    try:
        folders = [f for f in tables.fs.ls("tables", detail=False)]
    except FileNotFoundError:
        return []
    done = []
    for folder in sorted(folders):
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        if name in known:
            continue
        removed, size = _remove_files(tables, f"tables/{name}", set(), before_us // 1000)
        if removed:
            say(f"{name}: removed {removed} files of a table never committed ({size:,} bytes)")
        done.append(TableCompaction(name, 0, 0, 0, 0, removed, size))
    return done


def _data_files(engine: Engine, tables: Tables, name: str) -> list[Any]:
    with read(engine) as conn:
        table = tables.load(conn, name)
        if table is None:
            return []
        return [task.file for task in table.scan().plan_files()]


def _partitions_to_merge(files: list[Any], spec: TableSpec) -> list[tuple[tuple[str, Any], ...]]:
    """The partitions (as (column, value) pairs) holding two files or more whose
    sizes add up to at most :data:`MERGE_BYTES`."""
    fields = _identity_fields(spec)
    groups: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
    for f in files:
        key = tuple((column, f.partition[i]) for i, column in enumerate(fields))
        groups.setdefault(key, []).append(f)
    return [
        key
        for key, group in sorted(groups.items(), key=lambda kv: repr(kv[0]))
        if len(group) > 1 and sum(f.file_size_in_bytes for f in group) <= MERGE_BYTES
    ]


def _identity_fields(spec: TableSpec) -> list[str]:
    columns = []
    for field in spec.partition.fields:
        if not isinstance(field.transform, IdentityTransform):
            raise ValueError(f"{spec.name}: only identity partitions are merged")
        columns.append(spec.schema.find_column_name(field.source_id))
    return [c for c in columns if c is not None]


def _partition_filter(spec: TableSpec, key: tuple[tuple[str, Any], ...]) -> BooleanExpression:
    out: BooleanExpression = AlwaysTrue()
    for column, value in key:
        out = And(out, equal(column, value))
    return out


def _expire(engine: Engine, tables: Tables, name: str, cutoff_ms: int) -> int:
    """Expire every snapshot replaced before ``cutoff_ms``: its successor in the
    table's history is older than that."""
    with write(engine) as conn:
        lock(conn, name)
        table = tables.load(conn, name)
        if table is None:
            return 0
        log = table.metadata.snapshot_log
        current = table.metadata.current_snapshot_id
        kept = {s.snapshot_id for s in table.metadata.snapshots}
        doomed = [
            entry.snapshot_id
            for entry, successor in itertools.pairwise(log)
            if successor.timestamp_ms < cutoff_ms
            and entry.snapshot_id != current
            and entry.snapshot_id in kept
        ]
        doomed = sorted(set(doomed))
        if doomed:
            with table.transaction() as tx:
                history.forget(tx, doomed)
        return len(doomed)


def _remove_unreached(engine: Engine, tables: Tables, name: str, cutoff_ms: int) -> tuple[int, int]:
    """Remove the table's files that no kept snapshot reaches and that are older than
    ``cutoff_ms``: data and manifests of expired snapshots, earlier metadata files,
    and files of writes that never committed. What a metadata file written since
    ``cutoff_ms`` reaches is kept too: a reader that loaded the table then reads the
    snapshot it found, which a commit since may have forgotten
    (:mod:`trenches.tables.history`)."""
    with read(engine) as conn:
        table = tables.load(conn, name)
        if table is None:
            return 0, 0
        recent = _recent_metadata(tables, name, cutoff_ms)
        reached = set(tables.reachable([table.metadata_location, *recent]))
    return _remove_files(tables, f"tables/{name}", reached, cutoff_ms)


def _recent_metadata(tables: Tables, name: str, cutoff_ms: int) -> list[str]:
    """The table's metadata files written since ``cutoff_ms``."""
    folder = f"tables/{name}/metadata"
    try:
        found = tables.fs.find(folder, detail=True)
    except FileNotFoundError:
        return []
    return [
        PREFIX + path.lstrip("/")
        for path, info in found.items()
        if path.endswith(".metadata.json") and _modified_ms(info) >= cutoff_ms
    ]


def _remove_files(
    tables: Tables, folder: str, reached: set[str], cutoff_ms: int
) -> tuple[int, int]:
    """Remove the files under ``folder`` that are not ``reached`` and were written
    before ``cutoff_ms``: how many, and their bytes."""
    fs = tables.fs
    removed = 0
    size = 0
    try:
        found = fs.find(folder, detail=True)
    except FileNotFoundError:
        return 0, 0
    for path, info in found.items():
        location = PREFIX + path.lstrip("/")
        if location in reached or _modified_ms(info) >= cutoff_ms:
            continue
        fs.rm_file(path)
        removed += 1
        size += int(info.get("size") or 0)
    return removed, size


def _modified_ms(info: dict[str, Any]) -> float:
    """When a file was last written, in ms since the epoch (local files and S3)."""
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if isinstance(mtime, datetime):
        return mtime.timestamp() * 1000
    if mtime is None:
        return float("inf")  # unknown: never removed
    return float(mtime) * 1000
