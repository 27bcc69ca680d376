"""ASGI middleware around the server's routes: the bearer token, asked for on every
path but the probes, and a JSON 500 for an exception that escapes a route.

Both sit in front of the router, so a route added later is guarded without a line of
its own, and so is everything FastAPI adds (``/docs``, ``/redoc``, ``/openapi.json``).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("trenches.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What answers without the token: liveness and readiness probes (an orchestrator
#: has no token), which say nothing about the model.
OPEN_PATHS = frozenset({"/ping", "/health", "/v2/health/live", "/v2/health/ready"})


async def _json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def endpoint_of(path: str) -> str:
    """The ``endpoint`` label a path is counted under in the metrics."""
    if path.startswith("/v2/models/"):
        return "v2" if path.endswith("/infer") else "v2-metadata"
    name = path.strip("/").split("/", 1)[0]
    return name if name in ("invocations", "predict", "feedback", "metrics") else "other"


class BearerToken:
    """Every request but the probes must carry ``Authorization: Bearer TOKEN``; one
    without gets a 401 that says nothing about what is served (not even a 404)."""

    def __init__(
        self, app: ASGIApp, token: str, counted: Callable[[str, int], None] | None = None
    ) -> None:
        self.app = app
        self._token = token.encode()
        self._counted = counted

    def authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    given.strip(), self._token
                )
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self.authorised(scope):
            await self.app(scope, receive, send)
            return
        if self._counted is not None:
            self._counted(endpoint_of(scope["path"]), 401)
        await _json(
            send,
            401,
            b'{"error":"a valid bearer token is needed (Authorization: Bearer TOKEN)"}',
            [(b"www-authenticate", b"Bearer")],
        )


class JsonErrors:
    """An exception that escapes a route is answered with a JSON 500 and logged with
    its traceback, and the connection stays open. (Starlette's own handler answers, then
    raises again, and uvicorn closes a keep-alive connection on an exception.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:  # too late for an answer of our own
                raise
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            await _json(send, 500, b'{"error":"the server failed to answer; it is logged"}', [])
