"""Roles per namespace, and the table of what each action needs.

A role holds every right of the roles before it in :data:`ROLES`. A user's grants give
them a role on a namespace: a dataset or model name, an fnmatch pattern of names
(``fraud-*``), or ``*`` for all; on a name, their role is the highest of the grants whose
pattern matches it. An admin account is admin everywhere; a disabled one has no role.

Deny by default: :data:`ACTIONS` names the least role each action needs, and an action
it does not name is refused to everyone, admins too, so that a new action without a
rule cannot slip through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from sqlalchemy import Engine, delete, exc, select, update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import read, write
from trenches.errors import Conflict, Forbidden, InvalidInput, NotFound
from trenches.team.accounts import User, user_from_row

#: The roles, each including the ones before it.
ROLES = ("viewer", "labeller", "tester", "maintainer", "approver", "admin")

#: Every action a user can be allowed, with the least role it needs.
ACTIONS: Mapping[str, str] = MappingProxyType(
    {
        # viewer: read everything of the namespace
        "datasets.read": "viewer",
        "patterns.read": "viewer",
        "snapshots.read": "viewer",
        "problems.read": "viewer",
        "runs.read": "viewer",
        "models.read": "viewer",
        "predictions.read": "viewer",
        "checks.read": "viewer",
        "requests.read": "viewer",
        "monitoring.read": "viewer",
        "traffic.read": "viewer",
        # labeller: labels, feedback, new patterns
        "patterns.add": "labeller",
        "patterns.relabel": "labeller",
        "feedback.add": "labeller",
        # tester: the problem database
        "problems.create": "tester",
        "problems.add": "tester",
        "problems.close": "tester",
        # maintainer: datasets, snapshots, runs, models, predictions, checks, candidates
        "datasets.create": "maintainer",
        "patterns.deactivate": "maintainer",
        "snapshots.create": "maintainer",
        "runs.create": "maintainer",
        "models.register": "maintainer",
        "predictions.create": "maintainer",
        "checks.run": "maintainer",
        "models.promote.candidate": "maintainer",
        # approver: releases
        "models.promote.production": "approver",
        "models.promote.force": "approver",
        "traffic.set": "approver",  # live traffic to a version is a release
        # admin: code that runs on load, accounts, the audit log
        "models.trust": "admin",
        "users.manage": "admin",
        "audit.read": "admin",
    }
)

#: The alias a maintainer may move; every other one is a release, an approver's.
CANDIDATE = "candidate"

_LONGEST_NAMESPACE = 200


def includes(role: str, required: str) -> bool:
    """Whether ``role`` holds the rights of ``required``."""
    return ROLES.index(role) >= ROLES.index(required)


def matches(pattern: str, namespace: str) -> bool:
    """Whether a grant on ``pattern`` covers ``namespace``. Only a grant on ``*`` covers
    ``*`` (everything): ``?`` or ``[*]`` cover names, not the whole store."""
    if namespace == "*":
        return pattern == "*"
    return fnmatchcase(namespace, pattern)


def role_at(grants: Iterable[tuple[str, str]], namespace: str) -> str | None:
    """The highest role of the ``(role, pattern)`` grants that cover ``namespace``."""
    found = [role for role, pattern in grants if matches(pattern, namespace)]
    return max(found, key=ROLES.index) if found else None


def promotion_action(alias: str, *, force: bool) -> str:
    """The action of moving ``alias`` (forced or not), as :data:`ACTIONS` names it."""
    if force:
        return "models.promote.force"
    return "models.promote.candidate" if alias == CANDIDATE else "models.promote.production"


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} must be one of {', '.join(ROLES)}")
    return role


def check_namespace(namespace: str) -> str:
    if (
        not isinstance(namespace, str)
        or not namespace
        or len(namespace) > _LONGEST_NAMESPACE
        or not namespace.isprintable()
        or any(c.isspace() for c in namespace)
    ):
        raise InvalidInput(
            f"namespace {namespace!r} must be a dataset or model name, a pattern of them "
            f"(fraud-*), or * for all: no spaces, at most {_LONGEST_NAMESPACE} characters"
        )
    return namespace


@dataclass(frozen=True)
class Grant:
    """A role of a user on a namespace."""

    id: int
    user: str
    role: str
    namespace: str
    created_at: datetime


def _grant(row: Any) -> Grant:
    return Grant(
        int(row.id), row.user_name, row.role, row.namespace, timestamps.from_us(row.created_at)
    )


class Grants:
    """Who holds which role where (``store.grants``), and what that allows."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def grant(self, user: str | User, role: str, namespace: str = "*") -> Grant:
        """Give ``user`` ``role`` on ``namespace``, replacing the role they held there.
        Granting the role they already hold changes nothing."""
        name = user.name if isinstance(user, User) else user
        check_role(role)
        check_namespace(namespace)
        held = next((g for g in self.list(name) if g.namespace == namespace), None)
        if held is not None and held.role == role:
            return held  # nothing to change, nothing to record
        detail = {"role": role, "namespace": namespace}
        with change("grants.add", f"user:{name}", detail):
            try:
                with write(self._engine) as conn:
                    user_id = self._user_id(conn, name)
                    if held is None:
                        conn.execute(
                            t.role_grants.insert().values(
                                user_id=user_id,
                                role=role,
                                namespace=namespace,
                                created_at=timestamps.now_us(),
                            )
                        )
                    else:
                        conn.execute(
                            update(t.role_grants)
                            .where(t.role_grants.c.id == held.id)
                            .values(role=role)
                        )
            except exc.IntegrityError:  # granted by someone else meanwhile
                raise Conflict(
                    f"{name}'s grant on {namespace!r} changed meanwhile; look again "
                    "(trenches grants list)"
                ) from None
        return next(g for g in self.list(name) if g.namespace == namespace)

    def revoke(self, user: str | User, namespace: str) -> Grant:
        """Take back ``user``'s grant on ``namespace`` (exactly as granted); returns it."""
        name = user.name if isinstance(user, User) else user
        held = [g for g in self.list(name) if g.namespace == namespace]
        if not held:
            raise NotFound(f"user {name!r} holds no grant on {namespace!r} (trenches grants list)")
        detail = {"role": held[0].role, "namespace": namespace}
        with change("grants.remove", f"user:{name}", detail), write(self._engine) as conn:
            conn.execute(delete(t.role_grants).where(t.role_grants.c.id == held[0].id))
        return held[0]

    def list(self, user: str | User | None = None) -> list[Grant]:
        """Every grant (or ``user``'s), by user and then namespace."""
        g = t.role_grants.c
        query = (
            select(t.role_grants, t.users.c.name.label("user_name"))
            .join(t.users, t.users.c.id == g.user_id)
            .order_by(t.users.c.name, g.namespace)
        )
        if user is not None:
            query = query.where(t.users.c.name == (user.name if isinstance(user, User) else user))
        with read(self._engine) as conn:
            return [_grant(r) for r in conn.execute(query)]

    def role_of(self, user: str | User, namespace: str) -> str | None:
        """``user``'s role on ``namespace`` (a dataset or model name, or ``*`` for the
        whole store), as the account and its grants are now: ``admin`` for an admin
        account, ``None`` for a disabled one or one without a grant that covers it."""
        with read(self._engine) as conn:
            users = t.users.c
            where = users.id == user.id if isinstance(user, User) else users.name == user
            row = conn.execute(select(t.users).where(where)).first()
            if row is None:
                raise NotFound(f"there is no user {user!r} (trenches users list)")
            account = user_from_row(row)
            g = t.role_grants.c
            grants = conn.execute(select(g.role, g.namespace).where(g.user_id == row.id)).all()
        if account.disabled:
            return None
        if account.admin:
            return "admin"
        return role_at([(r.role, r.namespace) for r in grants], namespace)

    def allowed(self, user: str | User, action: str, namespace: str = "*") -> bool:
        """Whether ``user`` may do ``action`` on ``namespace``; an action that
        :data:`ACTIONS` does not name is allowed to no one."""
        required = ACTIONS.get(action)
        if required is None:
            return False
        role = self.role_of(user, namespace)
        return role is not None and includes(role, required)

    def require(self, user: str | User, action: str, namespace: str = "*") -> None:
        """:meth:`allowed`, or :class:`~trenches.errors.Forbidden` saying what is needed."""
        if self.allowed(user, action, namespace):
            return
        name = user.name if isinstance(user, User) else user
        required = ACTIONS.get(action)
        if required is None:
            raise Forbidden(f"{action!r} is not an action anyone may do")
        where = "the whole store" if namespace == "*" else repr(namespace)
        raise Forbidden(f"{name} may not {action} on {where}: it needs the role {required}")

    @staticmethod
    def _user_id(conn: Any, name: str) -> int:
        found = conn.execute(select(t.users.c.id).where(t.users.c.name == name)).scalar()
        if found is None:
            raise NotFound(f"there is no user {name!r} (trenches users list)")
        return int(found)
