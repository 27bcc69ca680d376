"""The server's one middleware: a JSON 500 for an exception that escapes a route.

Everything else a route may raise is answered by the one exception handler
(:mod:`trenches.serving.errors`), and the token is a dependency
(:mod:`trenches.serving.auth`). This one cannot be either: an exception that no handler
knows goes to Starlette's ServerErrorMiddleware, which answers it and then raises it
again, and uvicorn closes a keep-alive connection on an exception; only a middleware
inside it can answer and keep the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("trenches.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
