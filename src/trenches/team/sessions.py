"""Browser sessions (``store.sessions``): a user signs in with a name and password, and
the team server keeps them signed in with a secret in an HttpOnly cookie.

A session's secret and its CSRF token are random (32 bytes from :mod:`secrets`) and kept
only as SHA-256, as API tokens are. A request carried by the cookie that changes
anything must also show the CSRF token in a header: a page of another site can make the
browser send the cookie, but cannot read the token. Sessions end when the user signs out,
when they expire (12 hours by default), and at once for a disabled user.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import Actor, acting_as, change
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotAuthenticated
from trenches.json_form import json_shape
from trenches.team.accounts import Accounts, Identity, User, user_from_row
from trenches.team.tokens import digest

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: How long a session lasts unless given another lifetime.
LIFETIME = timedelta(hours=12)
REFUSED = "the session is not valid (signed out, expired, or its user is disabled)"
_LONGEST_SECRET = 200


@dataclass(frozen=True)
class Session:
    """A signed-in session, as listed (never its secrets)."""

    id: int
    user: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    remote: str | None = None


@json_shape(omit=("secret", "csrf"))
@dataclass(frozen=True)
class NewSession:
    """A session just started: its ``secret`` (for the cookie) and ``csrf`` token (for
    the page) are here only."""

    session: Session
    secret: str
    csrf: str

    def __repr__(self) -> str:
        return f"NewSession({self.session!r})"


@dataclass(frozen=True)
class SignedIn:
    """Who a session stands for, and whether a CSRF token is the session's."""

    user: User
    session_id: int
    csrf_hash: str

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(digest(token), self.csrf_hash)


class Sessions:
    """The store's browser sessions (``store.sessions``)."""

    def __init__(self, engine: Engine, accounts: Accounts) -> None:
        self._engine = engine
        self._accounts = accounts

    def sign_in(
        self,
        name: str,
        password: str,
        *,
        lifetime: timedelta = LIFETIME,
        remote: str | None = None,
    ) -> NewSession:
        """Check the password (:meth:`Accounts.verify`: refused alike for a wrong one,
        an unknown or a disabled user) and start a session."""
        if lifetime <= timedelta(0) or lifetime > timedelta(days=30):
            raise InvalidInput(f"a session lasts between a moment and 30 days, not {lifetime}")
        user = self._accounts.verify(name, password)
        return self.start(user, lifetime=lifetime, remote=remote)

    def sign_in_oidc(
        self,
        identity: Identity,
        *,
        lifetime: timedelta = LIFETIME,
        remote: str | None = None,
    ) -> NewSession:
        """Start a session for the account of an identity the provider vouched for
        (its ID token checked by the caller): the account linked to its issuer and
        subject, else a new one without roles (:meth:`Accounts.for_identity`)."""
        user = self._accounts.for_identity(identity, remote=remote)
        with acting_as(Actor(user.name, user.id, remote=remote)):
            return self.start(
                user, lifetime=lifetime, remote=remote, detail={"issuer": identity.issuer}
            )

    def start(
        self,
        user: User,
        *,
        lifetime: timedelta = LIFETIME,
        remote: str | None = None,
        detail: dict[str, str] | None = None,
    ) -> NewSession:
        """Start a session for ``user``, who has proved who they are (a password, an
        identity provider); a disabled account is refused."""
        if lifetime <= timedelta(0) or lifetime > timedelta(days=30):
            raise InvalidInput(f"a session lasts between a moment and 30 days, not {lifetime}")
        if user.disabled:
            raise NotAuthenticated(REFUSED)
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = timestamps.now_us()
        expires = now + lifetime // timedelta(microseconds=1)
        # Who signs in is the one acting: the row names them, not the server's OS user.
        with (
            acting_as(Actor(user.name, user.id, remote=remote)),
            change(
                "sessions.start", f"user:{user.name}", {"remote": remote, **(detail or {})}
            ) as marked,
            write(self._engine) as conn,
        ):
            session_id = conn.execute(
                t.sessions.insert().values(
                    user_id=user.id,
                    secret_hash=digest(secret),
                    csrf_hash=digest(csrf),
                    created_at=now,
                    expires_at=expires,
                    remote=remote,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            marked.target = f"session:{session_id}"
        made = Session(
            int(session_id),
            user.name,
            timestamps.from_us(now),
            timestamps.from_us(expires),
            remote=remote,
        )
        return NewSession(made, secret, csrf)

    def verify(self, secret: str) -> SignedIn:
        """The user a session's secret stands for, or :class:`NotAuthenticated`."""
        if not isinstance(secret, str) or len(secret) > _LONGEST_SECRET:
            raise NotAuthenticated(REFUSED)
        s = t.sessions.c
        with read(self._engine) as conn:
            row = conn.execute(
                select(s.id.label("session_id"), s.csrf_hash, s.expires_at, s.ended_at, *t.users.c)
                .join(t.users, t.users.c.id == s.user_id)
                .where(s.secret_hash == digest(secret))
            ).first()
        if (
            row is None
            or row.ended_at is not None
            or row.expires_at <= timestamps.now_us()
            or row.disabled_at is not None
        ):
            raise NotAuthenticated(REFUSED)
        return SignedIn(user_from_row(row), int(row.session_id), row.csrf_hash)

    def sign_out(self, secret: str) -> None:
        """End the session whose secret this is (nothing, if it has ended already)."""
        s = t.sessions.c
        with change("sessions.end", "session:"), write(self._engine) as conn:
            conn.execute(
                update(t.sessions)
                .where(s.secret_hash == digest(secret), s.ended_at.is_(None))
                .values(ended_at=timestamps.now_us())
            )

    def list(self, user: str | None = None, *, active: bool = True) -> list[Session]:
        """Sessions (of ``user``), newest first; only those still valid unless
        ``active=False``."""
        s, u = t.sessions.c, t.users.c
        query = select(t.sessions, u.name).join(t.users, u.id == s.user_id).order_by(s.id.desc())
        if user is not None:
            query = query.where(u.name == user)
        if active:
            query = query.where(s.ended_at.is_(None), s.expires_at > timestamps.now_us())
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            Session(
                int(r.id),
                r.name,
                timestamps.from_us(r.created_at),
                timestamps.from_us(r.expires_at),
                None if r.ended_at is None else timestamps.from_us(r.ended_at),
                r.remote,
            )
            for r in rows
        ]
