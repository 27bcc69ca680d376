"""Which rows of an import a dataset holds already: the same inputs, label and source.

Patterns are immutable and an import adds every row it is given, so the same file
imported twice stores each pattern twice. A row is *stored already* when a pattern of
the dataset (active or not) would have the content hash it has, had the row been
imported at that pattern's time: the hash covers the exact stored inputs, the label,
the source and the time, and only the time may differ between two imports of one file.
Candidates are found by the first 64 bits of the input key, the salted hash of the
inputs every stored pattern carries, so only a few hashes are computed however large
the dataset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from trenches.db import schema as t
from trenches.db.engine import id_in
from trenches.patterns import codec, columnar
from trenches.tables.arrays import ascending_unique, fixed_bytes

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset


class StoredContent:
    """The patterns of one dataset as they were when an import took its write lock:
    of a columnar dataset from its table (an import's own rows join it only when it
    commits), of an earlier release's from its ``patterns`` rows."""

    def __init__(
        self,
        conn: Connection,
        dataset: Dataset,
        *,
        keys: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """``keys``: the :attr:`keys` of one made earlier of the same patterns (a Dask
        worker keeps them between the files of an import), not read again."""
        if keys is not None:
            ids, heads = keys
        elif dataset.columnar:
            ids, heads = _table_heads(conn, dataset.id)
        else:
            p = t.patterns.c
            rows = conn.execute(
                select(p.id, p.input_key).where(p.dataset_id == dataset.id)
            ).cursor.fetchall()
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            heads = np.frombuffer(b"".join(bytes(r[1][:8]) for r in rows), dtype=">u8")
            heads = heads.astype(np.uint64)
        order = np.argsort(heads)
        self._conn = conn
        self._dataset_id = dataset.id
        self._columnar = dataset.columnar
        self._ids = ids[order]
        self._heads = heads[order]

    @property
    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """The patterns' ids and the first 64 bits of their input keys."""
        return self._ids, self._heads

    def stored(
        self,
        key_head: np.ndarray,
        num_words: np.ndarray | codec.Words | None,
        obj: list[str] | None,
        labels: codec.Coded,
        source: str,
    ) -> np.ndarray:
        """For each row of an encoded chunk: is a pattern with its content stored?"""
        found = np.zeros(len(labels), dtype=bool)
        if not len(self._heads):
            return found
        lo = np.searchsorted(self._heads, key_head, side="left")
        counts = np.searchsorted(self._heads, key_head, side="right") - lo
        rows = np.flatnonzero(counts)
        if not len(rows):
            return found
        lo, counts = lo[rows], counts[rows]
        # Every (row, stored pattern) pair with the same key head, without a loop.
        pair_rows = np.repeat(rows, counts)
        starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        pair_ids = self._ids[starts + np.arange(len(pair_rows))]
        times, hashes = self._times_and_hashes(pair_ids)
        for when in np.unique(times):
            at = np.flatnonzero(times == when)
            r = pair_rows[at]
            content = codec.content_hashes(
                num_words[r] if num_words is not None else None,
                [obj[i] for i in r.tolist()] if obj is not None else None,
                labels.take(r),
                source,
                int(when),
            )
            mine = np.frombuffer(b"".join(content), dtype=np.uint8).reshape(-1, 16)
            found[r[(mine == hashes[at]).all(axis=1)]] = True
        return found

    def _times_and_hashes(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The created_at and the content hash (n, 16) of each of ``ids``."""
        if self._columnar:
            return _table_times_and_hashes(self._conn, self._dataset_id, ids)
        p = t.patterns.c
        wanted = np.unique(ids)
        query = (
            select(p.id, p.created_at, p.content_hash)
            .where(id_in(self._conn.dialect.name, p.id, wanted.tolist()))
            .order_by(p.id)
        )
        rows = self._conn.execute(query).cursor.fetchall()
        at = np.searchsorted(np.fromiter((r[0] for r in rows), dtype=np.int64), ids)
        times = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        hashes = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype=np.uint8)
        return times[at], hashes.reshape(-1, 16)[at]


def _table_heads(conn: Connection, dataset_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids of a columnar dataset's patterns and the first 64 bits of each one's
    input key (as a big-endian number), from its table."""
    data = columnar.read(conn, dataset_id, columns=["pattern_id", "input_key"])
    if data is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    keys = fixed_bytes(data["input_key"]).view(np.uint8).reshape(-1, 16)
    heads = np.ascontiguousarray(keys[:, :8]).view(">u8").ravel().astype(np.uint64)
    return data["pattern_id"].to_numpy(), heads


def _table_times_and_hashes(
    conn: Connection, dataset_id: int, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`StoredContent._times_and_hashes` of a columnar dataset, from its table."""
    data = columnar.read(
        conn,
        dataset_id,
        columns=["pattern_id", "created_at", "content_hash"],
        ids=ascending_unique(ids),
    )
    if data is None:  # never: the ids are of its table
        raise RuntimeError(f"dataset {dataset_id}: its patterns' rows are not in its table")
    found = data["pattern_id"].to_numpy()
    order = np.argsort(found, kind="stable")
    at = order[np.searchsorted(found[order], ids)]
    times = data["created_at"].to_numpy()
    hashes = fixed_bytes(data["content_hash"]).view(np.uint8).reshape(-1, 16)
    return times[at], hashes[at]
