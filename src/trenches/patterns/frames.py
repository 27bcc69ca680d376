"""A dataset's patterns read as DataFrames, column-wise: which patterns belong to it at
an instant (the clauses a snapshot is rebuilt from), their ids, and their inputs,
labels and provenance."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import select

from trenches.db import schema as t
from trenches.db.engine import id_in, read
from trenches.errors import InvalidInput
from trenches.names import SPLITS
from trenches.patterns import codec, columnar
from trenches.patterns import inputs as inp
from trenches.tables import arrays
from trenches.tables.arrays import decoded

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from trenches.patterns.datasets import Dataset


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk step (imports and reads)."""
    # Building millions of small objects triggers the cyclic collector over and over;
    # nothing made here forms cycles, so it is paused for the bulk step.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def membership(
    dataset_id: int,
    *,
    as_of: int | None,
    include_inactive: bool = False,
    max_id: int | None = None,
    sources: Sequence[str] | None = None,
) -> list[Any]:
    """The WHERE clauses that select a dataset's patterns as they were at ``as_of``.

    A pattern belongs at ``as_of`` when it was created by then and not yet
    deactivated; ``max_id`` leaves out patterns imported later with a backdated
    ``created_at``. This is all a snapshot needs to be rebuilt.
    """
    p = t.patterns.c
    where: list[Any] = [p.dataset_id == dataset_id]
    if as_of is not None:
        where += [p.created_at <= as_of, (p.deactivated_at.is_(None)) | (p.deactivated_at > as_of)]
    elif not include_inactive:
        where.append(p.deactivated_at.is_(None))
    if max_id is not None:
        where.append(p.id <= max_id)
    if sources:
        where.append(p.source.in_(list(sources)))
    return where


def member_ids(engine: Any, where: list[Any], split: str | None = None) -> np.ndarray:
    """The ids of the patterns ``where`` selects (of one split), ascending: one indexed
    query, no labels, no join with the imports."""
    p = t.patterns.c
    where = list(where)
    if split is not None:
        if split not in SPLITS:
            raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
        where.append(p.split == SPLITS.index(split))
    with read(engine) as conn:
        rows = conn.execute(select(p.id).where(*where).order_by(p.id)).cursor.fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def ids_of(dataset: Dataset, members: Members, split: str | None = None) -> np.ndarray:
    """The ids of the dataset's patterns ``members`` selects (of one split), ascending:
    of a columnar dataset from its table's id (and split) columns, with the
    deactivated ones from the database; of an earlier release's, one indexed query."""
    if not dataset.columnar:
        where = membership(
            dataset.id,
            as_of=members.as_of,
            include_inactive=members.include_inactive,
            max_id=members.max_id,
            sources=members.sources,
        )
        return member_ids(dataset.engine, where, split)
    ids, _ = _members(dataset, members, split, with_labels=False)
    return ids


def ids_and_labels(
    dataset: Dataset, members: Members, split: str | None = None
) -> tuple[np.ndarray, pd.Categorical]:
    """:func:`ids_of` and :func:`stored_labels` of those ids, of a columnar dataset
    from one read of its table's id and label columns."""
    if not dataset.columnar or dataset.schema is None:
        ids = ids_of(dataset, members, split)
        return ids, stored_labels(dataset, ids, split)
    ids, labels = _members(dataset, members, split, with_labels=True)
    assert labels is not None
    return ids, labels


def _members(
    dataset: Dataset, members: Members, split: str | None, *, with_labels: bool
) -> tuple[np.ndarray, pd.Categorical | None]:
    """The ids ``members`` selects of a columnar dataset, ascending, and with
    ``with_labels`` their labels in that order."""
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
    with read(dataset.engine) as conn:
        data = columnar.read(
            conn,
            dataset.id,
            columns=["pattern_id", "label"] if with_labels else ["pattern_id"],
            split=None if split is None else SPLITS.index(split),
            max_id=members.max_id,
            as_of=members.as_of,
            sources=members.sources,
            dictionary=("label",) if with_labels else (),
        )
        off = (
            []
            if members.include_inactive and members.as_of is None
            else deactivations(conn, dataset.id)
        )
    if data is None:
        empty = pd.Categorical([]) if with_labels else None
        return np.zeros(0, dtype=np.int64), empty
    found: np.ndarray = data.column("pattern_id").to_numpy()
    order = None if arrays.is_ascending(found) else np.argsort(found, kind="stable")
    if order is not None:
        found = found[order]
    if not off:
        keep = None
    else:
        when = _deactivated_at(found, off)
        keep = when > members.as_of if members.as_of is not None else when == _NEVER
        if keep.all():
            keep = None
    ids = found if keep is None else found[keep]
    if not with_labels:
        return ids, None
    codes, distinct = arrays.codes(data.column("label"))
    if order is not None:
        codes = codes[order]
    if keep is not None:
        codes = codes[keep]
    return ids, pd.Categorical.from_codes(codes, categories=pd.Index(distinct, dtype=object))


