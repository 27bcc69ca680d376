"""Signing in and out in a browser: ``/sign-in`` (a form; open, and rate-limited as the
API's sign-in is) and ``POST /sign-out``. The session is the API's: the same cookie,
and the same CSRF token for every change (:mod:`trenches.api.routes.sessions`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from trenches.api.access import CSRF_COOKIE, SESSION_COOKIE, Allow, Caller
from trenches.api.routes.sessions import signed_in_as
from trenches.errors import NotAuthenticated
from trenches.web import render

#: Open: the sign-in form.
router = APIRouter(include_in_schema=False)
#: Signing out needs a signed-in caller.
signed_in = APIRouter(include_in_schema=False)


def local_path(target: str | None) -> str:
    """``target`` if it is a path of this server, else the home page: a sign-in link
    cannot send the browser to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/sign-in")
def sign_in_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> HTMLResponse:
    """The sign-in form."""
    oidc = request.app.state.oidc is not None
    return render.html(request, None, "sign_in.html", next=local_path(next), oidc=oidc, failed=None)


@router.post("/sign-in")
def sign_in(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=100)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    """Check the password, start a session, and go on to ``next`` (a path here)."""
    store = request.app.state.store
    limits = request.app.state.sign_in_limits
    address = request.client.host if request.client is not None else "?"
    limits.check(address, name)
    try:
        made = store.sessions.sign_in(name, password, remote=address)
    except NotAuthenticated as refused:
        limits.failed(address, name)
        oidc = request.app.state.oidc is not None
        return render.html(
            request,
            None,
            "sign_in.html",
            status=401,
            next=local_path(next),
            oidc=oidc,
            failed=str(refused),
        )
    limits.succeeded(address, name)
    answer = RedirectResponse(local_path(next), status_code=303)
    signed_in_as(made, request, answer)
    return answer


@signed_in.post("/sign-out")
def sign_out(request: Request, caller: Annotated[Caller, Depends(Allow.signed_in())]) -> Response:
    """End the session, and go back to the sign-in form."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        caller.store.sessions.sign_out(secret)
    answer = Response(status_code=204, headers={"HX-Redirect": "/sign-in"})
    answer.delete_cookie(SESSION_COOKIE, path="/")
    answer.delete_cookie(CSRF_COOKIE, path="/")
    return answer
