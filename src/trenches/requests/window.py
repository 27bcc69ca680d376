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

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Select, func, select

from trenches.db import schema as t
from trenches.requests import stored
from trenches.requests.records import json_column
from trenches.tables import of as tables_of
from trenches.tables.arrays import decoded

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

    A window read with ``numbers_apart`` is a sample for distributions, as a drift
    check reads it: its rows come in no set order, and which request, row and time
    each row is (``request_id``, ``row``, ``received_at``) are not read (None).
    """

    #: Requests in the window.
    requests: int
    #: The input rows, one column per input (a request without a column: missing).
    inputs: pd.DataFrame
    request_id: np.ndarray | None  # object
    row: np.ndarray | None  # int64: the row's number in its request, from 0
    version_id: np.ndarray  # int64: the version that answered
    received_at: np.ndarray | None  # int64: µs since the epoch
    #: The label or value answered for the row (object); None when not logged.
    answer: np.ndarray
    #: The label of the newest feedback on the row that gave one (object), or None.
    label: np.ndarray
    #: With ``numbers_apart``: the floating-point inputs, left out of ``inputs`` and
    #: read a column at a time.
    numbers: NumberColumns | None = None
    #: Rows with a feedback label (0: ``label`` is None throughout).
    labelled: int = 0

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class _Numbers:
    """Where one part of a window keeps its floating-point inputs: a version's files,
    or the staged requests' rows already parsed."""

    rows: int
    names: frozenset[str]
    files: stored.WindowFiles | None = None
    frame: pd.DataFrame | None = None


class NumberColumns:
    """The floating-point inputs of a window, read one column at a time: what a
    distribution needs of a window too large to hold whole (ten million rows of twenty
    numbers are 1.6 GB; one column is 80 MB, and the next column reuses it). The rows
    come in no set order."""

    def __init__(self, names: tuple[str, ...], rows: int, parts: tuple[_Numbers, ...]) -> None:
        self._names, self._rows, self._parts = names, rows, parts

    @property
    def names(self) -> tuple[str, ...]:
        """The inputs held apart."""
        return self._names

    @property
    def rows(self) -> int:
        """The window's rows (each column has one value a row)."""
        return self._rows

    def read(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """Every row's value of the input ``name`` (NaN where a row has none), written
        into ``out`` when it holds enough (a buffer reused from column to column)."""
        target = out[: self.rows] if out is not None and len(out) >= self.rows else None
        if target is None:
            target = np.empty(self.rows, dtype=np.float64)
        at = 0
        for part in self._parts:
            if name not in part.names:
                target[at : at + part.rows] = np.nan
            elif part.frame is not None:
                target[at : at + part.rows] = part.frame[name].to_numpy(dtype=np.float64)
            else:
                assert part.files is not None
                start = at
                for values in stored.input_numbers(part.files, name):
                    target[at : at + len(values)] = values
                    at += len(values)
                if at - start != part.rows:
                    raise RuntimeError(f"the window's files gave {at - start} rows of {name!r}")
                continue
            at += part.rows
        return target


def read_window(
    conn: Connection,
    query: Select[Any],
    version_ids: Sequence[int],
    start: int | None,
    end: int | None,
    *,
    numbers_apart: bool = False,
) -> RequestWindow:
    """The window of the requests ``query`` selects (``served_requests`` rows of the
    versions ``version_ids`` received in ``[start, end)``), as columns, oldest first:
    the staged requests' rows read from their JSON, the moved ones' from the tables of
    their versions (:mod:`trenches.requests.stored`). With ``numbers_apart`` the
    inputs that are floating-point numbers in every version that has them are left
    out of ``inputs``, for :attr:`RequestWindow.numbers` to read a column at a time,
    and the window is a sample for distributions (:class:`RequestWindow`)."""
    from trenches.patterns.frames import no_gc

    r, f = t.served_requests.c, t.feedback.c
    query = query.where(r.shadow_of.is_(None))  # what callers asked (see stored._move)
    with no_gc():
        chosen = query.with_only_columns(r.id, r.request_id).subquery()
        (requests,) = conn.execute(select(func.count()).select_from(chosen)).one()
        feedback = conn.execute(
            select(chosen.c.id, f.row, f.label)
            .join(chosen, chosen.c.request_id == f.request_id)
            .where(f.label.is_not(None))
            .order_by(f.created_at, f.id)
        ).cursor.fetchall()
        # Of a sample for distributions, which request and row each is are read only
        # to place its feedback, and which time never.
        identity = _IDENTITY if not numbers_apart else ("id", "row") if feedback else ()
        found = stored.window_tables(conn, version_ids, start, end)
        staged = [
            (int(p.version_id[0]), _only(p, identity))
            for p in _staged(conn, query.where(r.inputs.is_not(None)))
            if len(p)
        ]
        apart = _apart(found, staged) if numbers_apart else frozenset()
        moved = [
            (
                version_id,
                _moved(version_id, stored.window_rows(files, apart, identity), most, identity),
                files,
            )
            for version_id, files, most in found
        ]
        moved = [(v, p, files) for v, p, files in moved if len(p)]
        numbers = None
        if numbers_apart:
            numbers = _number_columns(apart, moved, staged)
            staged = [(v, _without(p, apart)) for v, p in staged]
        moved_parts = [(v, p) for v, p, _ in moved]
        # The columns of the versions in the order of their ids, whichever rows are
        # moved: the window is the same before and after a move.
        parts = [p for _, p in sorted(moved_parts + staged, key=lambda vp: vp[0])]
        merged = _merged(parts, identity)
        label, labelled = _labels(feedback, merged.id, merged.row, len(merged))
        return RequestWindow(
            requests=int(requests),
            inputs=merged.inputs,
            request_id=merged.request_id,
            row=None if numbers_apart else merged.row,
            version_id=merged.version_id,
            received_at=merged.received_at,
            answer=merged.answer,
            label=label,
            numbers=numbers,
            labelled=labelled,
        )


def _apart(
    found: Sequence[tuple[int, stored.WindowFiles, int]], staged: Sequence[tuple[int, _Part]]
) -> frozenset[str]:
    """The inputs that are floating-point numbers wherever the window has them."""
    floats: set[str] = set()
    others: set[str] = set()
    for _, files, _ in found:
        f, o = files.floating()
        floats |= f
        others |= o
    for _, part in staged:
        for name, dtype in part.inputs.dtypes.items():
            (floats if dtype == np.float64 else others).add(str(name))
    return frozenset(floats - others)


def _number_columns(
    apart: frozenset[str],
    moved: Sequence[tuple[int, _Part, stored.WindowFiles]],
    staged: Sequence[tuple[int, _Part]],
) -> NumberColumns:
    """The window's numbers set apart, part by part (any order: a distribution)."""
    parts = [_Numbers(len(p), apart & files.floating()[0], files=files) for _, p, files in moved]
    for _, p in staged:
        names = apart & {str(c) for c in p.inputs.columns}
        parts.append(_Numbers(len(p), frozenset(names), frame=p.inputs[sorted(names)]))
    rows = sum(p.rows for p in parts)
    return NumberColumns(tuple(sorted(apart)), rows, tuple(parts))


def _without(part: _Part, names: frozenset[str]) -> _Part:
    """The part with the inputs ``names`` dropped."""
    drop = [c for c in part.inputs.columns if c in names]
    if not drop:
        return part
    return dataclasses.replace(part, inputs=part.inputs.drop(columns=drop))


#: What says which request, row and time each row of a window is.
_IDENTITY = ("id", "request_id", "row", "received_at")


@dataclass(frozen=True)
class _Part:
    """Rows of a window from one source, with the id of each row's request (what says
    which request, row and time each is: None where not read)."""

    inputs: pd.DataFrame
    version_id: np.ndarray
    answer: np.ndarray
    id: np.ndarray | None = None
    request_id: np.ndarray | None = None
    row: np.ndarray | None = None
    received_at: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.answer)


