"""An import into a columnar dataset: no database row a pattern, only the dataset's
table. Chunks of rows are keyed, hashed and made into Arrow tables ordered by split on
two threads (NumPy and Arrow let go of the GIL inside their loops), checked in order
against what the dataset holds and given their ids. Every million rows or so make a
part, written to the table's files by split then id (each split's slice of every chunk
in turn, without a copy) on a thread of its own while the next part is hashed; the
parts are committed together with the import. No Python object a pattern, no gather of
the whole import's columns, and no more of it in memory than the parts not written."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa

from trenches.patterns import codec, columnar
from trenches.patterns import inputs as inp
from trenches.patterns.existing import StoredContent

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset
    from trenches.tables.catalog import TableSpec

#: Rows keyed and hashed per step of an import; bounds memory on big files.
CHUNK_ROWS = 50_000
#: Chunks made at once (one a core on this kind of machine; more only hold memory).
_THREADS = 2
#: Rows of a part of the import written to the table while the next is made.
PART_ROWS = 1_000_000


class Stored(Protocol):
    """Which rows of each chunk of an import, in turn, are stored already: a
    :class:`~trenches.patterns.existing.StoredContent`, or what an import of several
    files decided (:mod:`trenches.patterns.file_imports`)."""

    def stored(
        self,
        key_head: np.ndarray,
        num_words: np.ndarray | codec.Words | None,
        obj: list[str] | None,
        labels: codec.Coded,
        source: str,
    ) -> np.ndarray: ...


class Writes(Protocol):
    """Where an import's parts are written: an :class:`~trenches.tables.appending.Appending`,
    or a worker's data files (committed by the client)."""

    def write(self, data: pa.Table) -> None: ...


@dataclass(frozen=True)
class ImportRows:
    """What every chunk of one import is encoded from."""

    schema: inp.InputSchema
    cols: dict[str, inp.CoercedColumn]
    labels: codec.Coded
    source: str
    when: int
    #: The dataset's patterns at the import's lock (None for a first import).
    stored: Stored | None
    skip_existing: bool

    def chunk(self, start: int, stop: int) -> dict[str, inp.CoercedColumn]:
        return {
            name: inp.CoercedColumn(c.values[start:stop], c.missing[start:stop])
            for name, c in self.cols.items()
        }


@dataclass(frozen=True)
class Batch:
    """The import's row in ``import_batches``: its id, its first pattern id, its tags."""

    id: int
    first_id: int
    tags: str | None


@dataclass
class Encoded:
    """What an import wrote to its table's files (to be committed with it)."""

    rows: int = 0
    already: int = 0
    by_split: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))


@dataclass
class _Part:
    """Chunks not written yet: each one's rows by split then id, and how many of each
    split it holds."""

    tables: list[pa.Table] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    rows: int = 0

    def add(self, table: pa.Table, counts: np.ndarray) -> None:
        self.tables.append(table)
        self.counts.append(counts)
        self.rows += table.num_rows

    def table(self) -> pa.Table:
        """Each split's rows of every chunk in turn: by split, then id, without a copy."""
        pieces = [
            table.slice(int(counts[:split].sum()), int(counts[split]))
            for split in range(3)
            for table, counts in zip(self.tables, self.counts, strict=True)
            if counts[split]
        ]
        return pa.concat_tables(pieces)


@dataclass(frozen=True)
class _Chunk:
    start: int
    split: np.ndarray
    #: The chunk's rows by split (stable: in file order within one).
    order: np.ndarray
    table: pa.Table
    key_head: np.ndarray
    words: codec.Words | None
    obj: list[str] | None
    #: Each row's content hash (n, 16), in file order.
    hashes: np.ndarray


