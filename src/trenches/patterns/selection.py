"""Which patterns a :class:`PatternQuery` selects, as ids in
ascending order: a query is resolved once against the store (dataset names, the
labeller's imports, the problem's patterns, the wanted ids by dataset), then each
dataset gives its least matching ids above a page's ``after``. A columnar dataset
gives them from its table (row groups pruned by their id, split, time and import
bounds, read a few narrow columns at a time, :mod:`trenches.tables.ordered`), and its
inactive patterns from their changes; the datasets of an earlier release give them
from their database rows.

A search finds its text in the label or in one string input's value, ignoring the
case of the letters A to Z (and only theirs, on every backend: SQLite's ``LIKE`` folds
no other letter, and PostgreSQL's ``lower`` folds them by its locale); a missing input
matches nothing.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.engine import Connection

from trenches import tables, timestamps
from trenches.db import schema as t
from trenches.db.engine import id_in
from trenches.errors import InvalidInput
from trenches.names import SPLITS, in_int64
from trenches.patterns import columnar, frames, lookup
from trenches.patterns.datasets import Dataset, dataset_by_id
from trenches.tables import pruning
from trenches.tables.arrays import ascending_unique
from trenches.tables.filters import within
from trenches.tables.ordered import least
from trenches.tables.pruning import Bound

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


#: Ids of a set of wanted ids looked up per query in a dataset's database rows.
_CHUNK = 2_000
#: The upper-case ASCII letters as their lower-case ones (what a search folds).
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True)
class PatternQuery:
    """Which patterns: every field left None does not filter. ``within`` keeps only
    those ids (the patterns a version got wrong); ``search`` finds a text in the label
    or in one string input's value, ignoring the case of the letters A to Z."""

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
class Selection:
    """A query resolved against the store: the datasets to look in (an earlier
    release's by id, the columnar ones), and each filter in the form their rows hold
    it. ``ids`` (the wanted ids, of ``within`` and the problem) and ``batches`` (the
    labeller's imports) are by dataset; a dataset missing from them has no match."""

    legacy: tuple[int, ...]
    columnar: tuple[Dataset, ...]
    split: int | None
    source: str | None
    label: str | None
    since: int | None
    until: int | None
    active: bool | None
    search: str | None
    ids: dict[int, np.ndarray] | None
    batches: dict[int, np.ndarray] | None
    labelled_by: str | None


def resolve(engine: Engine, conn: Connection, query: PatternQuery) -> Selection:
    """``query`` resolved on ``conn`` (see :class:`Selection`)."""
    if query.split is not None and query.split not in SPLITS:
        raise InvalidInput(f"split {query.split!r} must be one of {', '.join(SPLITS)}")
    since = timestamps.parse(query.since, what="since")
    until = timestamps.parse(query.until, what="until")
    d = t.datasets.c
    kinds = select(d.id, d.columnar).order_by(d.id)
    if query.datasets is not None:
        kinds = kinds.where(d.name.in_(list(query.datasets)))
    found = conn.execute(kinds).all()
    ids = _wanted(conn, query)
    batches = _labellers_batches(conn, query.labelled_by)
    listed = [
        int(i)
        for i, _ in found
        if (ids is None or int(i) in ids) and (batches is None or int(i) in batches)
    ]
    kind = dict(found)
    return Selection(
        legacy=tuple(i for i in listed if not kind[i]),
        columnar=tuple(dataset_by_id(engine, i, conn) for i in listed if kind[i]),
        split=None if query.split is None else SPLITS.index(query.split),
        source=query.source,
        label=query.label,
        since=since,
        until=until,
        active=query.active,
        search=query.search.translate(_FOLD) if query.search else None,
        ids=ids,
        batches=batches,
        labelled_by=query.labelled_by,
    )


def _wanted(conn: Connection, query: PatternQuery) -> dict[int, np.ndarray] | None:
    """The ids ``within`` and the problem leave, ascending, by the dataset they are of;
    None when the query names neither."""
    wanted: np.ndarray | None = None
    if query.within is not None:
        given = [int(i) for i in np.asarray(query.within).ravel().tolist()]
        wanted = ascending_unique(np.array([i for i in given if in_int64(i)], dtype=np.int64))
    if query.problem is not None:
        pp, pr = t.problem_patterns.c, t.problems.c
        of_problem = conn.execute(
            select(pp.pattern_id)
            .select_from(t.problem_patterns.join(t.problems, pp.problem_id == pr.id))
            .where(pr.slug == query.problem)
        ).scalars()
        mine = ascending_unique(np.fromiter(of_problem, dtype=np.int64))
        wanted = mine if wanted is None else np.intersect1d(wanted, mine)
    if wanted is None:
        return None
    dataset_of, _ = lookup.owners(conn, wanted)
    return {int(i): wanted[dataset_of == i] for i in np.unique(dataset_of[dataset_of >= 0])}


