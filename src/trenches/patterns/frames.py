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
from trenches.patterns import codec
from trenches.patterns import inputs as inp

if TYPE_CHECKING:
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
    ids: Sequence[int] | None = None,
    with_inputs: bool = True,
    full_info: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read patterns column-wise: (inputs and label, provenance), both by pattern id.

    ``members`` selects them (default: the active ones; ``ids`` picks some, active or
    not). With ``full_info=False`` the provenance holds only split, source and
    created_at, which is all training needs, and the read skips the join with the
    imports.
    """
    p = t.patterns.c
    b = t.import_batches.c
    members = members or Members()
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
    else:
        frame = codec.decode(dataset.schema, columns["num"], columns["obj"])
        frame.index = index
    frame[dataset.label_column] = inp.labels_from_text(list(columns["label"]), dataset.label_type)
    return frame, info