def survey(
    dataset: Dataset, rows: ImportRows, stored: StoredContent | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of an import, in file order: is it stored already (in ``stored``),
    and its content hash (n, 16): what an import of several files decides by before
    any is written."""
    n = len(rows.labels)
    seen = np.zeros(n, dtype=bool)
    hashes = np.zeros((n, 16), dtype=np.uint8)
    for chunk in _made(dataset, rows, Batch(0, 0, None)):
        m = len(chunk.split)
        hashes[chunk.start : chunk.start + m] = chunk.hashes
        if stored is not None:
            seen[chunk.start : chunk.start + m] = stored.stored(
                chunk.key_head,
                chunk.words,
                chunk.obj,
                rows.labels.slice(chunk.start, chunk.start + m),
                rows.source,
            )
    return seen, hashes


def encode(
    dataset: Dataset,
    rows: ImportRows,
    batch: Batch,
    table: Writes,
    progress: Callable[[int], None] | None,
) -> Encoded:
    """Key, hash and write to ``table`` every row, leaving out (with ``skip_existing``)
    or counting those the dataset holds already. The rows written take the ids from
    ``batch.first_id`` on, in the order of the file; ``table`` is committed by the
    caller."""
    out = Encoded()
    part = _Part()
    for chunk in _made(dataset, rows, batch):
        n = len(chunk.split)
        keep: np.ndarray | None = None
        if rows.stored is not None:
            seen = rows.stored.stored(
                chunk.key_head,
                chunk.words,
                chunk.obj,
                rows.labels.slice(chunk.start, chunk.start + n),
                rows.source,
            )
            out.already += int(seen.sum())
            if rows.skip_existing and seen.any():
                keep = ~seen
        made, rank, split = chunk.table, chunk.order, chunk.split
        if keep is not None:
            kept = keep[chunk.order]
            rank = (np.cumsum(keep) - 1)[chunk.order][kept]
            made = made.filter(pa.array(kept))
            split = split[keep]
        ids = pa.array(batch.first_id + out.rows + rank, type=pa.int64())
        counts = np.bincount(split, minlength=3)
        part.add(made.set_column(0, made.schema.field(0), ids), counts)
        out.by_split += counts
        out.rows += len(split)
        if part.rows >= PART_ROWS:
            table.write(part.table())
            part = _Part()
        if progress is not None:
            progress(len(split))
    if part.rows:
        table.write(part.table())
    return out


def _made(dataset: Dataset, rows: ImportRows, batch: Batch) -> Iterator[_Chunk]:
    """Each chunk made, in order, :data:`_THREADS` at a time."""
    n = len(rows.labels)
    spec = columnar.table_spec(dataset.id, rows.schema)
    labels = pa.array(rows.labels.values, type=pa.string())
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="trenches-import") as pool:
        pending: deque[Future[_Chunk]] = deque()
        for start in range(0, n, CHUNK_ROWS):
            pending.append(pool.submit(_make_chunk, dataset, spec, rows, batch, labels, start))
            if len(pending) > _THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _make_chunk(
    dataset: Dataset,
    spec: TableSpec,
    rows: ImportRows,
    batch: Batch,
    labels: pa.Array,
    start: int,
) -> _Chunk:
    stop = min(len(rows.labels), start + CHUNK_ROWS)
    cols = rows.chunk(start, stop)
    m = stop - start
    keyed = codec.key_hashes(rows.schema, cols, m, dataset.salt)
    words = codec.numeric_words(rows.schema, cols, m)
    obj = codec.string_rows(rows.schema, cols)
    coded = rows.labels.slice(start, stop)
    split = codec.splits_of(keyed[:, 0], dataset.split_ratios)
    hashes = codec.content_block(words, obj, coded, rows.source, rows.when)
    order = np.argsort(split, kind="stable")
    table = columnar.rows(
        spec,
        rows.schema,
        ids=order,  # a stand-in: the ids are given once the rows kept are known
        split=split[order],
        source=rows.source,
        batch_id=batch.id,
        labels=pa.DictionaryArray.from_arrays(pa.array(coded.codes[order]), labels).cast(
            pa.string()
        ),
        created_at=rows.when,
        keys=codec.hash_block(keyed)[order],
        hashes=hashes[order],
        cols={name: _taken(c, order) for name, c in cols.items()},
        tags=batch.tags,
    )
    return _Chunk(
        start=start,
        split=split,
        order=order,
        table=table,
        key_head=keyed[:, 0],
        words=words,
        obj=obj,
        hashes=hashes,
    )


def _taken(column: inp.CoercedColumn, rows: np.ndarray) -> inp.CoercedColumn:
    return inp.CoercedColumn(np.take(column.values, rows), np.take(column.missing, rows))
