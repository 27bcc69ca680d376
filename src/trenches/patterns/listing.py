"""Patterns a page at a time: filtered by dataset, split, source, labeller, label, time,
problem or a set of ids, in id order, with keyset paging (``id > after``), so that the
hundredth page of a million patterns costs what the first does; and a count that stops
counting at a bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import id_in, read
from trenches.errors import InvalidInput, StoreError
from trenches.names import SPLITS
from trenches.patterns import codec, columnar
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import Dataset, dataset_by_id
from trenches.patterns.record import Pattern, plain

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: The most patterns one page holds.
MOST = 500
#: Ids of ``within`` looked at per query while filling a page.
_CHUNK = 2_000


@dataclass(frozen=True)
class PatternQuery:
    """Which patterns: every field left None does not filter. ``within`` keeps only
    those ids (the patterns a version got wrong); ``search`` finds a text in the
    string inputs or the label."""

    datasets: Sequence[str] | None = None
    split: str | None = None
    source: str | None = None
    labelled_by: str | None = None
    label: str | None = None
    since: str | int | None = None
    until: str | int | None = None
    problem: str | None = None
    active: bool | None = None
    search: str | None = None
    within: Sequence[int] | np.ndarray | None = None


@dataclass(frozen=True)
class PatternPage:
    """One page of patterns in id order, and the ``after`` of the next page (None: last)."""

    patterns: tuple[Pattern, ...]
    next_after: int | None


def _where(conn: Connection, query: PatternQuery) -> tuple[list[Any], Any]:
    """The WHERE clauses of ``query``, and the FROM they need."""
    p, b = t.patterns.c, t.import_batches.c
    source: Any = t.patterns.join(t.import_batches, p.batch_id == b.id)
    where: list[Any] = []
    if query.datasets is not None:
        d = t.datasets.c
        ids = conn.execute(select(d.id).where(d.name.in_(list(query.datasets)))).scalars()
        # ``+ 0`` keeps the planner off the (dataset, created_at) index: walking the
        # ids in order and stopping at the page's end beats sorting the whole dataset.
        where.append((p.dataset_id + 0).in_(list(ids)))
    if query.split is not None:
        if query.split not in SPLITS:
            raise InvalidInput(f"split {query.split!r} must be one of {', '.join(SPLITS)}")
        where.append(p.split == SPLITS.index(query.split))
    if query.source is not None:
        where.append(p.source == query.source)
    if query.labelled_by is not None:
        where.append(b.labelled_by == query.labelled_by)
    if query.label is not None:
        where.append(p.label == query.label)
    since = timestamps.parse(query.since, what="since")
    until = timestamps.parse(query.until, what="until")
    if since is not None:
        where.append(p.created_at >= since)
    if until is not None:
        where.append(p.created_at < until)
    if query.active is not None:
        where.append(p.deactivated_at.is_(None) if query.active else p.deactivated_at.isnot(None))
    if query.search:
        text = "%" + query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        text += "%"
        where.append(p.obj.like(text, escape="\\") | p.label.like(text, escape="\\"))
    if query.problem is not None:
        pp, pr = t.problem_patterns.c, t.problems.c
        source = source.join(t.problem_patterns, pp.pattern_id == p.id)
        problem_id = conn.execute(select(pr.id).where(pr.slug == query.problem)).scalar()
        where.append(pp.problem_id == (problem_id if problem_id is not None else -1))
    return where, source


def page(engine: Engine, query: PatternQuery, *, after: int = 0, limit: int = 50) -> PatternPage:
    """The first ``limit`` patterns of ``query`` whose id is above ``after``."""
    if not 1 <= limit <= MOST:
        raise InvalidInput(f"a page holds 1 to {MOST} patterns, not {limit}")
    p, b = t.patterns.c, t.import_batches.c
    with read(engine) as conn:
        where, source = _where(conn, query)
        base = select(t.patterns, b.labelled_by).select_from(source).where(*where).order_by(p.id)
        rows: list[Any] = []
        if query.within is None:
            rows = list(conn.execute(base.where(p.id > after).limit(limit + 1)).all())
        else:
            within = np.unique(np.asarray(query.within, dtype=np.int64))
            within = within[within > after]
            for start in range(0, len(within), _CHUNK):
                part = within[start : start + _CHUNK].tolist()
                found = conn.execute(
                    base.where(id_in(conn.dialect.name, p.id, part)).limit(limit + 1 - len(rows))
                ).all()
                rows += found
                if len(rows) > limit:
                    break
        more = len(rows) > limit
        rows = rows[:limit]
        patterns = patterns_of_rows(engine, conn, rows)
    return PatternPage(patterns, int(rows[-1].id) if more and rows else None)


def count(engine: Engine, query: PatternQuery, *, at_most: int = 10_000) -> tuple[int, bool]:
    """How many patterns ``query`` selects, counting no further than ``at_most``: (the
    count, whether there are more)."""
    p = t.patterns.c
    with read(engine) as conn:
        where, source = _where(conn, query)
        if query.within is not None:
            within = np.unique(np.asarray(query.within, dtype=np.int64))[: at_most + 1]
            where.append(id_in(conn.dialect.name, p.id, within.tolist()))
        inner = select(p.id).select_from(source).where(*where).limit(at_most + 1).subquery()
        n = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    return min(n, at_most), n > at_most


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
