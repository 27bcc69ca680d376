"""User accounts: names, argon2 password hashes, the admin flag, disabling.

A password is stored only as an argon2id hash (argon2-cffi's ``PasswordHasher``, its
parameters and salt inside the hash string). Signing in with a wrong password, as an
unknown user or as a disabled one fails alike, with one message and one hash's worth of
time, so that neither tells which names exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, exc, select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import Actor, acting_as, change
from trenches.db.engine import read, write
from trenches.errors import Conflict, InvalidInput, NotAuthenticated, NotFound

if TYPE_CHECKING:
    from argon2 import PasswordHasher

#: The shortest password accepted: a passphrase, not a word.
MIN_PASSWORD = 12
#: The longest: hashing a megabyte on every sign-in would be a way to load a server.
MAX_PASSWORD = 1024

# No ':' in a name: "local:<os user>" names the command line's actor in the audit log.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,99}$")

#: The one message of every refused sign-in.
REFUSED = "wrong user name or password (or the account is disabled)"


@dataclass(frozen=True)
class User:
    """An account: who signs in (with a password, tokens, or an identity provider)."""

    id: int
    name: str
    admin: bool
    created_at: datetime
    disabled_at: datetime | None = None
    #: Whether the account can sign in with a password.
    has_password: bool = False
    #: The identity provider's issuer and subject, once the account is linked to one.
    oidc_issuer: str | None = None
    oidc_subject: str | None = None

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


@dataclass(frozen=True)
class Identity:
    """Who an identity provider says signed in: its ``issuer`` and the ``subject`` it
    names them by (never reused), and the names it offers for a new account."""

    issuer: str
    subject: str
    preferred_username: str | None = None
    email: str | None = None

    @property
    def account_name(self) -> str | None:
        """The name of a new account: ``preferred_username`` if it is a valid user
        name, else ``email`` if it is one, else None."""
        for name in (self.preferred_username, self.email):
            if isinstance(name, str) and _NAME.match(name):
                return name
        return None


def user_from_row(row: Any) -> User:
    """A :class:`User` from a row holding the ``users`` columns."""
    return User(
        id=int(row.id),
        name=row.name,
        admin=bool(row.admin),
        created_at=timestamps.from_us(row.created_at),
        disabled_at=None if row.disabled_at is None else timestamps.from_us(row.disabled_at),
        has_password=row.password_hash is not None,
        oidc_issuer=row.oidc_issuer,
        oidc_subject=row.oidc_subject,
    )


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"user name {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '.', '-' and '@' (at most 100)"
        )
    return name


def check_password(password: str) -> str:
    """Refuse, without echoing it, a password too short or too long to be used."""
    if not isinstance(password, str):
        raise InvalidInput("a password is text")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD} characters (this one has "
            f"{len(password)}); a few words make a good one"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD} characters")
    return password


class Accounts:
    """The store's user accounts (``store.accounts``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @cached_property
    def _hasher(self) -> PasswordHasher:
        from argon2 import PasswordHasher

        return PasswordHasher()  # argon2id, RFC 9106's low-memory profile

    def create(self, name: str, *, password: str | None = None, admin: bool = False) -> User:
        """A new account; without a password it signs in only with tokens (or, later,
        an identity provider)."""
        check_user_name(name)
        hashed = None if password is None else self._hasher.hash(check_password(password))
        detail = {"admin": admin, "password": password is not None}
        with change("users.create", f"user:{name}", detail):
            try:
                with write(self._engine) as conn:
                    if conn.execute(select(t.users.c.id).where(t.users.c.name == name)).first():
                        raise Conflict(f"a user named {name!r} exists already")
                    conn.execute(
                        t.users.insert().values(
                            name=name,
                            password_hash=hashed,
                            admin=admin,
                            created_at=timestamps.now_us(),
                        )
                    )
            except exc.IntegrityError:  # created by someone else meanwhile
                raise Conflict(f"a user named {name!r} exists already") from None
        return self.get(name)

    def get(self, name: str) -> User:
        with read(self._engine) as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise NotFound(f"there is no user {name!r} (trenches users list names them)")
        return user_from_row(row)

    def list(self, *, disabled: bool = True) -> list[User]:
        """Every account, in the order they were made; ``disabled=False`` leaves out the
        disabled ones."""
        query = select(t.users).order_by(t.users.c.id)
        if not disabled:
            query = query.where(t.users.c.disabled_at.is_(None))
        with read(self._engine) as conn:
            return [user_from_row(r) for r in conn.execute(query)]

    def set_password(self, name: str, password: str) -> User:
        """Give the account a new password (its tokens stay valid)."""
        hashed = self._hasher.hash(check_password(password))
        with change("users.password", f"user:{name}"):
            self._update(name, password_hash=hashed)
        return self.get(name)

    def disable(self, name: str) -> User:
        """The account can no longer sign in, with its password or any of its tokens; it
        stays, so that the audit log keeps naming it."""
        if self.get(name).disabled:
            raise Conflict(f"user {name!r} is disabled already")
        with change("users.disable", f"user:{name}"):
            self._update(name, disabled_at=timestamps.now_us())
        return self.get(name)

    def enable(self, name: str) -> User:
        """Undo :meth:`disable`: the account and its unexpired tokens work again."""
        if not self.get(name).disabled:
            raise Conflict(f"user {name!r} is not disabled")
        with change("users.enable", f"user:{name}"):
            self._update(name, disabled_at=None)
        return self.get(name)

    def _update(self, name: str, **values: Any) -> None:
        with write(self._engine) as conn:
            done = conn.execute(update(t.users).where(t.users.c.name == name).values(**values))
            if done.rowcount != 1:
                raise NotFound(f"there is no user {name!r} (trenches users list names them)")

    def verify(self, name: str, password: str) -> User:
        """The account ``name`` signs in with ``password``, or :class:`NotAuthenticated`.

        An unknown name, an account without a password, a wrong password and a disabled
        account are refused alike, each after one hash. A hash made with older
        parameters is replaced by one with the current ones."""
        from argon2.exceptions import InvalidHashError, VerificationError

        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            raise NotAuthenticated(REFUSED)
        with read(self._engine) as conn:
            row = conn.execute(select(t.users).where(t.users.c.name == name)).first()
        if row is None or row.password_hash is None:
            self._hasher.hash(password)  # the time a check would take, for nothing
            raise NotAuthenticated(REFUSED)
        try:
            self._hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            raise NotAuthenticated(REFUSED) from None
        if row.disabled_at is not None:
            raise NotAuthenticated(REFUSED)
        if self._hasher.check_needs_rehash(row.password_hash):
            with write(self._engine, audited=False) as conn:
                conn.execute(
                    update(t.users)
                    .where(t.users.c.id == row.id, t.users.c.password_hash == row.password_hash)
                    .values(password_hash=self._hasher.hash(password))
                )
        return user_from_row(row)

    def link(self, name: str, *, issuer: str, subject: str) -> User:
        """Let the account ``name`` sign in through the identity provider ``issuer`` as
        ``subject`` (an admin's decision: a first sign-in never links by name)."""
        if not issuer or not subject or len(issuer) > 500 or len(subject) > 255:
            raise InvalidInput("give the provider's issuer URL and the user's subject (sub)")
        user = self.get(name)
        linked = self.find_identity(issuer, subject)
        if linked is not None and linked.id != user.id:
            raise Conflict(
                f"user {linked.name!r} is linked to subject {subject!r} of {issuer} already"
            )
        with change("users.link", f"user:{name}", {"issuer": issuer, "subject": subject}):
            self._update(name, oidc_issuer=issuer, oidc_subject=subject)
        return self.get(name)

    def find_identity(self, issuer: str, subject: str) -> User | None:
        """The account linked to ``subject`` of ``issuer``, or None."""
        u = t.users.c
        with read(self._engine) as conn:
            row = conn.execute(
                select(t.users).where(u.oidc_issuer == issuer, u.oidc_subject == subject)
            ).first()
        return None if row is None else user_from_row(row)

    def for_identity(self, identity: Identity, *, remote: str | None = None) -> User:
        """The account of an identity the provider vouched for: the one linked to it,
        else a new account (named from its claims) with no roles, linked to it. An
        account of the same name that is not linked is never taken over; a disabled
        account is refused."""
        user = self.find_identity(identity.issuer, identity.subject)
        if user is None:
            user = self._create_for(identity, remote)
        if user.disabled:
            raise NotAuthenticated(REFUSED)
        return user

    def _create_for(self, identity: Identity, remote: str | None) -> User:
        name = identity.account_name
        if name is None:
            raise NotAuthenticated(
                "the identity provider gave no usable user name (preferred_username or "
                "email); an admin can create an account and link it (trenches users link)"
            )
        detail = {"admin": False, "password": False, "issuer": identity.issuer}
        with (
            acting_as(Actor(name, remote=remote)),
            change("users.create", f"user:{name}", detail),
        ):
            try:
                with write(self._engine) as conn:
                    if conn.execute(select(t.users.c.id).where(t.users.c.name == name)).first():
                        raise _Taken()
                    conn.execute(
                        t.users.insert().values(
                            name=name,
                            admin=False,
                            created_at=timestamps.now_us(),
                            oidc_issuer=identity.issuer,
                            oidc_subject=identity.subject,
                        )
                    )
            except (_Taken, exc.IntegrityError):
                raise NotAuthenticated(
                    f"an account named {name!r} exists and is not linked to this sign-in; "
                    f"an admin links it: trenches users link {name} --issuer "
                    f"{identity.issuer} --subject {identity.subject}"
                ) from None
        return self.get(name)


class _Taken(Exception):
    """The name of a new account is taken."""
