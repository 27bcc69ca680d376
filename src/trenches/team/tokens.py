"""API tokens: a secret shown once, stored only as its SHA-256, with an expiry, a last
use and a revocation.

A token's secret is 32 random bytes (``secrets``), so a fast hash keeps it safe: there is
nothing to guess, and a slow password hash would only slow every request down.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from trenches.team.accounts import User, user_from_row

#: How every secret starts: a scanner (or a person) knows one when they see it.
PREFIX = "trn_"
#: Characters of a secret kept in the clear, to tell tokens apart in lists.
SHOWN = len(PREFIX) + 6
#: A token's last use is written at most this often, so that reads stay reads.
LAST_USED_EVERY = timedelta(minutes=1)

#: The one message of every refused token.
REFUSED = "the token is not valid (unknown, revoked or expired, or its user is disabled)"

_LONGEST_SECRET = 200


@dataclass(frozen=True)
class Token:
    """An API token as lists show it: never its secret."""

    id: int
    user: str
    name: str
    #: The secret's first characters (``trn_AbC123``), to recognise it.
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, at: datetime | None = None) -> str:
        """``active``, ``expired`` or ``revoked``, at ``at`` (by default now)."""
        if self.revoked_at is not None:
            return "revoked"
        now = at or datetime.now(UTC)
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewToken:
    """A token just made, with its secret: shown this once, stored nowhere."""

    token: Token
    secret: str = field(repr=False)


def digest(secret: str) -> str:
    """What the store keeps of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_token_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidInput("a token needs a name of 1 to 100 characters (what it is for: ci)")
    if not name.isprintable():
        raise InvalidInput(f"token name {name!r} holds a control character")
    return name


def _token(row: Any, user: str) -> Token:
    def when(us: int | None) -> datetime | None:
        return None if us is None else timestamps.from_us(us)

    return Token(
        id=int(row.id),
        user=user,
        name=row.name,
        prefix=row.prefix,
        created_at=timestamps.from_us(row.created_at),
        expires_at=when(row.expires_at),
        last_used_at=when(row.last_used_at),
        revoked_at=when(row.revoked_at),
    )


class Tokens:
    """The store's API tokens (``store.tokens``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, user: str | User, name: str, *, expires_in: timedelta | None) -> NewToken:
        """A new token for ``user``, expiring after ``expires_in`` (``None``: never; say
        so on purpose). Its ``secret`` is in the result only: keep it now."""
        _check_token_name(name)
        if expires_in is not None and expires_in <= timedelta(0):
            raise InvalidInput(f"a token's lifetime must be positive, not {expires_in}")
        user_name = user.name if isinstance(user, User) else user
        secret = PREFIX + secrets.token_urlsafe(32)
        now = timestamps.now_us()
        expires = None
        if expires_in is not None:
            expires = now + expires_in // timedelta(microseconds=1)
            if expires > timestamps.LATEST_US:
                raise InvalidInput(f"a token cannot live for {expires_in}; give a shorter time")
        detail = {"user": user_name, "name": name, "expires_at": timestamps.iso(expires)}
        with change("tokens.create", "token:", detail) as marked, write(self._engine) as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == user_name)).first()
            if row is None:
                raise NotFound(f"there is no user {user_name!r} (trenches users list)")
            if row.disabled_at is not None:
                raise Conflict(f"user {user_name!r} is disabled; enable it first")
            token_id = conn.execute(
                t.api_tokens.insert().values(
                    user_id=row.id,
                    name=name,
                    token_hash=digest(secret),
                    prefix=secret[:SHOWN],
                    created_at=now,
                    expires_at=expires,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            marked.target = f"token:{token_id}"
        return NewToken(self.get(int(token_id)), secret)

    def get(self, token_id: int) -> Token:
        with read(self._engine) as conn:
            row = conn.execute(
                select(t.api_tokens, t.users.c.name.label("user_name"))
                .join(t.users, t.users.c.id == t.api_tokens.c.user_id)
                .where(t.api_tokens.c.id == token_id)
            ).first()
        if row is None:
            raise NotFound(f"there is no token {token_id} (trenches tokens list)")
        return _token(row, row.user_name)

    def list(self, user: str | User | None = None) -> list[Token]:
        """Every token (or ``user``'s), oldest first, revoked and expired ones too."""
        query = (
            select(t.api_tokens, t.users.c.name.label("user_name"))
            .join(t.users, t.users.c.id == t.api_tokens.c.user_id)
            .order_by(t.api_tokens.c.id)
        )
        if user is not None:
            query = query.where(t.users.c.name == (user.name if isinstance(user, User) else user))
        with read(self._engine) as conn:
            return [_token(r, r.user_name) for r in conn.execute(query)]

    def revoke(self, token_id: int) -> Token:
        """The token no longer lets anyone in; it stays listed, as revoked."""
        if self.get(token_id).revoked_at is not None:
            raise Conflict(f"token {token_id} is revoked already")
        with change("tokens.revoke", f"token:{token_id}"), write(self._engine) as conn:
            conn.execute(
                update(t.api_tokens)
                .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=timestamps.now_us())
            )
        return self.get(token_id)

    def verify(self, secret: str) -> User:
        """The user a secret stands for, or :class:`NotAuthenticated` (the same for an
        unknown, revoked or expired token and a disabled user). Notes the token's use,
        at most once a minute."""
        if not isinstance(secret, str) or len(secret) > _LONGEST_SECRET:
            raise NotAuthenticated(REFUSED)
        tk = t.api_tokens.c
        now = timestamps.now_us()
        with read(self._engine) as conn:
            row = conn.execute(
                select(
                    tk.id.label("token_id"),
                    tk.expires_at,
                    tk.revoked_at,
                    tk.last_used_at,
                    *t.users.c,
                )
                .join(t.users, t.users.c.id == tk.user_id)
                .where(tk.token_hash == digest(secret))
            ).first()
        if (
            row is None
            or row.revoked_at is not None
            or (row.expires_at is not None and row.expires_at <= now)
            or row.disabled_at is not None
        ):
            raise NotAuthenticated(REFUSED)
        every = LAST_USED_EVERY // timedelta(microseconds=1)
        if row.last_used_at is None or now - row.last_used_at >= every:
            with write(self._engine, audited=False) as conn:
                conn.execute(
                    update(t.api_tokens)
                    .where(
                        tk.id == row.token_id,
                        or_(tk.last_used_at.is_(None), tk.last_used_at <= now - every),
                    )
                    .values(last_used_at=now)
                )
        return user_from_row(row)
