"""Predictions made in one place and committed to the Iceberg table in another.

A Dask worker predicts a part of a job and writes its rows as the table's data files
(:func:`write_part`); the client commits them (:func:`commit_part`), in a transaction
of its own, so the rows travel once, as Parquet, and the client does no more than a
commit per part. A part smaller than :data:`~trenches.predictions.INLINE_ROWS` comes
back as its block, for the SQL table of small blocks, as in one process. A worker lost
before its part was committed leaves files no commit names: strays, which ``trenches
compact`` removes once older than its cut-off.

``trenches compact`` moves the small blocks kept in SQL into the table
(:func:`move_inline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from trenches import tables
from trenches.db import schema as t
from trenches.db.engine import advisory_lock, id_in
from trenches.errors import Conflict
from trenches.predictions import (
    COLUMNS,
    INLINE_ROWS,
    TABLE,
    Block,
    arrow_rows,
    inline_part,
    predicted_ids,
    table_rows,
    table_spec,
    write_block,
)
from trenches.tables.arrays import ascending_unique
from trenches.tables.pruning import among


@dataclass(frozen=True)
class Part:
    """A part of a job, predicted: the patterns' ids, ascending, and either the data
    files the worker wrote (not committed) or, for a small part, its block."""

    pattern_ids: np.ndarray
    files: list[Any] | None = None
    block: Block | None = None


def write_part(
    conn: Connection, predictor: int, block: Block, *, inline_below: int = INLINE_ROWS
) -> Part:
    """On a worker: a part's predictions, written as the table's data files when it
    has ``inline_below`` or more (the client's :data:`INLINE_ROWS`); the table is made
    first, in a transaction of the client's (:func:`ready`)."""
    ids = np.asarray(block.pattern_ids, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    if len(ids) < inline_below or tables.of(conn).load(conn, TABLE) is None:
        return Part(ids[order], block=block)
    if (np.diff(ids[order]) == 0).any():
        raise Conflict("a block of predictions names a pattern twice")
    files = tables.of(conn).write_files(conn, table_spec(), table_rows(predictor, block, order))
    return Part(ids[order], files=files)


def ready(conn: Connection) -> None:
    """Make the predictions table if it was not (in the connection's write
    transaction), so that workers can write its files."""
    tables.of(conn).opened(conn, table_spec())


def commit_part(conn: Connection, predictor: int, part: Part) -> int:
    """On the client: store a part :func:`write_part` made, in the connection's write
    transaction; predictions another process stored meanwhile are skipped (as
    :func:`~trenches.predictions.write_block` skips them). How many were stored."""
    if part.files is None:
        assert part.block is not None
        return write_block(conn, predictor, part.block, skip_existing=True)
    advisory_lock(conn, f"predictions.{predictor}")  # as write_block takes it
    stored = predicted_ids(conn, predictor, part.pattern_ids)
    if len(stored) == 0:
        tables.of(conn).commit_files(conn, table_spec(), part.files)
        return len(part.pattern_ids)
    # Rare: another process evaluated the same version meanwhile. The worker's files
    # hold those predictions again; they are read back and the rest appended (the
    # files are left as strays).
    store = tables.of(conn)
    rows = store.read([f.file_path for f in part.files], schema=table_spec().schema.as_arrow())
    fresh = ~among(rows.column("pattern_id").to_numpy(), stored)
    store.append(conn, table_spec(), rows.filter(fresh))
    return int(fresh.sum())


def commit_parts(conn: Connection, predictor: int, parts: Sequence[Part]) -> list[int]:
    """:func:`commit_part` of several parts of one predictor (disjoint), the files of
    all in one commit when none of their predictions was stored meanwhile. How many
    each stored."""
    stored = [0] * len(parts)
    written = [k for k, part in enumerate(parts) if part.files is not None]
    for k, part in enumerate(parts):
        if part.files is None:
            stored[k] = commit_part(conn, predictor, part)
    if len(written) < 2:
        for k in written:
            stored[k] = commit_part(conn, predictor, parts[k])
        return stored
    advisory_lock(conn, f"predictions.{predictor}")  # as write_block takes it
    ids = ascending_unique(np.concatenate([parts[k].pattern_ids for k in written]))
    if len(predicted_ids(conn, predictor, ids)):
        for k in written:  # another process stored some: part by part, as one would
            stored[k] = commit_part(conn, predictor, parts[k])
        return stored
    files = [f for k in written for f in parts[k].files or ()]
    tables.of(conn).commit_files(conn, table_spec(), files)
    for k in written:
        stored[k] = len(parts[k].pattern_ids)
    return stored


def move_inline(conn: Connection, *, max_rows: int = 1_000_000) -> int:
    """Move the oldest inline blocks (rows of SQL, up to about ``max_rows``
    predictions) into the Iceberg table, in the connection's write transaction: the
    rows leave SQL and appear in the table in the same commit. Returns how many
    predictions moved (0: none was left)."""
    import pyarrow as pa

    from trenches.tables.catalog import lock

    lock(conn, TABLE)  # the table's writers queue behind this move from here on
    b = t.prediction_blocks.c
    chosen: list[int] = []
    total = 0
    for block_id, n in conn.execute(select(b.id, b.n).order_by(b.id)):
        if chosen and total + n > max_rows:
            break
        chosen.append(int(block_id))
        total += int(n)
    if not chosen:
        return 0
    parts = []
    for row in conn.execute(
        select(t.prediction_blocks).where(id_in(conn.dialect.name, b.id, chosen))
    ):
        n = int(row.n)
        k = len(row.scores) // (8 * n) if row.scores is not None else 1
        part = inline_part(row.pattern_ids, [getattr(row, name) for name in COLUMNS], k)
        parts.append(arrow_rows(int(row.predictor_id), part, n))
    data = pa.concat_tables(parts).sort_by(
        [("predictor_id", "ascending"), ("pattern_id", "ascending")]
    )
    tables.of(conn).append(conn, table_spec(), data)
    conn.execute(t.prediction_blocks.delete().where(id_in(conn.dialect.name, b.id, chosen)))
    return total