def _only(part: _Part, identity: Sequence[str]) -> _Part:
    """The part without what says which request, row and time each is, but
    ``identity``."""
    dropped: dict[str, Any] = {k: None for k in _IDENTITY if k not in identity}
    return dataclasses.replace(part, **dropped)


def _staged(conn: Connection, query: Select[Any]) -> list[_Part]:
    """The rows of the staged requests ``query`` selects, made from their JSON as a
    move would make them: one part a version."""

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
        parts.append(_moved(version_id, iter([data]), data.num_rows, _IDENTITY))
    return parts


def _moved(version_id: int, parts: Iterator[pa.Table], most: int, identity: Sequence[str]) -> _Part:
    """The rows of a version's table of input rows, read part by part (a file at a
    time) into arrays made once for at most ``most`` rows: the Arrow memory of one part
    is reused by the next, and no input column is copied a second time on its way to
    pandas. Request ids and answers are made Python objects once per distinct value.
    Of what says which request, row and time each row is, only ``identity``."""
    import pandas as pd
    import pyarrow as pa

    numbers: dict[str, np.ndarray] = {}  # float input columns, filled in place
    others: dict[str, list[np.ndarray]] = {}  # the other input columns, part by part
    names: list[str] = []
    ints = {
        name: np.empty(most, dtype=np.int64)
        for name in ("id", "row", "received_at")
        if name in identity
    }
    answers: list[np.ndarray] = []
    request_ids: list[np.ndarray] = []
    k = 0
    for part in parts:
        n = part.num_rows
        if not n:
            continue
        column = part.column("inputs") if "inputs" in part.column_names else None
        for j, field in enumerate(column.type if column is not None else []):
            assert column is not None
            if not names or len(names) <= j:
                names.append(field.name)
            children = [chunk.field(j) for chunk in column.chunks]
            if pa.types.is_floating(field.type):
                target = numbers.setdefault(field.name, np.empty(most, dtype=np.float64))
                _fill(target, k, children)
            else:
                chunked = pa.chunked_array(children, type=field.type)
                others.setdefault(field.name, []).append(
                    np.asarray(chunked.to_numpy(zero_copy_only=False))
                )
        for name, target in ints.items():
            _fill(target, k, part.column(name).chunks)
        answers.append(decoded(part.column("answer")))
        if "request_id" in identity:
            request_ids.append(decoded(part.column("request_id")))
        k += n
    inputs = pd.DataFrame(
        {
            name: numbers[name][:k] if name in numbers else np.concatenate(others[name])
            for name in names
        },
        columns=names,
        index=pd.RangeIndex(k),  # rows even when every input was left out
        copy=False,
    )
    answer = np.concatenate(answers) if answers else np.zeros(0, dtype=object)
    if answer.dtype != object:
        answer = answer.astype(object)
        answer[pd.isna(answer)] = None
    request_id = None
    if "request_id" in identity:
        request_id = np.concatenate(request_ids) if request_ids else np.zeros(0, dtype=object)
    return _Part(
        inputs=inputs,
        version_id=np.full(k, version_id, dtype=np.int64),
        answer=answer,
        id=ints["id"][:k] if "id" in ints else None,
        request_id=request_id,
        row=ints["row"][:k] if "row" in ints else None,
        received_at=ints["received_at"][:k] if "received_at" in ints else None,
    )


