"""Patterns a page at a time: filtered by dataset, split, source, labeller, label, time,
problem, activity, a text or a set of ids, in id order, with keyset paging (``id >
after``), so that the hundredth page of a million patterns costs what the first does;
and a count that stops counting at a bound. Which ids match is worked out by
:mod:`trenches.patterns.selection` (a columnar dataset's from its table); a page's
patterns are then read by id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy.engine import Connection

from trenches import timestamps
from trenches.db.engine import read
from trenches.errors import InvalidInput, StoreError
from trenches.names import SPLITS
from trenches.patterns import codec, columnar, selection
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import Dataset, dataset_by_id
from trenches.patterns.lookup import StoredRow, stored_rows
from trenches.patterns.record import Pattern, plain
from trenches.patterns.selection import PatternQuery

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: The most patterns one page holds.
MOST = 500


@dataclass(frozen=True)
class PatternPage:
    """One page of patterns in id order, and the ``after`` of the next page (None: last)."""

    patterns: tuple[Pattern, ...]
    next_after: int | None


def page(engine: Engine, query: PatternQuery, *, after: int = 0, limit: int = 50) -> PatternPage:
    """The first ``limit`` patterns of ``query`` whose id is above ``after``."""
    if not 1 <= limit <= MOST:
        raise InvalidInput(f"a page holds 1 to {MOST} patterns, not {limit}")
    with read(engine) as conn:
        chosen = selection.resolve(engine, conn, query)
        ids = selection.least_ids(conn, chosen, after=after, n=limit + 1)
        more = len(ids) > limit
        ids = ids[:limit].tolist()
        rows = _rows(conn, ids)
        patterns = patterns_of_rows(engine, conn, rows)
    return PatternPage(patterns, int(ids[-1]) if more and ids else None)


def count(engine: Engine, query: PatternQuery, *, at_most: int = 10_000) -> tuple[int, bool]:
    """How many patterns ``query`` selects, counting no further than ``at_most``: (the
    count, whether there are more)."""
    with read(engine) as conn:
        chosen = selection.resolve(engine, conn, query)
        n = len(selection.least_ids(conn, chosen, after=0, n=at_most + 1, ordered=False))
    return min(n, at_most), n > at_most


def _rows(conn: Connection, ids: list[int]) -> list[StoredRow]:
    """The stored facts of patterns known to be stored, in the order of ``ids``."""
    found = stored_rows(conn, ids)
    if len(found) != len(ids):
        missing = [i for i in ids if i not in found]
        raise StoreError(
            f"patterns {missing[:5]} were listed but are not stored: the store is damaged; "
            "restore it from a backup"
        )
    return [found[i] for i in ids]


def patterns_of_rows(engine: Engine, conn: Connection, rows: list[Any]) -> tuple[Pattern, ...]:
    """Rows of ``patterns`` (with ``labelled_by``) as patterns, decoded a dataset at once."""
    datasets: dict[int, Dataset] = {}
    by_id: dict[int, Pattern] = {}
    for dataset_id in {r.dataset_id for r in rows}:
        ds = datasets.setdefault(dataset_id, dataset_by_id(engine, dataset_id, conn))
        mine = [r for r in rows if r.dataset_id == dataset_id]
        assert ds.schema is not None
        if ds.columnar:
            frame = _columnar_inputs(conn, ds, [int(r.id) for r in mine])
        else:
            frame = codec.decode(ds.schema, [r.num for r in mine], [r.obj for r in mine])
        labels = inp.labels_from_text([r.label for r in mine], ds.label_type)
        records = frame.to_dict("records")
        for r, inputs, label in zip(mine, records, labels, strict=True):
            by_id[r.id] = Pattern(
                id=r.id,
                dataset=ds.name,
                inputs={k: plain(v) for k, v in inputs.items()},
                label=plain(label),
                split=SPLITS[r.split],
                source=r.source,
                labelled_by=r.labelled_by,
                batch_id=r.batch_id,
                created_at=timestamps.from_us(r.created_at),
                deactivated_at=(
                    timestamps.from_us(r.deactivated_at) if r.deactivated_at is not None else None
                ),
                replaces_id=r.replaces_id,
                tags=tuple(orjson.loads(r.tags)) if r.tags else (),
            )
    return tuple(by_id[r.id] for r in rows)


def _columnar_inputs(conn: Connection, ds: Dataset, ids: list[int]) -> pd.DataFrame:
    """The inputs of some patterns of a columnar dataset, in the order of ``ids``."""
    assert ds.schema is not None
    data = columnar.read(
        conn, ds.id, columns=["pattern_id", "inputs"], ids=np.asarray(ids, dtype=np.int64)
    )
    if data is None or data.num_rows != len(set(ids)):
        raise StoreError(
            f"the table of dataset {ds.name!r} lacks some of patterns {ids[:5]}: the store "
            "is damaged; restore it from a backup"
        )
    frame = columnar.inputs_frame(ds.schema, data.column("inputs"))
    frame.index = data.column("pattern_id").to_numpy()
    return frame.loc[ids].reset_index(drop=True)
