"""Signing in through the team's identity provider (OpenID Connect): ``GET
/api/v1/oidc/login`` sends the browser to the provider; ``GET /api/v1/oidc/callback``
takes it back, checks who the provider says it is, and starts a session as
``POST /api/v1/sessions`` does: the same HttpOnly session cookie, and a JSON answer
holding the CSRF token (a browser asking for HTML gets a page that goes on to the web
UI). Both are open (no token), and 404 on a server without a provider
(``trenches server --oidc-issuer``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from trenches.api.oidc import FLOW_LIFETIME, Provider
from trenches.api.routes.sessions import signed_in_as
from trenches.errors import NotFound

router = APIRouter(tags=["sessions"])

#: The cookie that carries the signed flow (state, nonce, PKCE verifier) between legs.
FLOW_COOKIE = "trenches_oidc"
_FLOW_PATH = "/api/v1/oidc"


def _provider(request: Request) -> Provider:
    provider: Provider | None = request.app.state.oidc
    if provider is None:
        raise NotFound("this server signs in with no identity provider (see --oidc-issuer)")
    return provider


@router.get("/oidc/login", status_code=303)
def oidc_login(request: Request) -> Response:
    """Send the browser to the identity provider; the flow's state, nonce and PKCE
    verifier go with it in a short-lived cookie the server signed."""
    url, flow = _provider(request).start()
    answer = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from another site.
    answer.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=FLOW_LIFETIME,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path=_FLOW_PATH,
    )
    return answer


@router.get("/oidc/callback")
def oidc_callback(
    request: Request,
    response: Response,
    code: str = Query(min_length=1, max_length=2048),
    state: str = Query(min_length=1, max_length=512),
) -> Any:
    """Exchange the provider's code, check its ID token, and start a session for the
    account linked to that identity (or a new account without roles); the answer holds
    the session's CSRF token, as ``POST /api/v1/sessions``'s does."""
    provider = _provider(request)
    # The flow is used once: a browser signed in forgets it.
    response.delete_cookie(FLOW_COOKIE, path=_FLOW_PATH)
    identity = provider.finish(request.cookies.get(FLOW_COOKIE), code=code, state=state)
    address = request.client.host if request.client is not None else None
    made = request.app.state.store.sessions.sign_in_oidc(identity, remote=address)
    if "text/html" not in request.headers.get("accept", ""):
        return signed_in_as(made, request, response)
    # A browser: on to the web UI. Not by a redirect: the session's cookies are
    # SameSite=Strict, and a redirect would still be the provider's navigation, sent
    # without them; a page of this site that moves on is this site's own.
    page = HTMLResponse(_SIGNED_IN)
    page.delete_cookie(FLOW_COOKIE, path=_FLOW_PATH)
    signed_in_as(made, request, page)
    return page


_SIGNED_IN = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta http-equiv="refresh" content="0;url=/"><title>Signed in</title></head>'
    '<body><p>Signed in. <a href="/">Go on to trenches</a>.</p></body></html>'
)
