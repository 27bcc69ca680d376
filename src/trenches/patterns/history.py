"""Patterns are immutable: relabel and deactivate keep the old pattern and link the
new one to it, so that every earlier snapshot can be rebuilt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import acting_name, change
from trenches.db.engine import lock_patterns, read, write
from trenches.errors import Conflict, InvalidInput, NotFound, StoreError
from trenches.names import check_source, in_int64
from trenches.patterns import codec, columnar
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import Dataset, dataset_by_id
from trenches.patterns.listing import PatternPage, count, page, patterns_of_rows
from trenches.patterns.lookup import StoredRow, changed, owners, stored_rows
from trenches.patterns.ranges import next_pattern_id, record_range
from trenches.patterns.record import Pattern
from trenches.patterns.selection import PatternQuery


@dataclass(frozen=True)
class PatternChange:
    """One step in a pattern's history: a relabel or a deactivation, and why."""

    pattern_id: int
    kind: str
    new_pattern_id: int | None
    reason: str
    changed_by: str | None
    changed_at: datetime


@dataclass(frozen=True)
class PatternHistory:
    """A chain of versions of one example, oldest first, with the changes between."""

    patterns: tuple[Pattern, ...]
    changes: tuple[PatternChange, ...]

    @property
    def current(self) -> Pattern:
        return self.patterns[-1]


