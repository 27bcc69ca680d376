"""Who is acting, and what change they are making: the audit log's writing side.

It lives at the database level because :func:`trenches.db.engine.write`, the one door of
every write transaction, writes a marked change's audit row in that very transaction,
just before it commits: a change that rolls back leaves no row, one that commits has
exactly one. Reading the log is :class:`trenches.team.audit.Audit` (``store.audit``).

- :func:`acting_as` says who is acting in a block (the server sets it per request, from
  the token or session it checked); outside one, the actor is the local OS user,
  ``local:<name>``, as for the command line.
- :func:`change` marks a block as one change (``problems.add`` of ``problem:slug``). Its
  row goes into the first write transaction that commits inside the block; a change made
  of several transactions records one row. A change marked inside another is part of it:
  the outer one, what was asked for, is the one recorded.

Both are context variables, so threads and asyncio tasks of a server each keep their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from trenches import config, timestamps

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: The actor of the local command line and of library calls outside :func:`acting_as`.
LOCAL_PREFIX = "local:"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user (``user_id`` and name), or the local OS user
    (no id, ``local:<os user>``), with where the request came from when it came over
    the network."""

    name: str
    user_id: int | None = None
    remote: str | None = None
    request_id: str | None = None


@dataclass
class Change:
    """A change being made; its target and detail may be made precise inside the block
    (a resolved version, a new id) until its row is written."""

    action: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)
    #: Whether its audit row is committed (in the change's first write transaction).
    recorded: bool = False
    #: False for a change marked inside another: it is part of that one, never recorded.
    outermost: bool = True


_actor: ContextVar[Actor | None] = ContextVar("trenches_actor", default=None)
_change: ContextVar[Change | None] = ContextVar("trenches_change", default=None)


def local_actor() -> Actor:
    """The OS user running this process, as the audit log names them."""
    return Actor(LOCAL_PREFIX + (config.current_user() or "unknown"))


def acting_name() -> str | None:
    """The name a record's ``..._by`` column keeps (who relabelled, promoted, checked):
    the signed-in user acting here (the team server's caller), else the OS user."""
    actor = _actor.get()
    return actor.name if actor is not None else config.current_user()


def current_actor() -> Actor:
    """Who is acting here: the actor of the enclosing :func:`acting_as`, or the local
    OS user."""
    return _actor.get() or local_actor()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Every change marked inside the block is recorded as ``actor``'s."""
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


@contextmanager
def change(action: str, target: str, detail: Mapping[str, Any] | None = None) -> Iterator[Change]:
    """Mark the block as one change: ``with change("problems.add", "problem:slug"):``.

    Its audit row is written in the first write transaction that commits inside the
    block. Inside another change, the block is part of that one and records nothing;
    inside a change of the same action, it yields that change.
    """
    outer = _change.get()
    marked = Change(action, target, dict(detail or {}), outermost=outer is None)
    if outer is not None:
        # The same action marked again (a route's change, then the library's) is that
        # change: what the inner block learns (a new id) makes its target precise.
        yield outer if outer.action == action and not outer.recorded else marked
        return
    token = _change.set(marked)
    try:
        yield marked
    finally:
        _change.reset(token)


def write_pending(conn: Connection) -> Change | None:
    """Insert the audit row of the change being made, when there is one and its row is
    not written yet; returns the change, for the caller to mark it recorded once the
    transaction has committed. Called by :func:`trenches.db.engine.write` only."""
    marked = _change.get()
    if marked is None or marked.recorded:
        return None
    import orjson

    from trenches.db import schema as t
    from trenches.json_form import to_json

    actor = current_actor()
    conn.execute(
        t.audit_log.insert().values(
            at=timestamps.now_us(),
            user_id=actor.user_id,
            actor=actor.name,
            action=marked.action,
            target=marked.target,
            detail=orjson.dumps(to_json(marked.detail)).decode() if marked.detail else None,
            remote=actor.remote,
            request_id=actor.request_id,
        )
    )
    return marked
