"""The prediction routes answered before FastAPI: a plain ASGI function in front of the
app for ``POST /invocations``, ``POST /predict`` and ``POST /v2/models/{name}/infer``.

On a one-row request the model's call takes tens of microseconds; FastAPI's way to a
route (its middleware stack, the router's matching, the request object, the response
class) took about as long again as everything trenches does. This path reads the
headers and the body from the ASGI messages, answers through the same
:func:`~trenches.serving.routes.prediction.outcome` as the routes, and sends the answer
in two messages. What it answers is what the routes answer: the token checked in
constant time, the body limit, every refusal as the one exception handler words it
(:func:`trenches.serving.errors.refusal`), an unforeseen error as a JSON 500 with the
connection kept, and the answers given in a shadow once the caller has its own. Every
other request (and any other method or path) goes to FastAPI, whose routes for these
paths stay for the OpenAPI document and for the app used without this wrapper.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi.concurrency import run_in_threadpool

from trenches.serving import binary, errors, protocols
from trenches.serving.auth import NoToken
from trenches.serving.payloads import PayloadError, loads, read_body
from trenches.serving.routes.prediction import Outcome, answered
from trenches.traffic.routing import KEY_HEADER

if TYPE_CHECKING:
    from fastapi import FastAPI

    from trenches.serving.model import Served
    from trenches.serving.routes.prediction import Parse, Render
    from trenches.serving.state import Server

log = logging.getLogger("trenches.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: A protocol's parts for one request: the version, its parser and renderer, and the
#: body's reader (given the request's headers).
Protocol = Callable[
    ["Server", dict[bytes, bytes]], tuple["Served", "Parse", "Render", Callable[[bytes], Any]]
]

_KEY = KEY_HEADER.encode()
_FAILED = b'{"error":"the server failed to answer; it is logged"}'


def _mlflow(server: Server, _: dict[bytes, bytes]) -> Any:
    return server.served, protocols.mlflow, protocols.mlflow_answer, loads


def _predict(server: Server, _: dict[bytes, bytes]) -> Any:
    return server.served, protocols.predict, protocols.predict_answer, loads


def _v2(server: Server, headers: dict[bytes, bytes]) -> Any:
    served = server.served
    wire = binary.Wire(served)
    given = headers.get(binary.HEADER.lower().encode())
    header = given.decode("latin-1") if given is not None else None
    return served, protocols.v2, wire.render, lambda raw: wire.load(raw, header)


class HotPath:
    """The app, its prediction routes answered first (see the module's notes). Every
    attribute but the call is the FastAPI app's (``.state``, ``.openapi``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.server: Server = app.state.server
        self.bearer = app.state.bearer
        name = self.server.served.name
        self._paths: dict[str, tuple[str, Protocol]] = {
            "/invocations": ("invocations", _mlflow),
            "/predict": ("predict", _predict),
            f"/v2/models/{name}/infer": ("v2", _v2),
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = self._paths.get(scope["path"])
            if found is not None:
                await self._answer(found, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, found: tuple[str, Protocol], scope: Scope, receive: Receive, send: Send
    ) -> None:
        start = time.perf_counter_ns()
        endpoint, protocol = found
        server = self.server
        headers = dict(scope["headers"])
        later = None
        try:
            if self.bearer is not None and not self.bearer.authorised(scope):
                raise NoToken()
            length = headers.get(b"content-length")
            raw = await read_body(receive, length, server.settings.max_body)
            served, parse, render, load = protocol(server, headers)
            key = headers.get(_KEY)
            given = key.decode("latin-1") if key is not None else None
            out = await answered(
                server, served, endpoint, raw, given, parse, render, load, True, start
            )
            later = out.later
            await _send(send, 200, out)
        except PayloadError as e:
            status, body, extra = errors.refusal(e)
            server.metrics.request(endpoint, status)
            await _send(send, status, Outcome(body, "application/json", dict(extra or {})))
        except Exception:
            log.exception("POST %s failed", scope["path"])
            await _send(send, 500, Outcome(_FAILED, "application/json", {}))
        if later is not None:
            await run_in_threadpool(later)


async def _send(send: Send, status: int, out: Outcome) -> None:
    headers = [
        (b"content-type", out.media_type.encode("latin-1")),
        (b"content-length", str(len(out.content)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out.headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out.content})
