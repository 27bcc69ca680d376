"""Signing in and out for browsers: ``POST /api/v1/sessions`` (a name and a password;
open, and rate-limited) sets an HttpOnly session cookie and answers the CSRF token that
every change made with the cookie must carry in ``X-CSRF-Token``;
``DELETE /api/v1/sessions/current`` signs out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from trenches.api.access import CSRF_COOKIE, SESSION_COOKIE, Allow, Caller
from trenches.errors import NotAuthenticated
from trenches.json_form import to_json
from trenches.team.sessions import NewSession

#: Open: how a browser gets its credentials.
router = APIRouter(tags=["sessions"])
#: Signing out needs a signed-in caller.
signed_in = APIRouter(tags=["sessions"])


class SignIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


@router.post("/sessions", status_code=201)
def sign_in(body: SignIn, request: Request, response: Response) -> Any:
    """Check the password and start a session: its secret goes to an HttpOnly,
    SameSite=Strict cookie (Secure over HTTPS); the answer holds the CSRF token."""
    store = request.app.state.store
    limits = request.app.state.sign_in_limits
    address = request.client.host if request.client is not None else "?"
    limits.check(address, body.name)
    try:
        made = store.sessions.sign_in(body.name, body.password, remote=address)
    except NotAuthenticated:
        limits.failed(address, body.name)
        raise
    limits.succeeded(address, body.name)
    return signed_in_as(made, request, response)


def signed_in_as(made: NewSession, request: Request, response: Response) -> dict[str, Any]:
    """Hand a browser its new session: the secret in an HttpOnly, SameSite=Strict cookie
    (Secure over HTTPS), and the answer holding the CSRF token its changes must show.

    The CSRF token also goes to a cookie of its own (as HttpOnly), so that the web UI's
    pages can show it to their scripts: a page of another site can make the browser send
    both cookies, but never read a page, so it never learns the token."""
    lifetime = int((made.session.expires_at - made.session.created_at).total_seconds())
    for name, value in ((SESSION_COOKIE, made.secret), (CSRF_COOKIE, made.csrf)):
        response.set_cookie(
            name,
            value,
            max_age=lifetime,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return {"session": to_json(made.session), "csrf": made.csrf}


@signed_in.delete("/sessions/current", status_code=204)
def sign_out(request: Request, caller: Annotated[Caller, Depends(Allow.signed_in())]) -> Response:
    """End the session of the cookie (a token's caller has none: nothing to end)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        caller.store.sessions.sign_out(secret)
    answer = Response(status_code=204)
    answer.delete_cookie(SESSION_COOKIE, path="/")
    answer.delete_cookie(CSRF_COOKIE, path="/")
    return answer
