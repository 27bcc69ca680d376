"""The patterns a model is to predict, read for it from a columnar dataset's table: the
rows of the ids asked for, with only the columns a prediction needs (the inputs and
the label), a few row groups at a time.

Read as :func:`~trenches.patterns.frames.read_patterns` reads patterns (with their
provenance, each label a Python value, one read of each split's ids a batch), the
inputs of 300,000 validation patterns took five times as long as predicting them.
Here each row group is read once, the labels come as codes into their few distinct
texts, and numbers go straight into the one matrix a model is given.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trenches import tables
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.names import SPLITS
from trenches.patterns import columnar
from trenches.tables.arrays import ascending_unique, codes

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset

#: Rows read at a time (whole row groups: about this many).
READ_ROWS = 100_000


@dataclass(frozen=True)
class Feed:
    """Patterns to predict: their ``ids`` (in the table's order), their ``inputs`` (the
    columns asked for, in that order) and their labels as stored, each a code into
    ``labels``."""

    ids: np.ndarray
    inputs: pd.DataFrame
    codes: np.ndarray
    labels: np.ndarray


#: Reads of at most this many patterns are kept (a few at a time): a backfill of a
#: problem's patterns over many versions reads the same rows for each, and a
#: pattern's row never changes (a relabel makes a new pattern), so a read of the same
#: ids in the same files is the same rows.
KEPT_IDS = 10_000
_KEPT = 8
_kept: OrderedDict[tuple[Any, ...], list[Feed]] = OrderedDict()
_keeping = threading.Lock()


def feeds(
    dataset: Dataset,
    ids: Sequence[int] | np.ndarray,
    columns: Sequence[str],
    *,
    split: str | None = None,
    rows: int | None = None,
    dtype: Any = np.float64,
) -> Iterator[Feed]:
    """The patterns ``ids`` of the columnar ``dataset`` (active or not), their
    ``columns`` of input, about ``rows`` (:data:`READ_ROWS`) at a time. ``split``: the
    split they are of, when the caller knows it: the rows of other splits are not read
    (ids of another split are read after, without it). Numbers come as ``dtype`` (a
    model that takes single precision is given it). An id the dataset does not hold
    is an error, raised once the others have been given. A small read (up to
    :data:`KEPT_IDS` ids) is kept, and given again to the next read of the same ids."""
    wanted = ascending_unique(ids)
    if not len(wanted) or len(wanted) > KEPT_IDS:
        yield from _feeds(dataset, wanted, columns, split=split, rows=rows, dtype=dtype)
        return
    with read(dataset.engine) as conn:
        seen = columnar.version(conn, dataset.id)
        root = tables.of(conn).root
    # The store's tables and the commit of the dataset's table seen say which rows a
    # read reads (a store made again in place has files of its own); the rows of given
    # ids never change.
    key = (root, seen, wanted.tobytes(), tuple(columns), split, np.dtype(dtype).str)
    with _keeping:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
    if found is None:
        found = list(_feeds(dataset, wanted, columns, split=split, rows=rows, dtype=dtype))
        with _keeping:
            _kept[key] = found
            while len(_kept) > _KEPT:
                _kept.popitem(last=False)
    yield from found


def _feeds(
    dataset: Dataset,
    ids: Sequence[int] | np.ndarray,
    columns: Sequence[str],
    *,
    split: str | None = None,
    rows: int | None = None,
    dtype: Any = np.float64,
) -> Iterator[Feed]:
    """:func:`feeds`, read."""
    rows = rows or READ_ROWS
    schema = dataset.schema
    assert dataset.columnar and schema is not None
    wanted = ascending_unique(ids)
    if not len(wanted):
        return
    at = [schema.names.index(c) for c in columns]
    numbers = all(schema.columns[j].type == "number" for j in at)
    with read(dataset.engine) as conn:
        # The files are chosen here; their rows are read after, outside the transaction.
        parts = columnar.batches(
            conn,
            dataset.id,
            columns=["label", "inputs"],
            rows=rows,
            split=None if split is None else SPLITS.index(split),
            ids=wanted,
            dictionary=("label",),
        )
    given = []
    for part in parts:
        if not part.num_rows:
            continue
        found = part.column("pattern_id").to_numpy()
        given.append(found)
        inputs = (
            _matrix(part.column("inputs"), at, list(columns), dtype)
            if numbers
            else columnar.inputs_frame(schema, part.column("inputs"))[list(columns)]
        )
        inputs.index = pd.Index(found, name="pattern_id")  # what an error names
        label_codes, distinct = codes(part.column("label"))
        labels = np.empty(len(distinct), dtype=object)
        labels[:] = distinct
        yield Feed(found, inputs, label_codes, labels)
    read_ids = np.sort(np.concatenate(given)) if given else wanted[:0]
    if len(read_ids) == len(wanted):
        return
    rest = wanted[~np.isin(wanted, read_ids, assume_unique=True)]
    if split is not None:
        yield from _feeds(dataset, rest, columns, rows=rows, dtype=dtype)
        return
    raise InvalidInput(
        f"{len(rest)} of the {len(wanted)} patterns to predict are not in dataset "
        f"{dataset.name!r} (pattern {int(rest[0])}, for one)"
    )


def _matrix(inputs: Any, at: list[int], names: list[str], dtype: Any) -> pd.DataFrame:
    """The number fields ``at`` of the ``inputs`` struct column as one matrix of
    ``dtype``, a row a pattern (missing numbers NaN), filled once, under a DataFrame of
    ``names`` that does not copy it."""
    matrix = np.empty((len(inputs), len(at)), dtype=dtype)
    start = 0
    for chunk in inputs.chunks:
        fields = chunk.flatten()
        stop = start + len(chunk)
        for k, j in enumerate(at):
            matrix[start:stop, k] = fields[j].to_numpy(zero_copy_only=False)
        start = stop
    return pd.DataFrame(matrix, columns=pd.Index(names), copy=False)
