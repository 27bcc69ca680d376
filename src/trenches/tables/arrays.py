"""Arrow columns read from the tables, made NumPy arrays; and arrays of ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa


def decoded(column: pa.ChunkedArray) -> np.ndarray:
    """A column as a NumPy array; a dictionary-encoded one (read so, for its few
    distinct values) as objects, each distinct value made a Python object once, nulls
    None."""
    import pyarrow as pa

    if not pa.types.is_dictionary(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False))
    parts = []
    for chunk in column.chunks:
        distinct = chunk.dictionary.to_pylist()
        values = np.empty(len(distinct) + 1, dtype=object)
        values[:-1] = distinct
        codes = chunk.indices.fill_null(len(values) - 1).to_numpy()
        parts.append(values[codes])
    if not parts:
        return np.zeros(0, dtype=object)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[object]]:
    """A dictionary-encoded column as (codes, distinct values): the chunks' dictionaries
    made one, so that a code means the same value in every chunk (-1: null). The codes
    are of the smallest signed type that holds them (a few labels: one byte each)."""
    if column.num_chunks == 0:
        return np.zeros(0, dtype=np.int8), []
    unified = column.unify_dictionaries()
    distinct = unified.chunk(0).dictionary.to_pylist()
    small = np.min_scalar_type(-len(distinct) - 1)
    parts = [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) for chunk in unified.chunks]
    return np.concatenate(parts, dtype=small, casting="unsafe"), distinct


def stacked(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays one after the other: the one itself, not a copy, when there is one."""
    return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


def is_ascending(ids: np.ndarray) -> bool:
    """Whether ``ids`` strictly ascend (no repeats): one comparison of neighbours."""
    return len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())


def ascending_unique(values: Any) -> np.ndarray:
    """``values`` (ids) as ascending, unique int64: the array itself when it is so
    already (a set's ids usually are), which costs one comparison, not a sort."""
    array = np.asarray(values, dtype=np.int64).ravel()
    if is_ascending(array):
        return array
    # A radix sort (NumPy's stable sort of integers), then the repeats dropped: ids
    # read from several files come as a few sorted runs, and a hash of every id
    # (np.unique) took ten times as long on a million of them.
    ordered = np.sort(array, kind="stable")
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    unique: np.ndarray = ordered[keep]
    return unique


def fixed_bytes(column: pa.ChunkedArray | pa.Array, width: int = 16) -> np.ndarray:
    """A binary column whose values each hold ``width`` bytes (input keys, content
    hashes) as one NumPy array of ``V<width>``, without a Python object a value.
    Raises ValueError (``pyarrow.ArrowInvalid``) when a value has another length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    fixed = pc.cast(column, pa.binary(width))
    if isinstance(fixed, pa.ChunkedArray):
        fixed = fixed.combine_chunks()
    data = fixed.buffers()[1]
    if data is None or not len(fixed):
        return np.zeros(0, dtype=f"V{width}")
    values: np.ndarray = np.frombuffer(
        data, dtype=f"V{width}", count=len(fixed), offset=fixed.offset * width
    )
    return values
