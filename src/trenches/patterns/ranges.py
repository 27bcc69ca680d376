"""Where pattern ids come from: every import (and relabel) takes the next consecutive
ids, and its batch keeps their range (``import_batches.first_pattern_id`` ..
``last_pattern_id``), so that which batch, and so which dataset, an id is of can be
answered without a database row a pattern."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from trenches.db import schema as t


def next_pattern_id(conn: Connection) -> int:
    """The first id of the next patterns made: one past the largest that a pattern or
    a batch's range holds. Called under :func:`~trenches.db.engine.lock_patterns`, so
    that no other writer takes the same ids before this transaction commits."""
    p, b = t.patterns.c, t.import_batches.c
    top, ranged = conn.execute(
        select(
            select(func.max(p.id)).scalar_subquery(),
            select(func.max(b.last_pattern_id)).scalar_subquery(),
        )
    ).one()
    return max(int(top or 0), int(ranged or 0)) + 1


def record_range(conn: Connection, batch_id: int, first_id: int, last_id: int) -> None:
    """The batch's row keeps the consecutive ids its patterns took."""
    b = t.import_batches
    conn.execute(
        update(b)
        .where(b.c.id == batch_id)
        .values(first_pattern_id=first_id, last_pattern_id=last_id)
    )
