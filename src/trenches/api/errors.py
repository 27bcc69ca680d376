"""Every refusal of the team server as RFC 9457 problem details: a JSON body of
``type``, ``title``, ``status`` and ``detail`` (plus ``field`` when one field is at fault,
and for trenches' own errors ``kind``, the error's class, with ``reason``, ``file`` and
``row`` for bad input, so that a client raises the same error),
served as ``application/problem+json``.

trenches' own errors map to a status by kind (:data:`STATUS`); a body or parameter
FastAPI cannot read is a 422 naming the field; a path the server does not have, or a
method it does not take, is the router's 404 or 405. Anything else is a 500 with a
body that says nothing of the failure, which is logged with its traceback.
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from trenches.api.limits import TooManyAttempts
from trenches.errors import (
    CheckFailed,
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    StoreBusy,
    TrenchesError,
    UntrustedModel,
)

if TYPE_CHECKING:
    from fastapi import Request

log = logging.getLogger("trenches.server")

PROBLEM = "application/problem+json"

#: The status of each kind of trenches error (the first of an error's classes found).
STATUS: dict[type[TrenchesError], int] = {
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    # A promotion refused as the version's latest gate check failed.
    CheckFailed: 409,
    UntrustedModel: 422,
    InvalidInput: 422,
    TooManyAttempts: 429,
    StoreBusy: 503,
}
#: What :func:`answer` answers; ``create_app`` registers it for each.
HANDLED: tuple[type[Exception], ...] = (TrenchesError, RequestValidationError, HTTPException)


def problem(
    status: int,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    more: Mapping[str, Any] | None = None,
) -> Response:
    """A problem-details answer with ``status`` and ``detail`` (and the extension
    members ``more``)."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": http.HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update({k: v for k, v in (more or {}).items() if v is not None})
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM, headers=headers)


async def answer(request: Request, exc: Exception) -> Response:
    """The one exception handler: ``exc`` as problem details."""
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        where = [str(part) for part in first.get("loc", ())[1:]]
        detail = f"{'.'.join(where) or 'request'}: {first.get('msg')}"
        return problem(422, detail, field=where[-1] if where else None)
    if isinstance(exc, HTTPException):
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)
    if isinstance(exc, TrenchesError):
        kind = next((k for k in type(exc).__mro__ if k in STATUS), None)
        if kind is None:
            return internal(request, exc)
        status = STATUS[kind]
        field = exc.field if isinstance(exc, InvalidInput) else None
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        return problem(status, str(exc), field=field, headers=headers, more=_members(exc))
    return internal(request, exc)


def _members(exc: TrenchesError) -> dict[str, Any]:
    """What a client needs to raise the same error again: its kind (the class name in
    ``trenches.errors``) and, for bad input, the reason, file and row apart."""
    members: dict[str, Any] = {"kind": type(exc).__name__}
    if isinstance(exc, InvalidInput):
        members.update(reason=exc.reason, file=exc.file, row=exc.row)
    return members


def internal(request: Request, exc: BaseException) -> Response:
    """A 500 that tells the caller nothing but that it is logged."""
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem(500, "the server failed to answer; the failure is logged")
