"""Reading the audit log (``store.audit``): who changed what, when, and from where.

The rows are written by the changes themselves, in their own transactions (see
:mod:`trenches.db.audit`, where :func:`~trenches.db.audit.change` and
:func:`~trenches.db.audit.acting_as` live). Nothing here, or anywhere in trenches,
updates or deletes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, or_, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput

#: The most rows one read of the log returns.
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class AuditEntry:
    """One change: when, who (a user, or ``local:<os user>`` for the command line),
    what (``action`` on ``target``, with its ``detail``) and from where."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    #: The account that acted; None for the local command line.
    user_id: int | None = None
    #: The client's address and the request's id, for a change made over the network.
    remote: str | None = None
    request_id: str | None = None


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        at=timestamps.from_us(row.at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        detail=orjson.loads(row.detail) if row.detail else {},
        user_id=row.user_id,
        remote=row.remote,
        request_id=row.request_id,
    )


class Audit:
    """The audit log, read-only: there is no way to edit it through trenches."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def list(
        self,
        *,
        user: str | None = None,
        action: str | None = None,
        since: str | datetime | int | None = None,
        limit: int = 100,
        target: str | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """The newest changes first, at most ``limit``: of one actor (a user name, or
        ``local:<os user>``), of one action or family of them (``models`` covers
        ``models.promote``), on targets starting with ``target`` (``model:cancer-clf``),
        since a time (ISO 8601, or ``3d`` for three days ago). ``before``: only entries
        older than that id, to page on from the last entry of a page (keyset paging)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit {limit} must be between 1 and {MAX_LIMIT}")
        a = t.audit_log.c
        query = select(t.audit_log).order_by(a.id.desc()).limit(limit)
        if user is not None:
            query = query.where(a.actor == user)
        if action is not None:
            query = query.where(
                or_(a.action == action, a.action.startswith(action + ".", autoescape=True))
            )
        if target:
            query = query.where(a.target.startswith(target, autoescape=True))
        if before is not None:
            query = query.where(a.id < before)
        start = timestamps.parse(since, what="since")
        if start is not None:
            query = query.where(a.at >= start)
        with read(self._engine) as conn:
            return [_entry(r) for r in conn.execute(query)]
