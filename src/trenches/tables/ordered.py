"""The least values of a table's whole-number column (its ids) among the rows a reader
keeps, read row group by row group in the order of the least value each holds: the
first page of a filtered million rows reads the row groups it comes from and the
footers of the files before them, and stops as soon as no row group left can hold a
smaller value than the page's last.

A table's file holds its rows sorted by split, then id: its row groups do not come in
id order, but each keeps the bounds of its ids, and those bounds order them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from trenches.tables import pruning
from trenches.tables.pruning import Bound

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trenches.tables.catalog import Tables

#: A reader's choice among the rows of a row group: a mask, or None for all of them.
Keep = Callable[["pa.Table"], "np.ndarray | None"]


def least(
    tables: Tables,
    spans: Sequence[tuple[str, int, int]],
    *,
    column: str,
    columns: Sequence[str],
    bounds: Sequence[Bound],
    keep: Keep,
    n: int,
    ordered: bool = True,
) -> np.ndarray:
    """Up to ``n`` values of ``column`` (ascending) of the rows of the files ``spans``
    names (each with the least and most ``column`` it holds, least first) that lie
    within ``bounds`` and that ``keep`` keeps, which sees ``columns`` (and the bounds'
    columns) of each row group read. The least ``n`` ones; with ``ordered`` False any
    ``n`` (enough to count to ``n``), read in the same order."""
    bounds = [b.narrowed() for b in bounds]
    spans = [s for s in spans if all(b.spans(s[1], s[2]) for b in bounds if b.column == column)]
    wanted = list(dict.fromkeys([column, *columns, *(b.column for b in bounds)]))
    opened: dict[int, pq.ParquetFile] = {}
    # Row groups yet to read: (the least value of ``column`` it holds, file, group,
    # whether every row of it is within the bounds).
    waiting: list[tuple[int, int, int, bool]] = []
    found = np.zeros(0, dtype=np.int64)
    looked = 0  # files whose row groups wait (or were read)

    def done(least_left: int) -> bool:
        if len(found) < n:
            return False
        return not ordered or least_left > int(found[-1])

    while True:
        next_file = spans[looked][1] if looked < len(spans) else None
        if waiting and (next_file is None or waiting[0][0] <= next_file):
            low, f, group, inside = heapq.heappop(waiting)
            if done(low):
                break
            if f not in opened:
                opened[f] = tables.parquet(spans[f][0])
            part = opened[f].read_row_groups([group], columns=wanted)
            if not inside:
                part = pruning.filtered(part, bounds)
            mask = keep(part)
            values = part.column(column).to_numpy()
            found = np.sort(np.concatenate([found, values if mask is None else values[mask]]))
            if ordered:
                found = found[:n]
            continue
        if next_file is None or done(next_file):
            break
        metadata = tables.metadata(spans[looked][0])
        for group, inside in zip(*pruning.row_groups(metadata, bounds), strict=True):
            low = _least_in(metadata, group, column)
            heapq.heappush(waiting, (low, looked, group, inside))
        looked += 1
    return found[:n]


def _least_in(metadata: pq.FileMetaData, group: int, column: str) -> int:
    """The least value of ``column`` a row group keeps in its statistics (the least
    there is, when it keeps none)."""
    chunk = metadata.row_group(group)
    for j in range(metadata.num_columns):
        if metadata.schema.column(j).path == column:
            stats = chunk.column(j).statistics
            if stats is not None and stats.has_min_max:
                return int(stats.min)
    return -(2**63)
