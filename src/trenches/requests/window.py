"""A window of the request log read as columns: one entry per input row of the
requests in it. The rows of moved requests come from the tables of input rows of
their versions (:mod:`trenches.requests.stored`), read by columns; those of staged
requests from one query of their JSON; the labels from one query of their feedback.

Of staged requests, each JSON column (inputs, outputs, labels) is decoded in one parse;
the inputs of requests that share their columns become one DataFrame in one construction; the
rest (which request, which row, when, what was answered, what feedback said) are NumPy
arrays made by repeating and indexing, not by a loop over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Select, func, select

from trenches.db import schema as t
from trenches.requests.records import json_column

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class RequestWindow:
    """Served requests of a window as columns: the input rows in the order they were
    received, and for each row the request, its number in the request, the version
    that answered, when, the answer, and the newest feedback label.

    Requests whose inputs were not logged (their ``inputs`` hold an error) have no
    rows; ``requests`` counts them still.
    """

    #: Requests in the window.
    requests: int
    #: The input rows, one column per input (a request without a column: missing).
    inputs: pd.DataFrame
    request_id: np.ndarray  # object
    row: np.ndarray  # int64: the row's number in its request, from 0
    version_id: np.ndarray  # int64: the version that answered
    received_at: np.ndarray  # int64: µs since the epoch
    #: The label or value answered for the row (object); None when not logged.
    answer: np.ndarray
    #: The label of the newest feedback on the row that gave one (object), or None.
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)


def read_window(
    conn: Connection,
    query: Select[Any],
    version_ids: Sequence[int],
    start: int | None,
    end: int | None,
) -> RequestWindow:
    """The window of the requests ``query`` selects (``served_requests`` rows of the
    versions ``version_ids`` received in ``[start, end)``), as columns, oldest first:
    the staged requests' rows read from their JSON, the moved ones' from the tables of
    their versions (:mod:`trenches.requests.stored`)."""
    from trenches.patterns.frames import no_gc
    from trenches.requests import stored

    r, f = t.served_requests.c, t.feedback.c
    with no_gc():
        moved = [
            (version_id, _moved(part, version_id))
            for version_id, part in stored.window_tables(conn, version_ids, start, end)
        ]
        staged = [
            (int(p.version_id[0]), p)
            for p in _staged(conn, query.where(r.inputs.is_not(None)))
            if len(p.id)
        ]
        # The columns of the versions in the order of their ids, whichever rows are
        # moved: the window is the same before and after a move.
        parts = [p for _, p in sorted(moved + staged, key=lambda vp: vp[0])]
        merged = _merged(parts)
        chosen = query.with_only_columns(r.id, r.request_id).subquery()
        (requests,) = conn.execute(select(func.count()).select_from(chosen)).one()
        labelled = conn.execute(
            select(chosen.c.id, f.row, f.label)
            .join(chosen, chosen.c.request_id == f.request_id)
            .where(f.label.is_not(None))
            .order_by(f.created_at, f.id)
        ).cursor.fetchall()
        return RequestWindow(
            requests=int(requests),
            inputs=merged.inputs,
            request_id=merged.request_id,
            row=merged.row,
            version_id=merged.version_id,
            received_at=merged.received_at,
            answer=merged.answer,
            label=_labels(labelled, merged.id, merged.row),
        )


@dataclass(frozen=True)
class _Part:
    """Rows of a window from one source, with the id of each row's request."""

    id: np.ndarray
    inputs: pd.DataFrame
    request_id: np.ndarray
    row: np.ndarray
    version_id: np.ndarray
    received_at: np.ndarray
    answer: np.ndarray


def _staged(conn: Connection, query: Select[Any]) -> list[_Part]:
    """The rows of the staged requests ``query`` selects, made from their JSON as a
    move would make them: one part a version."""
    from trenches.requests import stored

    r = t.served_requests.c
    rows = conn.execute(
        query.with_only_columns(
            r.id, r.request_id, r.version_id, r.received_at, r.inputs, r.outputs
        ).order_by(r.id)
    ).cursor.fetchall()
    by_version: dict[int, list[Any]] = {}
    for row in rows:
        by_version.setdefault(int(row[2]), []).append(row)
    parts = []
    for version_id, found in sorted(by_version.items()):
        ids, request_ids, _, received, inputs, outputs = (list(c) for c in zip(*found, strict=True))
        _, data = stored.input_rows(conn, version_id, ids, request_ids, received, inputs, outputs)
        parts.append(_moved(data, version_id))
    return parts


