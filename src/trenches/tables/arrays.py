"""Arrow columns read from the tables, made NumPy arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
