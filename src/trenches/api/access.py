"""Who is calling, and whether they may: every route of ``/api/v1`` declares its rule
with :class:`Allow` as a dependency, and the app refuses to start with a route that
declares none (deny by default; :func:`trenches.api.app.create_app`).

A caller shows a token (``Authorization: Bearer trn_...``, never in a URL), or a
browser its session cookie (and, for a change, the session's CSRF token);
the rule names the action (an entry of :data:`trenches.team.roles.ACTIONS`) and how to
find the namespace the request is about (a dataset or model name), and the caller's
grants must allow that action there. The dependency hands the route a :class:`Caller`:
the store, the user, and :meth:`Caller.changing`, the block in which a change is made
and recorded in the audit log as the caller's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request

from trenches.db.audit import Actor, Change, acting_as, change
from trenches.errors import Forbidden, InvalidInput, NotAuthenticated
from trenches.names import INT64_MAX
from trenches.team.roles import ACTIONS

if TYPE_CHECKING:
    from trenches.store import Store
    from trenches.team.accounts import User

#: What a rule asks of the request: the namespace (dataset or model name) it is about.
Namespace = Callable[[Request, "Store"], str]
#: The action of a route whose action depends on the request (a promotion's alias).
ActionOf = Callable[[Request], str]


def anywhere(request: Request, store: Store) -> str:
    """A request about no one namespace (a list, filtered to what the caller may see):
    the caller needs the action in at least one namespace."""
    return ANYWHERE


#: The namespace of :func:`anywhere` (no namespace is named so).
ANYWHERE = ""


def whole_store(request: Request, store: Store) -> str:
    """A request about the whole store (the audit log): a grant on ``*`` itself."""
    return "*"


def path(name: str) -> Namespace:
    """The namespace is the path parameter ``name`` (a dataset's or model's name)."""

    def namespace(request: Request, store: Store) -> str:
        return str(request.path_params[name])

    namespace.__doc__ = f"the path parameter {name!r}"
    return namespace


def problem_dataset(request: Request, store: Store) -> str:
    """The dataset of the problem named by the path parameter ``slug``."""
    return store.problems.get(str(request.path_params["slug"])).dataset


def id_param(request: Request, name: str) -> int:
    """The path parameter ``name`` as a stored id (a whole number, 1 to 2**63 - 1)."""
    text = str(request.path_params[name])
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= INT64_MAX:
        raise InvalidInput(f"{name} {text!r} must be a whole number from 1", field=name)
    return int(text)


def pattern_dataset(request: Request, store: Store) -> str:
    """The dataset of the pattern named by the path parameter ``pattern_id``."""
    return store.patterns.get(id_param(request, "pattern_id")).dataset


def snapshot_dataset(request: Request, store: Store) -> str:
    """The dataset of the snapshot named by the path parameter ``snapshot_id``."""
    return store.snapshots.get(id_param(request, "snapshot_id")).dataset


@dataclass(frozen=True)
class Caller:
    """Who is calling, as a route sees them: the store, the signed-in user, and how the
    audit log names them."""

    store: Store
    user: User
    actor: Actor

    def may(self, action: str, namespace: str) -> bool:
        """Whether the caller's grants allow ``action`` on ``namespace`` (to filter a list)."""
        return self.store.grants.allowed(self.user, action, namespace)

    @contextmanager
    def changing(
        self, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> Iterator[Change]:
        """The block makes one change: its audit row names the caller, the request's
        address and id, and is written in the change's own transaction."""
        with acting_as(self.actor), change(action, target, detail) as marked:
            yield marked


#: The cookie of a browser's session, and the header its changes must carry.
SESSION_COOKIE = "trenches_session"
CSRF_HEADER = "x-csrf-token"
#: The cookie that keeps a session's CSRF token for the web UI's pages to show.
CSRF_COOKIE = "trenches_csrf"
#: Methods that change nothing: a session's request needs no CSRF token for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def signed_in_user(request: Request, store: Store) -> User:
    """Who is calling: the user of the bearer token, else of the session cookie (whose
    changes must show the session's CSRF token); else :class:`NotAuthenticated`."""
    if "authorization" in request.headers:
        return store.tokens.verify(_bearer(request))
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated(
            "sign in with a token (Authorization: Bearer TOKEN) or a session "
            "(POST /api/v1/sessions)"
        )
    session = store.sessions.verify(cookie)
    if request.method not in SAFE_METHODS and not session.csrf_matches(
        request.headers.get(CSRF_HEADER)
    ):
        raise Forbidden("a change made with a session needs its CSRF token in X-CSRF-Token")
    return session.user


class Allow:
    """The rule of a route: ``caller: Annotated[Caller, Depends(Allow("problems.add",
    problem_dataset))]``. ``action`` is an action of the roles table, or a function of
    the request whose possible answers are ``actions``."""

    def __init__(
        self,
        action: str | ActionOf | None,
        namespace: Namespace = anywhere,
        *,
        actions: tuple[str, ...] = (),
    ) -> None:
        self.action = action
        self.namespace = namespace
        #: Every action the route may ask for (none: any signed-in user may call it).
        self.actions = (action,) if isinstance(action, str) else actions
        unknown = [a for a in self.actions if a not in ACTIONS]
        if unknown or (action is not None and not self.actions):
            raise ValueError(f"no rule in trenches.team.roles.ACTIONS for {unknown or action}")

    @classmethod
    def signed_in(cls) -> Allow:
        """The rule of a route any signed-in user may call (who am I)."""
        return cls(None)

    # A plain ``def``: FastAPI runs it in its thread pool, as it reads the database.
    def __call__(self, request: Request) -> Caller:
        store: Store = request.app.state.store
        user = signed_in_user(request, store)
        client = request.client
        actor = Actor(
            user.name,
            user.id,
            remote=client.host if client is not None else None,
            request_id=request.headers.get("x-request-id") or uuid.uuid4().hex,
        )
        caller = Caller(store, user, actor)
        if self.action is None:
            return caller
        action = self.action if isinstance(self.action, str) else self.action(request)
        namespace = self.namespace(request, store)
        if namespace == ANYWHERE:
            if not _anywhere(store, user, action):
                raise Forbidden(f"{user.name} may not {action} anywhere")
        else:
            store.grants.require(user, action, namespace)
        return caller


def _bearer(request: Request) -> str:
    """The token of ``Authorization: Bearer TOKEN``; a request without one is refused."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "sign in with a token: Authorization: Bearer TOKEN (trenches tokens create)"
        )
    return token.strip()


def _anywhere(store: Store, user: User, action: str) -> bool:
    """Whether any grant of ``user`` allows ``action`` (an admin may everything)."""
    if user.admin:
        return True
    return any(store.grants.allowed(user, action, g.namespace) for g in store.grants.list(user))