def _moved(part: pa.Table, version_id: int) -> _Part:
    """The rows of a version's table of input rows, as read: each input column one
    NumPy array (no copy into a block of them all), the request ids and answers made
    Python objects once per distinct value."""
    import pandas as pd
    import pyarrow as pa

    column = part.column("inputs")
    struct_type = column.type
    children = [
        pa.chunked_array([chunk.field(j) for chunk in column.chunks], type=f.type)
        for j, f in enumerate(struct_type)
    ]
    names = [f.name for f in struct_type]
    inputs = pa.Table.from_arrays(children, names=names).to_pandas(split_blocks=True)
    answer = _objects(part.column("answer"))
    if answer.dtype != object:
        answer = answer.astype(object)
        answer[pd.isna(answer)] = None
    n = part.num_rows
    return _Part(
        id=part.column("id").to_numpy(),
        inputs=inputs,
        request_id=_objects(part.column("request_id")),
        row=part.column("row").to_numpy().astype(np.int64),
        version_id=np.full(n, version_id, dtype=np.int64),
        received_at=part.column("received_at").to_numpy(),
        answer=answer,
    )


def _objects(column: pa.ChunkedArray) -> np.ndarray:
    """A column as a NumPy array; a dictionary-encoded one as objects, each distinct
    value made a Python object once (nulls None)."""
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


def _merged(parts: list[_Part]) -> _Part:
    """The rows of all parts in the order their requests were received (then logged),
    each request's rows in their order."""
    import pandas as pd

    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        none = np.zeros(0, dtype=object)
        return _Part(empty, pd.DataFrame(), none, empty, empty, empty, none)
    if len(parts) == 1:
        merged = parts[0]
    else:
        merged = _Part(
            id=np.concatenate([p.id for p in parts]),
            inputs=pd.concat([p.inputs for p in parts], ignore_index=True),
            request_id=np.concatenate([p.request_id for p in parts]),
            row=np.concatenate([p.row for p in parts]),
            version_id=np.concatenate([p.version_id for p in parts]),
            received_at=np.concatenate([p.received_at for p in parts]),
            answer=np.concatenate([p.answer for p in parts]),
        )
    ids, received, row = merged.id, merged.received_at, merged.row
    later = (received[1:] > received[:-1]) | (
        (received[1:] == received[:-1])
        & ((ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (row[1:] > row[:-1])))
    )
    if later.all():
        return merged
    order = np.lexsort((row, ids, received))
    return _Part(
        id=ids[order],
        inputs=merged.inputs.iloc[order].reset_index(drop=True),
        request_id=merged.request_id[order],
        row=row[order],
        version_id=merged.version_id[order],
        received_at=received[order],
        answer=merged.answer[order],
    )


def _labels(feedback: Sequence[Any], ids: np.ndarray, row: np.ndarray) -> np.ndarray:
    """The label of the newest labelled feedback on each row (``feedback``: the
    request's id, row, label text; oldest first), None for rows without one. ``ids``
    and ``row``: each row's request and number in it, a request's rows together."""
    import pandas as pd

    total = len(ids)
    out = np.full(total, None, dtype=object)
    if not feedback or not total:
        return out
    fb_ids, rows, texts = zip(*feedback, strict=True)
    # Each request's first row, and its number of rows.
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    counts = np.diff(np.r_[first, total])
    which = pd.Index(ids[first]).get_indexer(np.array(fb_ids, dtype=np.int64))
    at_row = np.array(rows, dtype=np.int64)
    found = which >= 0
    inside = found & (at_row >= 0) & (at_row < np.where(found, counts[which], 0))
    at = (first[which] + at_row)[inside]
    labels = np.fromiter(json_column(texts), dtype=object, count=len(texts))[inside]
    # The newest feedback of a row wins: the last of its position.
    newest = len(at) - 1 - np.unique(at[::-1], return_index=True)[1]
    out[at[newest]] = labels[newest]
    return out