def _fill(target: np.ndarray, at: int, chunks: Sequence[pa.Array]) -> None:
    """Copy the chunks' values into ``target`` from ``at`` on (nulls as NaN)."""
    for chunk in chunks:
        values = chunk.to_numpy(zero_copy_only=False)
        target[at : at + len(values)] = values
        at += len(values)


def _merged(parts: list[_Part], identity: Sequence[str]) -> _Part:
    """The rows of all parts in the order their requests were received (then logged),
    each request's rows in their order; without their times (``identity`` without
    ``received_at``), the parts one after the other."""
    import pandas as pd

    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        none = np.zeros(0, dtype=object)
        return _only(_Part(pd.DataFrame(), empty, none, empty, none, empty, empty), identity)
    if len(parts) == 1:
        merged = parts[0]
    else:

        def joined(name: str) -> Any:
            arrays = [getattr(p, name) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)

        merged = _Part(
            inputs=pd.concat([p.inputs for p in parts], ignore_index=True),
            **{k: joined(k) for k in ("version_id", "answer", *_IDENTITY)},
        )
    ids, received, row = merged.id, merged.received_at, merged.row
    if ids is None or received is None or row is None:
        return merged
    later = (received[1:] > received[:-1]) | (
        (received[1:] == received[:-1])
        & ((ids[1:] > ids[:-1]) | ((ids[1:] == ids[:-1]) & (row[1:] > row[:-1])))
    )
    if later.all():
        return merged
    order = np.lexsort((row, ids, received))
    assert merged.request_id is not None
    return _Part(
        inputs=merged.inputs.iloc[order].reset_index(drop=True),
        version_id=merged.version_id[order],
        answer=merged.answer[order],
        id=ids[order],
        request_id=merged.request_id[order],
        row=row[order],
        received_at=received[order],
    )


def _labels(
    feedback: Sequence[Any], ids: np.ndarray | None, row: np.ndarray | None, total: int
) -> tuple[np.ndarray, int]:
    """The label of the newest labelled feedback on each of ``total`` rows
    (``feedback``: the request's id, row, label text; oldest first), None for rows
    without one; and how many rows have one. ``ids`` and ``row``: each row's request
    and number in it, a request's rows together (read whenever there is feedback)."""
    import pandas as pd

    out = np.full(total, None, dtype=object)
    if not feedback or not total:
        return out, 0
    assert ids is not None and row is not None
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
    return out, len(newest)


# --- a window in parts -----------------------------------------------------------------


@dataclass(frozen=True)
class WindowLabels:
    """The labelled feedback of a window's requests, oldest first: the request's id,
    the row, the label."""

    ids: np.ndarray  # int64
    rows: np.ndarray  # int64
    labels: np.ndarray  # object

    def __len__(self) -> int:
        return len(self.ids)

    def of(self, ids: np.ndarray | None, rows: np.ndarray | None, total: int) -> tuple[Any, int]:
        """The label of the newest feedback on each of ``total`` rows (each row known
        by its request's id and its number in it; in any order), None where there is
        none; and how many rows have one."""
        import pandas as pd

        out = np.full(total, None, dtype=object)
        if not len(self) or not total:
            return out, 0
        assert ids is not None and rows is not None
        given = pd.MultiIndex.from_arrays([self.ids, self.rows])
        newest = ~given.duplicated(keep="last")
        at = given[newest].get_indexer(pd.MultiIndex.from_arrays([ids, rows]))
        found = at >= 0
        out[found] = self.labels[newest][at[found]]
        return out, int(found.sum())