class Patterns:
    """Every pattern of a store by id: ``store.patterns``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _row(self, conn: Connection, pattern_id: int) -> StoredRow:
        if not in_int64(pattern_id):  # names nothing stored; the driver could not send it
            raise NotFound(f"no pattern with id {pattern_id}")
        row = stored_rows(conn, [pattern_id]).get(pattern_id)
        if row is None:
            raise NotFound(f"no pattern with id {pattern_id}")
        return row

    def _pattern(self, conn: Connection, row: StoredRow) -> Pattern:
        return patterns_of_rows(self._engine, conn, [row])[0]

    def get(self, pattern_id: int) -> Pattern:
        """One pattern by id, active or not."""
        with read(self._engine) as conn:
            return self._pattern(conn, self._row(conn, pattern_id))

    def relabel(
        self,
        pattern_id: int,
        label: Any,
        *,
        source: str,
        reason: str,
        labelled_by: str | None = None,
    ) -> Pattern:
        """Give a pattern a new label: the old one is deactivated, and a new pattern
        with the same inputs and split points back to it."""
        check_source(source)
        if not reason or not reason.strip():
            raise InvalidInput("a relabel needs a reason (--reason)")
        p = t.patterns.c
        marking = change("patterns.relabel", f"pattern:{pattern_id}", {"reason": reason})
        with marking as marked, write(self._engine) as conn:
            lock_patterns(conn)
            now = timestamps.now_us()  # after the lock: see lock_patterns
            old = self._row(conn, pattern_id)
            if old.deactivated_at is not None:
                raise Conflict(
                    f"pattern {pattern_id} is inactive (since "
                    f"{timestamps.iso(old.deactivated_at)}); relabel its current version "
                    "(see trenches data history)"
                )
            dataset: Dataset = dataset_by_id(self._engine, old.dataset_id, conn)
            value = dataset.coerce_label(label)
            text = inp.label_to_text(_array(value), dataset.label_type or "string")[0]
            if text == old.label:
                raise Conflict(f"pattern {pattern_id} already has the label {text!r}")
            batch_id = conn.execute(
                insert(t.import_batches).values(
                    dataset_id=old.dataset_id,
                    kind="relabel",
                    source=source,
                    labelled_by=labelled_by or acting_name(),
                    note=reason,
                    file=None,
                    rows=1,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            inputs = None
            if dataset.columnar:
                # The inputs live in the dataset's table: the new pattern repeats them.
                assert dataset.schema is not None
                found = columnar.read(
                    conn, dataset.id, columns=["inputs"], ids=np.array([old.id], np.int64)
                )
                if found is None or found.num_rows != 1:
                    raise StoreError(
                        f"pattern {pattern_id} is missing from the table of dataset "
                        f"{dataset.name!r}: the store is damaged; restore it from a backup"
                    )
                inputs = columnar.coerced(dataset.schema, found.column("inputs"))
                enc = codec.encode(dataset.schema, inputs, 1, dataset.salt)
                content = codec.content_hashes(enc.num_words, enc.obj, [text], source, now)[0]
            else:
                content = codec.content_hashes(
                    [old.num] if old.num is not None else None,
                    [old.obj] if old.obj is not None else None,
                    [text],
                    source,
                    now,
                )[0]
            new_id = next_pattern_id(conn)
            if not dataset.columnar:  # a columnar dataset's patterns live in its table alone
                conn.execute(
                    insert(t.patterns).values(
                        id=new_id,
                        dataset_id=old.dataset_id,
                        batch_id=batch_id,
                        source=source,
                        split=old.split,
                        input_key=old.input_key,
                        content_hash=content,
                        label=text,
                        num=old.num,
                        obj=old.obj,
                        tags=old.tags,
                        created_at=now,
                        replaces_id=old.id,
                    )
                )
            if inputs is not None:
                assert dataset.schema is not None
                spec = columnar.table_spec(dataset.id, dataset.schema)
                columnar.append(
                    conn,
                    spec,
                    columnar.rows(
                        spec,
                        dataset.schema,
                        ids=np.array([new_id], dtype=np.int64),
                        split=np.array([old.split]),
                        source=source,
                        batch_id=int(batch_id),
                        labels=[text],
                        created_at=now,
                        keys=[old.input_key],
                        hashes=[content],
                        cols=inputs,
                        replaces_id=[old.id],
                        tags=old.tags,
                    ),
                )
            if not dataset.columnar:
                conn.execute(update(t.patterns).where(p.id == old.id).values(deactivated_at=now))
            record_range(conn, int(batch_id), new_id, new_id)
            marked.detail.update(
                dataset=dataset.name, label=text, was=old.label, new_pattern=int(new_id)
            )
            conn.execute(
                insert(t.pattern_changes).values(
                    pattern_id=old.id,
                    dataset_id=old.dataset_id,
                    kind="relabel",
                    new_pattern_id=new_id,
                    reason=reason,
                    changed_by=labelled_by or acting_name(),
                    changed_at=now,
                )
            )
            return self._pattern(conn, self._row(conn, new_id))

    def deactivate(
        self,
        pattern_ids: Sequence[int],
        *,
        reason: str,
        dataset: str | None = None,
    ) -> int:
        """Take patterns out of every later snapshot; they stay stored. All or nothing.

        ``dataset``: every pattern must be one of its own (a pattern of another dataset
        is not found)."""
        if not reason or not reason.strip():
            raise InvalidInput("a deactivation needs a reason (--reason)")
        ids = list(dict.fromkeys(int(i) for i in pattern_ids))
        if not ids:
            raise InvalidInput("name at least one pattern id")
        p = t.patterns.c
        user = acting_name()
        only = None if dataset is None else self._dataset_id(dataset)
        with write(self._engine) as conn:
            lock_patterns(conn)
            now = timestamps.now_us()  # after the lock: see lock_patterns
            owner, _ = owners(conn, [i if in_int64(i) else -1 for i in ids])
            dataset_of = dict(zip(ids, owner.tolist(), strict=True))
            for i in ids:
                if dataset_of[i] < 0 or (only is not None and dataset_of[i] != only):
                    whose = "" if dataset is None else f" in dataset {dataset!r}"
                    raise NotFound(f"no pattern with id {i}{whose}; nothing was deactivated")
            off = changed(conn, ids)
            for i in ids:
                if i in off:
                    raise Conflict(
                        f"pattern {i} is inactive already (since {timestamps.iso(off[i])}); "
                        "nothing was deactivated"
                    )
            # A columnar dataset's patterns have no rows: their changes say it alone.
            d = t.datasets.c
            kinds = select(d.id, d.columnar).where(d.id.in_(set(dataset_of.values())))
            columnar_of = dict(conn.execute(kinds).all())
            rows = [i for i in ids if not columnar_of[dataset_of[i]]]
            if rows:
                conn.execute(update(t.patterns).where(p.id.in_(rows)).values(deactivated_at=now))
            conn.execute(
                insert(t.pattern_changes),
                [
                    {
                        "pattern_id": i,
                        "dataset_id": dataset_of[i],
                        "kind": "deactivate",
                        "new_pattern_id": None,
                        "reason": reason,
                        "changed_by": user,
                        "changed_at": now,
                    }
                    for i in ids
                ],
            )
        return len(ids)

    def _dataset_id(self, name: str) -> int:
        with read(self._engine) as conn:
            found = conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == name)).first()
        if found is None:
            raise NotFound(f"no dataset named {name!r}")
        return int(found.id)

    def find(
        self, query: PatternQuery | None = None, *, after: int = 0, limit: int = 50
    ) -> PatternPage:
        """A page of the patterns ``query`` selects, in id order, with ids above
        ``after`` (the ``next_after`` of the page before): keyset paging, as fast on
        the hundredth page of a million patterns as on the first."""
        return page(self._engine, query or PatternQuery(), after=after, limit=limit)

    def count(
        self, query: PatternQuery | None = None, *, at_most: int = 10_000
    ) -> tuple[int, bool]:
        """How many patterns ``query`` selects, up to ``at_most``: (count, whether more)."""
        return count(self._engine, query or PatternQuery(), at_most=at_most)

    def history(self, pattern_id: int) -> PatternHistory:
        """Every version of the example that ``pattern_id`` is one version of."""
        with read(self._engine) as conn:
            row = self._row(conn, pattern_id)
            # Back to the first version ...
            while row.replaces_id is not None:
                row = self._row(conn, row.replaces_id)
            chain = [row]
            # ... then forward through the versions that replaced it.
            c = t.pattern_changes.c
            while True:
                nxt = conn.execute(
                    select(c.new_pattern_id).where(
                        c.pattern_id == chain[-1].id, c.new_pattern_id.is_not(None)
                    )
                ).scalar()
                if nxt is None:
                    break
                chain.append(self._row(conn, nxt))
            ids = [r.id for r in chain]
            changes = conn.execute(
                select(t.pattern_changes).where(c.pattern_id.in_(ids)).order_by(c.changed_at, c.id)
            ).all()
            return PatternHistory(
                tuple(self._pattern(conn, r) for r in chain),
                tuple(
                    PatternChange(
                        pattern_id=ch.pattern_id,
                        kind=ch.kind,
                        new_pattern_id=ch.new_pattern_id,
                        reason=ch.reason,
                        changed_by=ch.changed_by,
                        changed_at=timestamps.from_us(ch.changed_at),
                    )
                    for ch in changes
                ),
            )


def _array(value: Any) -> Any:
    import numpy as np

    return np.array([value], dtype=object if isinstance(value, str) else None)
