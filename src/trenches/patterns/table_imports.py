"""An import into a columnar dataset: no database row a pattern, only the dataset's
table. Chunks of rows are keyed and hashed on two threads (NumPy lets go of the GIL
inside its loops), checked in order against what the dataset holds, and appended as
one Arrow table, the keys and hashes kept as fixed-width blocks from first to last:
a Python object a pattern would cost more than the hashing."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Connection

from trenches.patterns import codec, columnar
from trenches.patterns import inputs as inp
from trenches.patterns.existing import StoredContent

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset

#: Rows keyed and hashed per step of an import; bounds memory on big files.
CHUNK_ROWS = 50_000
#: Chunks hashed at once (one a core on this kind of machine; more only hold memory).
_THREADS = 2


@dataclass(frozen=True)
class ImportRows:
    """What every chunk of one import is encoded from."""

    schema: inp.InputSchema
    cols: dict[str, inp.CoercedColumn]
    label_text: list[str]
    source: str
    when: int
    #: The dataset's patterns at the import's lock (None for a first import).
    stored: StoredContent | None
    skip_existing: bool

    def chunk(self, start: int, stop: int) -> dict[str, inp.CoercedColumn]:
        return {
            name: inp.CoercedColumn(c.values[start:stop], c.missing[start:stop])
            for name, c in self.cols.items()
        }


@dataclass
class Encoded:
    """The rows of an import that are to be written, with their keys and hashes."""

    rows: int = 0
    already: int = 0
    by_split: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    #: Per chunk: the positions of the rows written, their splits, keys and hashes.
    kept: list[np.ndarray] = field(default_factory=list)
    splits: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    hashes: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class _Chunk:
    start: int
    split: np.ndarray
    keys: np.ndarray
    hashes: np.ndarray
    key_head: np.ndarray
    words: np.ndarray | None
    obj: list[str] | None


def encode(dataset: Dataset, rows: ImportRows, progress: Callable[[int], None] | None) -> Encoded:
    """Key and hash every row, leaving out (with ``skip_existing``) or counting those
    the dataset holds already."""
    out = Encoded()
    for chunk in _hashed(dataset, rows):
        n = len(chunk.split)
        keep = slice(None)
        if rows.stored is not None:
            stop = chunk.start + n
            seen = rows.stored.stored(
                chunk.key_head,
                chunk.words,
                chunk.obj,
                rows.label_text[chunk.start : stop],
                rows.source,
            )
            out.already += int(seen.sum())
            if rows.skip_existing and seen.any():
                keep = ~seen  # type: ignore[assignment]
        split = chunk.split[keep]
        out.kept.append(chunk.start + np.arange(n)[keep])
        out.splits.append(split)
        out.keys.append(chunk.keys[keep])
        out.hashes.append(chunk.hashes[keep])
        out.by_split += np.bincount(split, minlength=3)
        out.rows += len(split)
        if progress is not None:
            progress(len(split))
    return out


def _hashed(dataset: Dataset, rows: ImportRows) -> Iterator[_Chunk]:
    """Each chunk keyed and hashed, in order, :data:`_THREADS` at a time."""
    n = len(rows.label_text)
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="trenches-import") as pool:
        pending: deque[Future[_Chunk]] = deque()
        for start in range(0, n, CHUNK_ROWS):
            pending.append(pool.submit(_hash_chunk, dataset, rows, start))
            if len(pending) > _THREADS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _hash_chunk(dataset: Dataset, rows: ImportRows, start: int) -> _Chunk:
    stop = min(len(rows.label_text), start + CHUNK_ROWS)
    cols = rows.chunk(start, stop)
    m = stop - start
    keyed = codec.key_hashes(rows.schema, cols, m, dataset.salt)
    words = codec.numeric_words(rows.schema, cols, m)
    obj = codec.string_rows(rows.schema, cols)
    labels = rows.label_text[start:stop]
    return _Chunk(
        start=start,
        split=codec.splits_of(keyed[:, 0], dataset.split_ratios),
        keys=codec.hash_block(keyed),
        hashes=codec.content_block(words, obj, labels, rows.source, rows.when),
        key_head=keyed[:, 0],
        words=words,
        obj=obj,
    )


def append(
    conn: Connection,
    dataset: Dataset,
    rows: ImportRows,
    written: Encoded,
    batch_id: int,
    first_id: int,
    tags_json: str | None,
) -> None:
    """The rows written, appended to the dataset's table in the import's transaction,
    by split and then id (the order the table keeps)."""
    kept = np.concatenate(written.kept)
    split = np.concatenate(written.splits)
    # The ids follow the rows, so a stable sort by split alone puts them in order.
    order = np.argsort(split, kind="stable")
    rows_of = kept[order]
    with ThreadPoolExecutor(_THREADS, thread_name_prefix="trenches-import") as pool:
        # A column a thread: NumPy's take lets go of the GIL.
        cols = dict(
            zip(
                rows.cols,
                pool.map(lambda c: _taken(c, rows_of), rows.cols.values()),
                strict=True,
            )
        )
    codes, uniques = pd.factorize(np.asarray(rows.label_text, dtype=object))
    labels = pa.DictionaryArray.from_arrays(
        pa.array(codes[rows_of].astype(np.int32)), pa.array(uniques, type=pa.string())
    ).cast(pa.string())
    spec = columnar.table_spec(dataset.id, rows.schema)
    table = columnar.rows(
        spec,
        rows.schema,
        ids=(first_id + order).astype(np.int64),
        split=split[order],
        source=rows.source,
        batch_id=batch_id,
        labels=labels,
        created_at=rows.when,
        keys=np.concatenate(written.keys)[order],
        hashes=np.concatenate(written.hashes)[order],
        cols=cols,
        tags=tags_json,
    )
    columnar.append(conn, spec, table, in_order=True)


def _taken(column: inp.CoercedColumn, rows: np.ndarray) -> inp.CoercedColumn:
    return inp.CoercedColumn(np.take(column.values, rows), np.take(column.missing, rows))
