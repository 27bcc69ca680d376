"""One prediction request, the same under every protocol: the body read (within the
limit) and parsed by the protocol, answered by the version served when the request
arrived, logged, counted, and answered in the protocol's form with the request's id
and version in the headers. A refusal is raised, and answered by the one exception
handler (:mod:`trenches.serving.errors`)."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.background import BackgroundTask

from trenches.serving.binary import Reply
from trenches.serving.payloads import PayloadError, Rows, Schema, loads
from trenches.serving.rollout import ARM_HEADER
from trenches.traffic.routing import KEY_HEADER

if TYPE_CHECKING:
    from trenches.serving.model import Answer, Served
    from trenches.serving.state import Server

log = logging.getLogger("trenches.serve")

JSON = "application/json"
#: A protocol's parser: the body (parsed JSON) into rows, or a PayloadError.
Parse = Callable[[Schema, Any], Rows]
#: A protocol's answer: the version, the rows, what it said, and the request id; JSON,
#: or a :class:`~trenches.serving.binary.Reply` of another kind.
Render = Callable[["Served", Rows, "Answer", str], bytes | Reply]


def request_id() -> str:
    """A new request's id: 32 hex digits, the first 12 the time in milliseconds and the
    rest random (80 bits), like a UUIDv7. Ids in the order of time make the request
    log's unique index grow at its end: with random ids (uuid4) each insert touched a
    page anywhere in the index, about ten times the cost once the log outgrew the
    database's cache."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def hot_server(request: Request) -> Server:
    """The worker's state, read straight from the app on the prediction routes: a
    FastAPI dependency costs each request its resolution (about a tenth of the server's
    CPU on one-row requests), where the other routes take :data:`ServerDep`."""
    server: Server = request.app.state.server
    return server


@dataclass(frozen=True)
class Outcome:
    """The answer to a prediction request, whatever carries it (a FastAPI route, or
    :mod:`trenches.serving.hot`): its body, media type and headers, and what to do once
    it has left (the answers given in a shadow), if anything."""

    content: bytes
    media_type: str
    headers: dict[str, str]
    later: Callable[[], None] | None = None


async def predicted(
    request: Request,
    server: Server,
    served: Served,
    endpoint: str,
    parse: Parse,
    render: Render,
    load: Callable[[bytes], Any] = loads,
    *,
    routed: bool = True,
) -> Response:
    """The answer to one prediction request at ``endpoint`` (its metrics label); ``load``
    reads the body (JSON by default). Under the model's traffic policy the arm it picks
    answers, unless ``routed`` is False (a request for one version by number)."""
    start = time.perf_counter_ns()
    raw = await server.body(request)
    key = request.headers.get(KEY_HEADER)
    out = await answered(server, served, endpoint, raw, key, parse, render, load, routed, start)
    return Response(
        out.content,
        media_type=out.media_type,
        headers=out.headers,
        background=BackgroundTask(out.later) if out.later is not None else None,
    )


async def answered(server: Server, served: Served, *rest: Any) -> Outcome:
    """:func:`outcome` (``rest``: its other arguments), on a thread of the pool when a
    version it may ask answers by calling a service: the event loop does not wait."""
    if served.model.remote or (server.route is not None and server.route.remote):
        return await run_in_threadpool(outcome, server, served, *rest)
    return outcome(server, served, *rest)


def outcome(  # noqa: PLR0913
    server: Server,
    served: Served,
    endpoint: str,
    raw: bytes,
    key: str | None,
    parse: Parse,
    render: Render,
    load: Callable[[bytes], Any],
    routed: bool,
    start: int,
) -> Outcome:
    """The answer to the body ``raw`` of a request at ``endpoint`` that began at
    ``start`` (``perf_counter_ns``); ``key``: its caller key. Raises PayloadError."""
    rows = _read(parse, served.schema, load(raw), endpoint)
    route = server.route if routed else None
    arm = None
    if route is not None and route.baseline.served is served:
        arm, answer = route.answer(server, route.pick(key), rows)
        served = arm.served
    else:
        answer = server.answer(served, rows)
    rid = request_id()
    content = render(served, rows, answer, rid)
    reply = content if isinstance(content, Reply) else Reply(content, JSON)
    headers = {"x-request-id": rid, "x-model-version": served.model.ref, **reply.headers}
    if route is None or arm is None:
        seconds = server.record(endpoint, served, rows, answer, rid, start) / 1e6
        server.metrics.request(endpoint, 200, seconds)
        return Outcome(reply.content, reply.media_type, headers)
    # Under the policy: its arm logged and named, and the answers given in its shadow.
    policy = route.policy.id
    seconds = server.record(endpoint, served, rows, answer, rid, start, policy, arm.name) / 1e6
    server.metrics.request(endpoint, 200, seconds)
    route.watch.answered(arm.name, seconds)
    headers[ARM_HEADER] = arm.name
    later = None
    if route.in_shadow(arm):
        later = functools.partial(route.shadow, server, endpoint, rows, arm, answer, rid)
    return Outcome(reply.content, reply.media_type, headers, later)


def _read(parse: Parse, schema: Schema, body: Any, endpoint: str) -> Rows:
    """``parse(schema, body)``; an exception no check foresaw is still the body's doing
    (parsing is a function of the body alone): a 400, and a traceback in the log."""
    try:
        return parse(schema, body)
    except PayloadError:
        raise
    except Exception as e:
        log.exception("%s: a request body the checks did not foresee", endpoint)
        raise PayloadError(400, f"the body could not be read ({type(e).__name__})") from None