@dataclass(frozen=True)
class Members:
    """Which of a dataset's patterns a read takes (the clauses of :func:`membership`):
    those active now, or at ``as_of``; with ``include_inactive`` the deactivated too;
    a snapshot's members also by ``max_id`` and ``sources``."""

    as_of: int | None = None
    include_inactive: bool = False
    max_id: int | None = None
    sources: Sequence[str] | None = None


def read_patterns(
    dataset: Dataset,
    members: Members | None = None,
    *,
    split: str | None = None,
    ids: Sequence[int] | np.ndarray | None = None,
    with_inputs: bool = True,
    full_info: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read patterns column-wise: (inputs and label, provenance), both by pattern id.

    ``members`` selects them (default: the active ones; ``ids`` picks some, active or
    not). With ``full_info=False`` the provenance holds only split, source and
    created_at, which is all training needs, and the read skips the join with the
    imports.
    """
    members = members or Members()
    if dataset.columnar:
        columns = _columnar_columns(dataset, members, split, ids, with_inputs, full_info)
        return _frames(dataset, columns, with_inputs, full_info)
    p = t.patterns.c
    b = t.import_batches.c
    where = membership(
        dataset.id,
        as_of=members.as_of,
        include_inactive=members.include_inactive or ids is not None,
        max_id=members.max_id,
        sources=members.sources,
    )
    if split is not None:
        if split not in SPLITS:
            raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
        where.append(p.split == SPLITS.index(split))
    names = ["id", "split", "source", "label", "created_at"]
    cols: list[Any] = [p.id, p.split, p.source, p.label, p.created_at]
    if full_info:
        names += ["deactivated_at", "replaces_id", "batch_id", "labelled_by", "tags"]
        cols += [p.deactivated_at, p.replaces_id, p.batch_id, b.labelled_by, p.tags]
    if with_inputs:
        names += ["num", "obj"]
        cols += [p.num, p.obj]
    source_table = (
        t.patterns.join(t.import_batches, p.batch_id == b.id) if full_info else t.patterns
    )
    query = select(*cols).select_from(source_table).where(*where).order_by(p.id)
    rows: list[Any] = []
    # Many small objects and no cycles: the collector would only rescan the caller's heap.
    with read(dataset.engine) as conn, no_gc():
        # Rows come straight from the driver's cursor: the values need no conversion,
        # and building a SQLAlchemy Row for each of a million patterns is half the read.
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            for start in range(0, len(wanted), 100_000):
                part = wanted[start : start + 100_000]
                clause = id_in(conn.dialect.name, p.id, part)
                rows += conn.execute(query.where(clause)).cursor.fetchall()
        else:
            rows = list(conn.execute(query).cursor.fetchall())
    with no_gc():
        columns = (
            dict(zip(names, zip(*rows, strict=True), strict=True))
            if rows
            else {n: () for n in names}
        )
    return _frames(dataset, columns, with_inputs, full_info)


def splits_of(dataset: Dataset, ids: np.ndarray) -> list[tuple[str | None, np.ndarray]]:
    """``ids`` (ascending, unique) by split, each part ascending: of a columnar dataset
    from its table's two narrow columns; of an earlier release's, as one part of no
    split named (its rows are read by id alone)."""
    if not len(ids):
        return []
    if not dataset.columnar or dataset.schema is None:
        return [(None, ids)]
    with read(dataset.engine) as conn:
        grouped = columnar.by_split(conn, dataset.id, ids)
    parts: list[tuple[str | None, np.ndarray]] = [(SPLITS[c], part) for c, part in grouped]
    found = sum(len(part) for _, part in grouped)
    if found != len(ids):  # not the dataset's: a read names them
        held = np.concatenate([part for _, part in grouped]) if grouped else ids[:0]
        parts.append((None, ids[~np.isin(ids, held)]))
    return parts


def stored_labels(dataset: Dataset, ids: np.ndarray, split: str | None = None) -> pd.Categorical:
    """The labels of the patterns ``ids`` (ascending, unique, each one of the
    dataset's, of ``split`` when given), as stored (text), in that order: a
    categorical, read from the dataset's table as codes without a Python string per
    pattern."""
    if not dataset.columnar or dataset.schema is None:
        frame, _ = read_patterns(dataset, ids=ids.tolist(), full_info=False, with_inputs=False)
        values = np.asarray(frame[dataset.label_column].to_numpy())
        return pd.Categorical(inp.label_to_text(values, dataset.label_type or "string"))
    with read(dataset.engine) as conn:
        data = columnar.read(
            conn,
            dataset.id,
            columns=["pattern_id", "label"],
            ids=ids,
            split=None if split is None else SPLITS.index(split),
            dictionary=("label",),
        )
    if data is None or data.num_rows != len(ids):
        found = 0 if data is None else data.num_rows
        raise InvalidInput(
            f"{len(ids) - found} of the {len(ids)} patterns are not in dataset {dataset.name!r}"
        )
    codes, distinct = arrays.codes(data.column("label"))
    found_ids = data.column("pattern_id").to_numpy()
    if not arrays.is_ascending(found_ids):
        codes = codes[np.argsort(found_ids, kind="stable")]
    return pd.Categorical.from_codes(codes, categories=pd.Index(distinct, dtype=object))


def _frames(
    dataset: Dataset, columns: dict[str, Any], with_inputs: bool, full_info: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(inputs and label, provenance) from the columns a read gathered."""
    index = pd.Index(np.array(columns["id"], dtype=np.int64), name="pattern_id")
    info_columns: dict[str, Any] = {
        "split": pd.Categorical.from_codes(
            np.array(columns["split"], dtype=np.int8), categories=list(SPLITS)
        ),
        "source": np.array(columns["source"], dtype=object),
        "created_at": pd.to_datetime(
            np.array(columns["created_at"], dtype=np.int64), unit="us", utc=True
        ),
    }
    if full_info:
        info_columns.update(
            {
                "labelled_by": np.array(columns["labelled_by"], dtype=object),
                "batch_id": np.array(columns["batch_id"], dtype=np.int64),
                "deactivated_at": pd.to_datetime(
                    pd.array(list(columns["deactivated_at"]), dtype="Int64"), unit="us", utc=True
                ),
                "replaces_id": pd.array(list(columns["replaces_id"]), dtype="Int64"),
                "tags": [orjson.loads(x) if x else [] for x in columns["tags"]],
            }
        )
        order = [
            "split",
            "source",
            "labelled_by",
            "batch_id",
            "created_at",
            "deactivated_at",
            "replaces_id",
            "tags",
        ]
        info_columns = {k: info_columns[k] for k in order}
    info = pd.DataFrame(info_columns, index=index)
    if not with_inputs:
        labels = inp.labels_from_text(list(columns["label"]), dataset.label_type)
        return pd.DataFrame({dataset.label_column: labels}, index=index), info
    if dataset.schema is None:
        frame = pd.DataFrame(index=index)
    elif "inputs_frame" in columns:
        frame = columns["inputs_frame"].reset_index(drop=True)
        frame.index = index
    else:
        frame = codec.decode(dataset.schema, columns["num"], columns["obj"])
        frame.index = index
    frame[dataset.label_column] = inp.labels_from_text(list(columns["label"]), dataset.label_type)
    return frame, info


def _columnar_columns(
    dataset: Dataset,
    members: Members,
    split: str | None,
    ids: Sequence[int] | np.ndarray | None,
    with_inputs: bool,
    full_info: bool,
) -> dict[str, Any]:
    """The columns of a columnar dataset's patterns that ``members`` (or ``ids``) and
    ``split`` select, from its Iceberg table, by ascending id; which are deactivated
    (the one thing about a pattern that changes) from the database."""
    import pyarrow as pa

    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
    wanted = None if ids is None else arrays.ascending_unique(np.asarray(ids, dtype=np.int64))
    include_inactive = members.include_inactive or ids is not None
    read_columns = ["pattern_id", "split", "source", "label", "created_at"]
    if full_info:
        read_columns += ["batch_id", "replaces_id", "tags"]
    # A read of a selection of numbers (training data) streams the inputs into one
    # array made for them after the narrow columns are read, instead of holding the
    # whole Arrow table and then copying it into NumPy.
    stream = (
        with_inputs
        and wanted is None
        and dataset.schema is not None
        and all(c.type == "number" for c in dataset.schema.columns)
    )
    if with_inputs and not stream:
        read_columns.append("inputs")
    b = t.import_batches.c
    with read(dataset.engine) as conn, no_gc():
        data = (
            None
            if dataset.schema is None
            else columnar.read(
                conn,
                dataset.id,
                columns=read_columns,
                split=None if split is None else SPLITS.index(split),
                ids=wanted,
                max_id=members.max_id,
                as_of=members.as_of,
                sources=members.sources,
                # few distinct values: read as codes, which reorder cheaply
                dictionary=("label", "source"),
            )
        )
        off = deactivations(conn, dataset.id)
        labellers = (
            dict(conn.execute(select(b.id, b.labelled_by).where(b.dataset_id == dataset.id)).all())
            if full_info
            else {}
        )
        if data is None:
            return _empty_columns(dataset, with_inputs, full_info)
        found = data.column("pattern_id").to_numpy()
        pick, when, keep = _picked(found, off, members, include_inactive)
        streamed = _streamed_inputs(conn, dataset, found[pick], split, members) if stream else None

    def column(name: str) -> np.ndarray:
        values = decoded(data.column(name)) if name in ("label", "source") else None
        if values is None:
            values = data.column(name).to_numpy(zero_copy_only=False)
        picked: np.ndarray = values[pick]
        return picked

    columns: dict[str, Any] = {
        "id": found[pick],
        "split": column("split"),
        "source": column("source"),
        "label": list(column("label")),
        "created_at": column("created_at"),
    }
    if full_info:
        batch_ids = column("batch_id")
        columns["batch_id"] = batch_ids
        columns["labelled_by"] = [labellers.get(int(i)) for i in batch_ids.tolist()]
        columns["deactivated_at"] = [None if w == _NEVER else int(w) for w in when[keep].tolist()]
        columns["replaces_id"] = [
            None if v is None or v != v else int(v)
            for v in data.column("replaces_id").take(pa.array(pick)).to_pylist()
        ]
        columns["tags"] = data.column("tags").take(pa.array(pick)).to_pylist()
    if streamed is not None:
        columns["inputs_frame"] = streamed
    elif with_inputs:
        assert dataset.schema is not None
        frame = columnar.inputs_frame(dataset.schema, data.column("inputs"))
        every_in_order = len(pick) == len(found) and bool((np.diff(pick) == 1).all())
        columns["inputs_frame"] = frame if every_in_order else frame.take(pick)
    return columns


def _picked(
    found: np.ndarray, off: Sequence[Any], members: Members, include_inactive: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of the rows read (pattern ids ``found``, in file order): the positions of those
    ``members`` keeps, in ascending id order; every row's deactivation time, in id
    order; and which of them are kept."""
    # One split's files hold its patterns in id order; several splits interleave, and
    # are put in order as NumPy arrays (a reorder of the Arrow table copies far more).
    order = None
    if not arrays.is_ascending(found):
        order = np.argsort(found, kind="stable")
    when = _deactivated_at(found if order is None else found[order], off)
    if members.as_of is not None:
        keep = when > members.as_of
    elif not include_inactive:
        keep = when == _NEVER
    else:
        keep = np.ones(len(found), dtype=bool)
    pick = np.arange(len(found)) if order is None else order
    return pick[keep], when, keep


#: Rows of the table read at a time into the array of a streamed read.
STREAM_ROWS = 262_144


def _streamed_inputs(
    conn: Any, dataset: Dataset, ids: np.ndarray, split: str | None, members: Members
) -> pd.DataFrame:
    """The number inputs of the patterns ``ids`` (ascending), in that order: one
    float64 array made for them, filled a few row groups at a time (each copied once,
    where it goes), as a DataFrame over it with no copy. Missing numbers are NaN."""
    assert dataset.schema is not None
    names = dataset.schema.names
    n = len(ids)
    block = np.empty((len(names), n), dtype=np.float64)  # a row per column
    filled = 0
    if n:
        for part in columnar.batches(
            conn,
            dataset.id,
            columns=["inputs"],
            rows=STREAM_ROWS,
            split=None if split is None else SPLITS.index(split),
            max_id=members.max_id,
            as_of=members.as_of,
            sources=members.sources,
        ):
            got = part.column("pattern_id").to_numpy()
            at = np.minimum(np.searchsorted(ids, got), n - 1)
            hit = ids[at] == got
            filled += int(hit.sum())
            start = 0
            for chunk in part.column("inputs").chunks:
                _fill(block, chunk, at[start : start + len(chunk)], hit[start : start + len(chunk)])
                start += len(chunk)
    if filled != n:  # the two reads are of one moment of the table: never expected
        raise RuntimeError(
            f"dataset {dataset.name!r}: {n} patterns read, but the inputs of {filled}"
        )
    return pd.DataFrame(block.T, columns=pd.Index(names), copy=False)


def _fill(block: np.ndarray, chunk: Any, at: np.ndarray, hit: np.ndarray) -> None:
    """Copy the struct ``chunk``'s columns into ``block`` at the positions ``at`` of
    its rows that ``hit``: a slice copy when they are one run of positions."""
    if not len(at):
        return
    run = bool(hit.all()) and bool((np.diff(at) == 1).all())
    for j, child in enumerate(chunk.flatten()):
        values = child.to_numpy(zero_copy_only=False)
        if run:
            block[j, int(at[0]) : int(at[-1]) + 1] = values
        else:
            block[j, at[hit]] = values[hit]


def _empty_columns(dataset: Dataset, with_inputs: bool, full_info: bool) -> dict[str, Any]:
    empty: dict[str, Any] = {n: () for n in ("id", "split", "source", "label", "created_at")}
    if full_info:
        empty.update({n: () for n in _INFO_EXTRA})
    if with_inputs and dataset.schema is not None:
        empty["inputs_frame"] = columnar.inputs_frame(dataset.schema, _empty_inputs(dataset))
    return empty


#: The deactivation time of a pattern never deactivated.
_NEVER = np.iinfo(np.int64).max


def deactivations(conn: Connection, dataset_id: int) -> Sequence[Any]:
    """(pattern id, deactivated_at) of the dataset's inactive patterns, from its pattern
    changes: each deactivation and relabel writes one, at the time it stamps on the
    pattern (a pattern changes once), so a columnar dataset's reads need no row of its
    patterns to leave out the inactive ones."""
    c = t.pattern_changes.c
    return conn.execute(select(c.pattern_id, c.changed_at).where(c.dataset_id == dataset_id)).all()


def _deactivated_at(pattern_ids: np.ndarray, off: Sequence[Any]) -> np.ndarray:
    """When each of ``pattern_ids`` was deactivated (:data:`_NEVER`: it is active), from
    the (id, deactivated_at) rows of the deactivated ones."""
    when = np.full(len(pattern_ids), _NEVER, dtype=np.int64)
    if not off:
        return when
    off_ids = np.array([r[0] for r in off], dtype=np.int64)
    off_at = np.array([r[1] for r in off], dtype=np.int64)
    order = np.argsort(off_ids)
    off_ids, off_at = off_ids[order], off_at[order]
    at = np.minimum(np.searchsorted(off_ids, pattern_ids), len(off_ids) - 1)
    hit = off_ids[at] == pattern_ids
    when[hit] = off_at[at[hit]]
    return when


#: The provenance columns a full read adds.
_INFO_EXTRA = ("deactivated_at", "replaces_id", "batch_id", "labelled_by", "tags")


def _empty_inputs(dataset: Dataset) -> Any:
    import pyarrow as pa

    assert dataset.schema is not None
    spec = columnar.table_spec(dataset.id, dataset.schema)
    return pa.array([], type=spec.schema.as_arrow().field("inputs").type)
