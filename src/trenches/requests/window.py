"""A window of the request log read as columns: one entry per input row of the
requests in it, built from one query of the requests and one of their feedback.

Each JSON column (inputs, outputs, labels) is decoded in one parse; the inputs of
requests that share their columns become one DataFrame in one construction; the
rest (which request, which row, when, what was answered, what feedback said) are NumPy
arrays made by repeating and indexing, not by a loop over rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Select, select

from trenches.db import schema as t
from trenches.requests.records import json_column

if TYPE_CHECKING:
    import pandas as pd


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


def read_window(conn: Connection, query: Select[Any]) -> RequestWindow:
    """The window of the requests ``query`` selects (``served_requests`` rows, oldest
    first), as columns."""
    r, f = t.served_requests.c, t.feedback.c
    rows = conn.execute(
        query.with_only_columns(r.request_id, r.version_id, r.inputs, r.outputs, r.received_at)
    ).cursor.fetchall()
    chosen = query.with_only_columns(r.request_id).subquery()
    labelled = conn.execute(
        select(f.request_id, f.row, f.label)
        .where(f.request_id.in_(select(chosen.c.request_id)), f.label.is_not(None))
        .order_by(f.created_at, f.id)
    ).cursor.fetchall()
    from trenches.patterns.frames import no_gc

    with no_gc():
        columns = list(zip(*rows, strict=True)) if rows else [()] * 5
        ids, versions, inputs, outputs, received = columns
        blocks, counts = _blocks(json_column(inputs))
        request_id = np.array(ids, dtype=object)
        starts = np.cumsum(counts) - counts
        return RequestWindow(
            requests=len(rows),
            inputs=_frame(blocks, counts),
            request_id=np.repeat(request_id, counts),
            row=np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts),
            version_id=np.repeat(np.array(versions, dtype=np.int64), counts),
            received_at=np.repeat(np.array(received, dtype=np.int64), counts),
            answer=_answers(json_column(outputs), counts),
            label=_labels(labelled, request_id, starts, counts),
        )


Block = tuple[tuple[str, ...], list[list[Any]]]


def _blocks(inputs: list[Any]) -> tuple[list[Block], np.ndarray]:
    """Each request's columns and data rows, and its number of rows (0 for a request
    whose inputs hold no columns)."""
    blocks: list[Block] = []
    for d in inputs:
        columns = tuple(d.get("columns") or ())
        data = (d.get("data") or []) if columns else []
        blocks.append((columns, data))
    counts = np.fromiter((len(data) for _, data in blocks), dtype=np.int64, count=len(blocks))
    return blocks, counts


def _frame(blocks: list[Block], counts: np.ndarray) -> pd.DataFrame:
    """The input rows of all requests as one frame: one construction per set of
    columns (one in all, usually), put back in the order of the requests."""
    import pandas as pd

    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    for columns, data in blocks:
        if data:
            groups.setdefault(columns, []).append(data)
    frames = [
        pd.DataFrame(list(itertools.chain.from_iterable(parts)), columns=list(columns))
        for columns, parts in groups.items()
    ]
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0]
    # Requests with other columns: the frames are stacked group after group, then the
    # rows are put back in the order they were received.
    group = {columns: k for k, columns in enumerate(groups)}
    of_row = np.repeat(np.array([group.get(c, -1) for c, _ in blocks]), counts)
    stacked = pd.concat(frames, ignore_index=True)
    order = np.argsort(np.argsort(of_row, kind="stable"), kind="stable")
    return stacked.iloc[order].reset_index(drop=True)


def _answers(outputs: list[Any], counts: np.ndarray) -> np.ndarray:
    """The answer to each row: the labels (or values) each request answered, None for
    the rows of a request whose answers were not logged whole."""
    per_request = []
    for d, n in zip(outputs, counts.tolist(), strict=True):
        answer = d.get("labels") or d.get("values") or []
        per_request.append(answer if len(answer) == n else itertools.repeat(None, n))
    total = int(counts.sum())
    flat = itertools.chain.from_iterable(per_request)
    return np.fromiter(flat, dtype=object, count=total)


def _labels(
    feedback: Sequence[Any], request_id: np.ndarray, starts: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """The label of the newest labelled feedback on each row (``feedback``: request
    id, row, label text; oldest first), None for rows without one."""
    import pandas as pd

    total = int(counts.sum())
    out = np.full(total, None, dtype=object)
    if not feedback or not total:
        return out
    rids, rows, texts = zip(*feedback, strict=True)
    which = pd.Index(request_id).get_indexer(list(rids))
    row = np.array(rows, dtype=np.int64)
    found = which >= 0
    inside = found & (row >= 0) & (row < np.where(found, counts[which], 0))
    at = (starts[which] + row)[inside]
    labels = np.fromiter(json_column(texts), dtype=object, count=len(texts))[inside]
    # The newest feedback of a row wins: the last of its position.
    newest = len(at) - 1 - np.unique(at[::-1], return_index=True)[1]
    out[at[newest]] = labels[newest]
    return out