@dataclass(frozen=True)
class WindowPart:
    """Some of the files of one version's input rows in a window: what a worker reads
    by itself (:meth:`trenches.requests.log.Requests.part_windows`)."""

    version_id: int
    start: int | None
    end: int | None
    files: tuple[str, ...]
    #: The rows the files hold (at least as many as are in the window).
    rows: int


@dataclass(frozen=True)
class WindowParts:
    """A window of the request log as parts to read one at a time, as a sample for
    distributions (:class:`RequestWindow`'s ``numbers_apart``): the parts of files,
    and the rows of requests still staged (read already: the newest, a few at most),
    in the order a window read whole holds its rows."""

    requests: int
    pieces: tuple[WindowPart | RequestWindow, ...]
    feedback: WindowLabels
    #: The inputs a window read whole would hold apart (floating-point wherever met).
    apart: frozenset[str]

    @property
    def rows(self) -> int:
        """The rows of the window at most."""
        return sum(p.rows if isinstance(p, WindowPart) else len(p) for p in self.pieces)


def read_parts(
    conn: Connection,
    query: Select[Any],
    version_ids: Sequence[int],
    start: int | None,
    end: int | None,
    most: int,
) -> WindowParts:
    """The window :func:`read_window` reads, as parts of about ``most`` rows at most
    (a file is not cut), in one read of the database: the files are listed and the
    staged requests read together, so that no request is in both or neither."""
    from trenches.patterns.frames import no_gc

    r, f = t.served_requests.c, t.feedback.c
    query = query.where(r.shadow_of.is_(None))  # what callers asked (see stored._move)
    with no_gc():
        chosen = query.with_only_columns(r.id, r.request_id).subquery()
        (requests,) = conn.execute(select(func.count()).select_from(chosen)).one()
        given = conn.execute(
            select(chosen.c.id, f.row, f.label)
            .join(chosen, chosen.c.request_id == f.request_id)
            .where(f.label.is_not(None))
            .order_by(f.created_at, f.id)
        ).cursor.fetchall()
        ids, rows, texts = zip(*given, strict=True) if given else ((), (), ())
        feedback = WindowLabels(
            np.array(ids, dtype=np.int64),
            np.array(rows, dtype=np.int64),
            np.fromiter(json_column(texts), dtype=object, count=len(texts)),
        )
        identity = ("id", "row") if given else ()
        found = stored.window_tables(conn, version_ids, start, end)
        staged = [
            (int(p.version_id[0]), _only(p, identity))
            for p in _staged(conn, query.where(r.inputs.is_not(None)))
            if len(p)
        ]
    pieces: list[tuple[int, WindowPart | RequestWindow]] = []
    for version_id, files, _ in found:
        group: list[str] = []
        held = 0
        for name in files.files:
            n = files.store.metadata(name).num_rows
            if group and held + n > most:
                pieces.append((version_id, WindowPart(version_id, start, end, tuple(group), held)))
                group, held = [], 0
            group.append(name)
            held += n
        pieces.append((version_id, WindowPart(version_id, start, end, tuple(group), held)))
    pieces += [(v, _sample(p, feedback)) for v, p in staged]
    pieces.sort(key=lambda vp: vp[0])  # stable: a version's moved rows before its staged
    return WindowParts(int(requests), tuple(p for _, p in pieces), feedback, _apart(found, staged))


def part_windows(
    conn: Connection, part: WindowPart, feedback: WindowLabels, rows: int
) -> Iterator[RequestWindow]:
    """The rows of a part of a window, about ``rows`` at a time, each batch a sample
    for distributions with every input in ``inputs``."""
    files = stored.WindowFiles(tables_of(conn), part.start, part.end, part.files)
    identity = ("id", "row") if len(feedback) else ()
    for batch in stored.window_rows(files, frozenset(), identity, rows):
        if batch.num_rows:
            yield _sample(
                _moved(part.version_id, iter([batch]), batch.num_rows, identity), feedback
            )


def _sample(part: _Part, feedback: WindowLabels) -> RequestWindow:
    """Rows of a window as a sample for distributions, with their labels."""
    label, labelled = feedback.of(part.id, part.row, len(part))
    return RequestWindow(
        requests=0,
        inputs=part.inputs,
        request_id=None,
        row=None,
        version_id=part.version_id,
        received_at=None,
        answer=part.answer,
        label=label,
        labelled=labelled,
    )
