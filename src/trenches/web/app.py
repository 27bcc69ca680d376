"""The team server with its web UI: the API app of :mod:`trenches.api.app`, with the
pages of :mod:`trenches.web.routes` and their assets on the same origin.

Deny by default, as for the API: :func:`create_app` refuses a page route that does not
declare its rule. A refusal on a page is a page (a 403 that says what role is needed,
a 404, a form's error shown beside it); signing in is asked for by sending the browser
to ``/sign-in``. Under ``/api/`` the answers stay problem details.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from trenches.api import errors
from trenches.api.app import Settings, guarded_routes, rule_of
from trenches.api.app import create_app as create_api
from trenches.errors import InvalidInput, NotAuthenticated, TrenchesError
from trenches.web import assets, render
from trenches.web.routes import (
    audit,
    home,
    models,
    patterns,
    problems,
    production,
    quality,
    queue,
    signin,
)

if TYPE_CHECKING:
    from trenches.store import Store

#: Page routers, every route of which declares its rule.
PAGES: tuple[APIRouter, ...] = (
    home.router,
    signin.signed_in,
    problems.router,
    patterns.router,
    queue.router,
    models.router,
    production.router,
    quality.router,
    audit.router,
)
#: What answers without signing in: the sign-in page and the assets.
OPEN_PAGES = (signin.router, assets.router)
#: Paths answered as the API answers (problem details), not as pages.
_API = ("/api/", "/health", "/metrics")


def create_app(settings: Settings, *, store: Store | None = None) -> FastAPI:
    """The team server's app, pages included, over the store of ``settings`` (or over
    ``store``, already open)."""
    app = create_api(settings, store=store)
    check_pages(PAGES)
    for router in (*PAGES, *OPEN_PAGES):
        app.include_router(router)
    for kind in errors.HANDLED:
        app.add_exception_handler(kind, answer)
    return app


def page_routes(routers: Iterable[APIRouter] = PAGES) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) of the page ``routers``."""
    return guarded_routes(routers, prefix="")


def check_pages(routers: Iterable[APIRouter]) -> None:
    """Refuse page routers with a route that does not declare exactly one rule."""
    bare = [f"{m} {p}" for m, p, route in page_routes(routers) if rule_of(route) is None]
    if bare:
        raise RuntimeError(f"pages without a rule (trenches.api.access.Allow): {bare}")


async def answer(request: Request, exc: Exception) -> Response:
    """A refusal: problem details under ``/api/``; on a page, the sign-in page when no one
    is signed in, else a page (or, for htmx, a message where the answer was to go)."""
    path = request.url.path
    if path.startswith(_API):
        return await errors.answer(request, exc)
    if isinstance(exc, NotAuthenticated):
        target = "/sign-in?next=" + quote(_back_to(request), safe="/")
        if render.is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    status, detail = _status(request, exc)
    if status >= 500:
        errors.log.error("%s %s failed", request.method, path, exc_info=exc)
        detail = "the server failed to answer; the failure is logged"
    if render.is_htmx(request):
        return render.html(
            request,
            None,
            "_message.html",
            status=status,
            headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"},
            kind="error",
            text=detail,
        )
    return render.html(request, None, "error.html", status=status, detail=detail, code=status)


def _back_to(request: Request) -> str:
    """Where to come back after signing in: this page (the page of an htmx request)."""
    if render.is_htmx(request):
        current = request.headers.get("hx-current-url", "/")
        return "/" + current.split("/", 3)[-1] if current.count("/") >= 3 else "/"
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def _status(request: Request, exc: Exception) -> tuple[int, str]:
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return 422, f"{where}: {first.get('msg')}"
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail)
    if isinstance(exc, TrenchesError):
        kind = next((k for k in type(exc).__mro__ if k in errors.STATUS), None)
        if kind is not None:
            text = str(exc)
            if isinstance(exc, InvalidInput) and exc.field and exc.field not in text:
                text = f"{exc.field}: {text}"
            return errors.STATUS[kind], text
    return 500, ""