def _labellers_batches(conn: Connection, labelled_by: str | None) -> dict[int, np.ndarray] | None:
    """The imports ``labelled_by`` made, by dataset; None when the query names no one."""
    if labelled_by is None:
        return None
    b = t.import_batches.c
    rows = conn.execute(
        select(b.dataset_id, b.id).where(b.labelled_by == labelled_by).order_by(b.id)
    ).all()
    by_dataset: dict[int, list[int]] = {}
    for dataset_id, batch_id in rows:
        by_dataset.setdefault(int(dataset_id), []).append(int(batch_id))
    return {k: np.array(v, dtype=np.int64) for k, v in by_dataset.items()}


def least_ids(
    conn: Connection, selection: Selection, *, after: int, n: int, ordered: bool = True
) -> np.ndarray:
    """The least ``n`` ids the selection selects above ``after``, ascending; with
    ``ordered`` False any ``n`` of them (enough to count to ``n``)."""
    found = np.zeros(0, dtype=np.int64)
    sources: list[Any] = [*selection.columnar]
    if selection.legacy:
        sources.insert(0, None)
    for source in sources:
        # Each source needs only ids below the least n found so far.
        high = int(found[-1]) if ordered and len(found) >= n else None
        need = n if ordered else n - len(found)
        if need <= 0:
            break
        if source is None:
            more = _legacy_ids(conn, selection, after=after, n=need, high=high)
        else:
            more = _table_ids(
                conn, selection, source, after=after, n=need, high=high, ordered=ordered
            )
        found = np.sort(np.concatenate([found, more]))[:n]
    return found


# --- a columnar dataset: its table --------------------------------------------------------


def _table_ids(
    conn: Connection,
    selection: Selection,
    dataset: Dataset,
    *,
    after: int,
    n: int,
    high: int | None,
    ordered: bool,
) -> np.ndarray:
    """The least ``n`` matching ids of a columnar dataset above ``after`` (and up to
    ``high``), from its table and its changes."""
    none = np.zeros(0, dtype=np.int64)
    if dataset.schema is None:  # nothing imported yet
        return none
    among = None if selection.ids is None else selection.ids[dataset.id]
    off = _inactive(conn, dataset.id) if selection.active is not None else None
    if selection.active is False:
        assert off is not None
        among = off if among is None else np.intersect1d(among, off)
        off = None
    if among is not None:
        among = among[among > after]
        if high is not None:
            among = among[among <= high]
        if not len(among):
            return none
    bounds = [Bound("pattern_id", after + 1, high, among)]
    if selection.split is not None:
        bounds.append(Bound("split", selection.split, selection.split))
    if selection.since is not None or selection.until is not None:
        until = None if selection.until is None else selection.until - 1
        bounds.append(Bound("created_at", selection.since, until))
    if selection.batches is not None:
        bounds.append(Bound("batch_id", among=selection.batches[dataset.id]))
    store = tables.of(conn)
    # Planned without the ids' bound, the same for every page of the query: files are
    # chosen by their ids' range as they are read (a plan is remembered by its filter).
    plan = within([b.narrowed() for b in bounds if b.column != "pattern_id"])
    spans = store.spans(conn, columnar.table_name(dataset.id), plan, "pattern_id")
    strings = _string_inputs(dataset) if selection.search else []
    columns = [
        *(["label"] if selection.label is not None or selection.search else []),
        *(["source"] if selection.source is not None else []),
        *strings,
    ]

    def keep(part: pa.Table) -> np.ndarray | None:
        return _kept(part, selection, off, strings)

    return least(
        store,
        spans,
        column="pattern_id",
        columns=columns,
        bounds=bounds,
        keep=keep,
        n=n,
        ordered=ordered,
    )


def _inactive(conn: Connection, dataset_id: int) -> np.ndarray:
    """The ids of a dataset's inactive patterns, ascending."""
    off = frames.deactivations(conn, dataset_id)
    return ascending_unique(np.array([int(r[0]) for r in off], dtype=np.int64))


def _string_inputs(dataset: Dataset) -> list[str]:
    """The columns of the table a search reads: the string inputs one by one, or the
    whole struct when a name has a dot (a path to a nested column would be ambiguous)."""
    assert dataset.schema is not None
    names = [c.name for c in dataset.schema.strings]
    if any("." in name for name in names):
        return ["inputs"]
    return [f"inputs.{name}" for name in names]


