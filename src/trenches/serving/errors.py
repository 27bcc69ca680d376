"""How the server answers an error, in one place: a route raises, and :func:`answer`
turns the error into an HTTP status and a JSON body ``{"error": ..., "field": ...}``.

- a :class:`~trenches.serving.payloads.PayloadError` (a refused body, a missing
  token, a model or version not served) with its own status;
- an error of trenches' hierarchy (:mod:`trenches.errors`) with the status of its kind;
- FastAPI's validation of a route's parameters as a 422;
- the router's own 404 (no such path) and 405 (a method the path does not take), or a
  401 when a token is set and the request lacks it.

Anything else is a fault of the server: the last-resort middleware
(:class:`~trenches.serving.middleware.JsonErrors`) answers it with a JSON 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from trenches.errors import Conflict, InvalidInput, NotFound, StoreBusy, TrenchesError
from trenches.serving.auth import NoToken
from trenches.serving.metrics import endpoint_of
from trenches.serving.payloads import PayloadError
from trenches.serving.routes.probes import OPEN_PATHS

if TYPE_CHECKING:
    from fastapi import Request

JSON = "application/json"

#: The status of each kind of trenches error a route may let through (the first of an
#: error's classes found here).
STATUS: dict[type[TrenchesError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    StoreBusy: 503,
}
#: The router's own errors, by status: no such path, a method the path does not take.
ROUTER_ERRORS = (404, 405)
#: What :func:`answer` answers; ``create_app`` registers it for each.
HANDLED: tuple[type[Exception] | int, ...] = (
    PayloadError,
    *STATUS,
    RequestValidationError,
    *ROUTER_ERRORS,
)
#: Endpoints whose refusals are counted in the metrics, as their answers are (a 401 is
#: counted wherever it is answered).
COUNTED = frozenset({"invocations", "predict", "v2", "feedback"})


async def answer(request: Request, exc: Exception) -> Response:
    """The answer to an error a route (or the router) raised."""
    if not isinstance(exc, TrenchesError | RequestValidationError):  # the router's own
        if _may_know(request):  # not counted: no route answered
            return _json(
                int(getattr(exc, "status_code", 404)),
                {"error": f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}"},
                getattr(exc, "headers", None),
            )
        exc = NoToken()
    status, body, headers = refusal(exc)
    endpoint = endpoint_of(request.scope["path"])
    if status == 401 or endpoint in COUNTED:
        request.app.state.server.metrics.request(endpoint, status)
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _may_know(request: Request) -> bool:
    """Whether the request may learn that a path or method does not exist: without the
    token, only on the probes' paths."""
    bearer = request.app.state.bearer
    return bearer is None or request.scope["path"] in OPEN_PATHS or bearer.authorised(request.scope)


def refusal(exc: Exception) -> tuple[int, bytes, dict[str, str] | None]:
    """Status, JSON body and headers of an error of ours or of a parameter's validation."""
    if isinstance(exc, PayloadError):
        return exc.status, exc.body(), exc.headers
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        where = [str(part) for part in first.get("loc", ())[1:]]
        body: dict[str, Any] = {"error": f"{'.'.join(where) or 'request'}: {first.get('msg')}"}
        if where:
            body["field"] = where[-1]
        return 422, orjson.dumps(body), None
    status = next(STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS)
    body = {"error": str(exc)}
    if isinstance(exc, InvalidInput) and exc.field is not None:
        body["field"] = exc.field
    return status, orjson.dumps(body), None


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)
