"""The team server's application: the routers of :mod:`trenches.api.routes` under
``/api/v1``, ``/health``, one exception handler answering problem details, security
headers on every answer, and a body limit.

Deny by default: :func:`create_app` refuses to build an app with a route under
``/api/v1`` that does not declare its rule (:class:`trenches.api.access.Allow`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from trenches.api import errors, metrics
from trenches.api.access import Allow
from trenches.api.limits import SignInLimits
from trenches.api.metrics import UNMATCHED, ApiMetrics
from trenches.api.oidc import OidcSettings, Provider
from trenches.api.routes import (
    audit,
    checks,
    datasets,
    explanations,
    health,
    me,
    models,
    monitoring,
    oidc,
    patterns,
    predictions,
    problems,
    requests,
    runs,
    sessions,
    snapshots,
    traffic,
)
from trenches.store import Store

PREFIX = "/api/v1"
#: Routers under ``/api/v1``, every route of which declares its rule.
GUARDED = (
    me.router,
    sessions.signed_in,
    datasets.router,
    patterns.router,
    snapshots.router,
    problems.router,
    runs.router,
    models.router,
    predictions.router,
    checks.router,
    explanations.router,
    requests.router,
    monitoring.router,
    traffic.router,
    audit.router,
)
#: Routers that answer without a token: the probe, and signing in.
OPEN = (health.router, metrics.router)
OPEN_API = (sessions.router, oidc.router)
#: Largest request body by default, in bytes.
MAX_BODY = 64 * 1024 * 1024

#: Sent with every answer: no sniffing, no framing, no referrer, nothing cached.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]


@dataclass(frozen=True)
class Settings:
    """How to serve the store: which store, the largest body a request may send, and
    the identity provider users may sign in through (none: passwords and tokens only)."""

    store: str | None = None  # folder, file or URL; None: .trenches here / $TRENCHES_DB_URL
    max_body: int = MAX_BODY
    oidc: OidcSettings | None = None


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The application over the store of ``settings`` (or over ``store``, already open,
    which the app then does not close)."""
    import trenches

    owned = store is None
    opened = store if store is not None else trenches.open(settings.store, create=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                opened.close()

    app = FastAPI(
        title="trenches team server",
        description="One trenches store shared by a team: datasets, problems, models, "
        "checks and the audit log, each route allowed by the caller's roles.",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
    )
    app.state.store = opened
    app.state.sign_in_limits = SignInLimits()
    app.state.metrics = ApiMetrics()
    app.state.oidc = None if settings.oidc is None else Provider.from_settings(settings.oidc)
    check_rules(GUARDED)
    for router in GUARDED:
        app.include_router(router, prefix=PREFIX)
    for router in OPEN:
        app.include_router(router)
    for router in OPEN_API:
        app.include_router(router, prefix=PREFIX)
    for kind in errors.HANDLED:
        app.add_exception_handler(kind, errors.answer)
    app.add_middleware(Guard, max_body=settings.max_body, metrics=app.state.metrics)
    return app


def rule_of(route: APIRoute) -> Allow | None:
    """The rule a route declares (its :class:`Allow` dependency), or None."""
    found = [d.call for d in route.dependant.dependencies if isinstance(d.call, Allow)]
    for dependency in route.dependant.dependencies:
        found += [d.call for d in dependency.dependencies if isinstance(d.call, Allow)]
    return found[0] if len(found) == 1 else None


def guarded_routes(
    routers: Iterable[APIRouter] = GUARDED, *, prefix: str = PREFIX
) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path under ``prefix``, route) of ``routers``."""
    return [
        (method, prefix + route.path, route)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods or ())
    ]


def check_rules(routers: Iterable[APIRouter]) -> None:
    """Refuse routers with a route that does not declare exactly one rule."""
    bare = [f"{m} {p}" for m, p, route in guarded_routes(routers) if rule_of(route) is None]
    if bare:
        raise RuntimeError(f"routes without a rule (trenches.api.access.Allow): {bare}")


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """Security headers on every answer, the server's time to answer (``Server-Timing``),
    a body limit (413 past it, read or declared), and a JSON 500 for what escapes a route
    (the connection stays open)."""

    def __init__(self, app: ASGIApp, *, max_body: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        began = time.perf_counter()

        async def send_guarded(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                took = time.perf_counter() - began
                # The server's own time to the answer, for browsers' tools and bench/ui.py.
                timing = (b"server-timing", f"app;dur={1000 * took:.1f}".encode())
                message["headers"] = [
                    *with_security_headers(message.get("headers", [])),
                    timing,
                ]
                self.metrics.request(
                    _route_of(scope), str(scope.get("method")), int(message["status"]), took
                )
            await send(message)

        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _answer(send_guarded, 413, f"the body is over {self.max_body} bytes")
            return
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge(self.max_body)
            return message

        try:
            await self.app(scope, receive_limited, send_guarded)
        except _TooLarge:
            if not started:
                await _answer(send_guarded, 413, f"the body is over {self.max_body} bytes")
        except Exception:
            if started:
                raise
            errors.log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await _answer(send_guarded, 500, "the server failed to answer; the failure is logged")


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with each of :data:`SECURITY_HEADERS` the answer did not set itself
    (a web page sets its own content security policy, a static asset its caching)."""
    given = list(headers)
    named = {name.lower() for name, _ in given}
    return given + [(name, value) for name, value in SECURITY_HEADERS if name not in named]


def _route_of(scope: Scope) -> str:
    """The route template a request matched (``/api/v1/problems/{slug}``), the label it
    is counted under: never the path itself, which holds names and ids."""
    route = getattr(scope.get("route"), "path_format", None)
    if not isinstance(route, str):
        return UNMATCHED
    path = str(scope.get("path", ""))
    return (
        PREFIX + route if path.startswith(PREFIX + "/") and not route.startswith(PREFIX) else route
    )


class _TooLarge(HTTPException):
    """A body past the limit. An HTTPException, so that FastAPI, reading a form, passes
    it on as it is (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over {limit} bytes")


async def _answer(send: Callable[[Message], Awaitable[None]], status: int, detail: str) -> None:
    response = errors.problem(status, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": response.body})