def _kept(
    part: pa.Table, selection: Selection, off: np.ndarray | None, strings: list[str]
) -> np.ndarray | None:
    """Which rows of a row group the filters a table's bounds cannot hold keep."""
    mask = np.ones(part.num_rows, dtype=bool)
    if selection.label is not None:
        mask &= _true(pc.equal(part.column("label"), selection.label))
    if selection.source is not None:
        mask &= _true(pc.equal(part.column("source"), selection.source))
    if off is not None and len(off):
        mask &= ~pruning.among(part.column("pattern_id").to_numpy(), off)
    if selection.search and mask.any():
        found = _contains(part.column("label"), selection.search)
        if strings:
            struct = part.column("inputs").combine_chunks()
            for j in range(struct.type.num_fields):
                kind = struct.type.field(j).type
                if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                    found |= _contains(struct.field(j), selection.search)
        mask &= found
    return None if mask.all() else mask


def _contains(values: pa.Array | pa.ChunkedArray, folded: str) -> np.ndarray:
    """Which of ``values`` hold the (folded) text ``folded``, their letters A-Z folded."""
    return _true(pc.match_substring(pc.ascii_lower(values), folded))


def _true(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean array as a mask, null as False."""
    return np.asarray(values.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


# --- datasets of an earlier release: their database rows ----------------------------------


def _legacy_ids(
    conn: Connection, selection: Selection, *, after: int, n: int, high: int | None
) -> np.ndarray:
    """The least ``n`` matching ids above ``after`` (and up to ``high``) of the
    datasets of an earlier release, from their rows of ``patterns``. A search's text is
    looked for in the rows' packed string inputs (their JSON text), then each row
    found is checked value by value."""
    p = t.patterns.c
    where, source = _legacy_where(selection)
    if high is not None:
        where.append(p.id <= high)
    columns = [p.id, p.obj, p.label] if selection.search else [p.id]
    base = select(*columns).select_from(source).where(*where).order_by(p.id)
    found: list[int] = []
    if selection.ids is None:
        while len(found) < n:
            rows = conn.execute(base.where(p.id > after).limit(n + 1)).all()
            found += _searched(rows, selection.search)
            if len(rows) <= n:
                break
            after = int(rows[-1].id)
        return np.array(found[:n], dtype=np.int64)
    wanted = np.concatenate(
        [selection.ids.get(i, np.zeros(0, dtype=np.int64)) for i in selection.legacy]
    )
    wanted = np.sort(wanted[wanted > after])
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK].tolist()
        rows = conn.execute(base.where(id_in(conn.dialect.name, p.id, part))).all()
        found += _searched(rows, selection.search)
        if len(found) >= n:
            break
    return np.array(found[:n], dtype=np.int64)


def _legacy_where(selection: Selection) -> tuple[list[Any], Any]:
    """The WHERE clauses of a selection over the rows of ``patterns``, and the FROM
    they need."""
    p, b = t.patterns.c, t.import_batches.c
    source: Any = t.patterns
    # ``+ 0`` keeps the planner off the (dataset, created_at) index: walking the ids in
    # order and stopping at the page's end beats sorting the whole dataset.
    where: list[Any] = [(p.dataset_id + 0).in_(list(selection.legacy))]
    if selection.split is not None:
        where.append(p.split == selection.split)
    if selection.source is not None:
        where.append(p.source == selection.source)
    if selection.labelled_by is not None:
        source = source.join(t.import_batches, p.batch_id == b.id)
        where.append(b.labelled_by == selection.labelled_by)
    if selection.label is not None:
        where.append(p.label == selection.label)
    if selection.since is not None:
        where.append(p.created_at >= selection.since)
    if selection.until is not None:
        where.append(p.created_at < selection.until)
    if selection.active is not None:
        active = selection.active
        where.append(p.deactivated_at.is_(None) if active else p.deactivated_at.isnot(None))
    if selection.search:
        # A superset of the matches, on either backend: the JSON text holds each value
        # escaped character by character, and ``ilike`` folds at least A-Z.
        escaped = orjson.dumps(selection.search).decode()[1:-1]
        where.append(
            p.obj.ilike(_like(escaped), escape="\\")
            | p.label.ilike(_like(selection.search), escape="\\")
        )
    return where, source


def _like(text: str) -> str:
    """A LIKE pattern that finds ``text`` anywhere."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _searched(rows: Sequence[Any], folded: str | None) -> list[int]:
    """The ids of the rows whose label or one string input holds the text, their
    letters A-Z folded (all of them when there is no text)."""
    if not folded:
        return [int(r.id) for r in rows]
    return [
        int(r.id)
        for r in rows
        if folded in r.label.translate(_FOLD)
        or any(
            isinstance(v, str) and folded in v.translate(_FOLD)
            for v in (orjson.loads(r.obj) if r.obj else ())
        )
    ]
