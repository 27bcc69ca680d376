"""A columnar dataset's members read from its table alone: the rows a
:class:`~trenches.patterns.frames.Members` selection keeps (created by ``as_of``, of an
id up to ``max_id``, of one of ``sources``, and not deactivated by then), with the
deactivations from the dataset's pattern changes. Snapshots, their digests, lineage
and summaries count and hash a dataset's members this way, without a database row a
pattern.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from trenches.patterns import columnar
from trenches.patterns.frames import Members, deactivations
from trenches.tables import arrays
from trenches.tables.pruning import among

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection


def member_rows(
    conn: Connection,
    dataset_id: int,
    members: Members,
    columns: Sequence[str],
    *,
    split: int | None = None,
    dictionary: Sequence[str] = (),
) -> pa.Table | None:
    """``columns`` (and ``pattern_id``) of the dataset's patterns ``members`` selects
    (of the split coded ``split``), in no set order; None when its table has none."""
    data = columnar.read(
        conn,
        dataset_id,
        columns=list(dict.fromkeys(["pattern_id", *columns])),
        split=split,
        max_id=members.max_id,
        as_of=members.as_of,
        sources=members.sources,
        dictionary=dictionary,
    )
    if data is None:
        return None
    keep = active(conn, dataset_id, members, data.column("pattern_id").to_numpy())
    return data if keep is None else data.filter(keep)


def member_batches(
    conn: Connection, dataset_id: int, members: Members, columns: Sequence[str], rows: int
) -> Iterator[pa.Table]:
    """What :func:`member_rows` reads, a few row groups (about ``rows`` rows) at a
    time: for a reader whose memory must not grow with the dataset."""
    gone = _deactivated(conn, dataset_id, members)
    for part in columnar.batches(
        conn,
        dataset_id,
        columns=columns,
        rows=rows,
        max_id=members.max_id,
        as_of=members.as_of,
        sources=members.sources,
    ):
        if gone is None:
            yield part
        else:
            yield part.filter(~among(part.column("pattern_id").to_numpy(), gone))


def active(
    conn: Connection, dataset_id: int, members: Members, ids: np.ndarray
) -> np.ndarray | None:
    """Which of ``ids`` (of the dataset's patterns) ``members`` keeps for not having
    been deactivated (by ``as_of``, or at all); None: every one."""
    gone = _deactivated(conn, dataset_id, members)
    if gone is None:
        return None
    keep: np.ndarray = ~among(ids, gone)
    return None if keep.all() else keep


def _deactivated(conn: Connection, dataset_id: int, members: Members) -> np.ndarray | None:
    """The ids (ascending, unique) of the dataset's patterns that ``members`` leaves out
    as deactivated: by ``as_of`` (the changes after it leave a pattern in) or, without
    it, at all unless ``include_inactive``; None when there are none."""
    if members.as_of is None and members.include_inactive:
        return None
    off = deactivations(conn, dataset_id)
    if not off:
        return None
    ids = np.fromiter((r[0] for r in off), dtype=np.int64, count=len(off))
    if members.as_of is not None:
        when = np.fromiter((r[1] for r in off), dtype=np.int64, count=len(off))
        ids = ids[when <= members.as_of]
    return arrays.ascending_unique(ids) if len(ids) else None


def value_counts(column: pa.ChunkedArray, keep: np.ndarray | None = None) -> dict[str, int]:
    """How many of the rows (those ``keep`` marks) hold each value of a
    dictionary-encoded column of text that is never null, by value in order."""
    codes, distinct = arrays.codes(column)
    if keep is not None:
        codes = codes[keep]
    counts = np.bincount(codes.astype(np.intp, copy=False), minlength=len(distinct))
    return {
        str(distinct[i]): int(counts[i])
        for i in sorted(range(len(distinct)), key=lambda i: str(distinct[i]))
        if counts[i]
    }
