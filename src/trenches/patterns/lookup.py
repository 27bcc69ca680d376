"""Patterns by id, wherever they are stored: which dataset and import an id is of, from
the batches' id ranges (:mod:`trenches.patterns.ranges`), and a pattern's stored facts
as one :class:`StoredRow`, from its dataset's table (a columnar dataset) or its
database row (a dataset made by an earlier release). Whether a pattern is inactive
comes from its change, which every deactivation and relabel writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from trenches.db import schema as t
from trenches.db.engine import id_in
from trenches.errors import StoreError
from trenches.patterns import columnar

#: The facts a pattern row holds, in the order of :class:`StoredRow`'s fields.
_FACTS = (
    "split",
    "source",
    "batch_id",
    "label",
    "created_at",
    "replaces_id",
    "tags",
    "input_key",
    "content_hash",
)


@dataclass(frozen=True)
class StoredRow:
    """One pattern's stored facts, as its database row held them: ``num`` and ``obj``
    (its packed inputs) only for a dataset made by an earlier release, None otherwise."""

    id: int
    dataset_id: int
    split: int
    source: str
    batch_id: int
    label: str
    created_at: int
    replaces_id: int | None
    tags: str | None
    input_key: bytes
    content_hash: bytes
    labelled_by: str | None
    deactivated_at: int | None
    num: bytes | None = None
    obj: str | None = None


def owners(conn: Connection, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dataset and the import batch that made each of ``ids``: two int64 arrays in
    the order of ``ids``, -1 for an id no batch made (no such pattern)."""
    wanted = np.asarray(ids, dtype=np.int64)
    datasets = np.full(len(wanted), -1, dtype=np.int64)
    batches = np.full(len(wanted), -1, dtype=np.int64)
    if not len(wanted):
        return datasets, batches
    b = t.import_batches.c
    # Every batch whose range meets [min, max]: a few rows, by the index on the last id.
    found = conn.execute(
        select(b.first_pattern_id, b.last_pattern_id, b.dataset_id, b.id)
        .where(b.last_pattern_id >= int(wanted.min()), b.first_pattern_id <= int(wanted.max()))
        .order_by(b.first_pattern_id)
    ).all()
    if not found:
        return datasets, batches
    first, last, dataset_ids, batch_ids = np.array(found, dtype=np.int64).T
    at = np.searchsorted(first, wanted, side="right") - 1
    made = at >= 0
    made[made] = wanted[made] <= last[at[made]]
    datasets[made] = dataset_ids[at[made]]
    batches[made] = batch_ids[at[made]]
    return datasets, batches


def changed(conn: Connection, ids: Iterable[int]) -> dict[int, int]:
    """When each of ``ids`` that is inactive was deactivated (or relabelled)."""
    c = t.pattern_changes.c
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    query = select(c.pattern_id, c.changed_at).where(id_in(conn.dialect.name, c.pattern_id, wanted))
    return {int(i): int(at) for i, at in conn.execute(query).all()}


def stored_rows(conn: Connection, ids: Sequence[int]) -> dict[int, StoredRow]:
    """The stored facts of each of ``ids`` that is a pattern, by id (an id that is not
    is left out)."""
    wanted = np.unique(np.asarray(ids, dtype=np.int64))
    dataset_of, _ = owners(conn, wanted)
    d = t.datasets.c
    kinds = dict(
        conn.execute(
            select(d.id, d.columnar).where(
                d.id.in_(np.unique(dataset_of[dataset_of >= 0]).tolist())
            )
        ).all()
    )
    off = changed(conn, wanted[dataset_of >= 0].tolist())
    rows: dict[int, StoredRow] = {}
    for dataset_id, is_columnar in kinds.items():
        mine = wanted[dataset_of == dataset_id]
        found = (
            _table_rows(conn, int(dataset_id), mine) if is_columnar else _database_rows(conn, mine)
        )
        labellers = _labellers(conn, {int(r["batch_id"]) for r in found})
        for r in found:
            pid = int(r["id"])
            rows[pid] = StoredRow(
                dataset_id=int(dataset_id),
                labelled_by=labellers.get(int(r["batch_id"])),
                deactivated_at=off.get(pid),
                **r,
            )
    return rows


def _table_rows(conn: Connection, dataset_id: int, ids: np.ndarray) -> list[dict[str, Any]]:
    data = columnar.read(conn, dataset_id, columns=["pattern_id", *_FACTS], ids=ids)
    if data is None or data.num_rows != len(ids):
        raise StoreError(
            f"the table of dataset {dataset_id} lacks some of patterns {ids[:5].tolist()}: "
            "the store is damaged; restore it from a backup"
        )
    found: list[dict[str, Any]] = data.rename_columns(["id", *_FACTS]).to_pylist()
    return found


def _database_rows(conn: Connection, ids: np.ndarray) -> list[dict[str, Any]]:
    p = t.patterns.c
    query = select(p.id, *(p[f] for f in _FACTS), p.num, p.obj).where(
        id_in(conn.dialect.name, p.id, ids.tolist())
    )
    return [dict(r._mapping) for r in conn.execute(query).all()]


def _labellers(conn: Connection, batch_ids: set[int]) -> dict[int, str | None]:
    b = t.import_batches.c
    return dict(conn.execute(select(b.id, b.labelled_by).where(b.id.in_(sorted(batch_ids)))).all())
