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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

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
    is an error, raised once the others have been given."""
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
        label_codes, distinct = codes(part.column("label"))
        labels = np.empty(len(distinct), dtype=object)
        labels[:] = distinct
        yield Feed(found, inputs, label_codes, labels)
    read_ids = np.sort(np.concatenate(given)) if given else wanted[:0]
    if len(read_ids) == len(wanted):
        return
    rest = wanted[~np.isin(wanted, read_ids, assume_unique=True)]
    if split is not None:
        yield from feeds(dataset, rest, columns, rows=rows, dtype=dtype)
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
