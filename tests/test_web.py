"""The web UI's frame: signing in and out, the navigation each role sees, the assets
served from the server itself, deny by default for every page, and the home page
walked in Chromium by every role (no request off the origin, no console error, no
serious accessibility violation)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from hypothesis import given
from hypothesis import strategies as st

from trenches.web import assets
from trenches.web.app import PAGES, check_pages, page_routes
from trenches.web.routes.signin import local_path
from webui import PASSWORD, ROLES, browsing


def signed_in(base: str, role: str) -> httpx.Client:
    """An HTTP client holding the session of ``role``'s account (cookies, CSRF header)."""
    client = httpx.Client(base_url=base, follow_redirects=False)
    answer = client.post("/sign-in", data={"name": role, "password": PASSWORD, "next": "/"})
    assert answer.status_code == 303, answer.text
    client.headers["X-CSRF-Token"] = client.cookies["trenches_csrf"]
    return client


def test_every_page_declares_its_rule() -> None:
    assert page_routes(PAGES)
    bare = APIRouter()

    @bare.get("/loose")
    def loose() -> None: ...

    with pytest.raises(RuntimeError, match="GET /loose"):
        check_pages([bare])


def test_a_page_sends_a_stranger_to_sign_in_and_back(ui: str) -> None:
    with httpx.Client(base_url=ui) as client:
        answer = client.get("/?from=mail")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/sign-in?next=/%3Ffrom%3Dmail"
        # The API still answers problem details.
        assert (
            client.get("/api/v1/problems")
            .headers["content-type"]
            .startswith("application/problem+json")
        )
        wrong = client.post("/sign-in", data={"name": "viewer", "password": "nope", "next": "/"})
        assert wrong.status_code == 401
        assert "not valid" in wrong.text or "refused" in wrong.text or "password" in wrong.text
        assert "trenches_session" not in client.cookies
        # A sign-in link cannot send the browser to another site.
        for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            answer = client.post(
                "/sign-in", data={"name": "viewer", "password": PASSWORD, "next": elsewhere}
            )
            assert answer.headers["location"] == "/"


@given(st.one_of(st.text(), st.from_regex(r"\A[/\\]{1,3}[a-z.:@/\\]{0,20}\Z")))
def test_where_a_sign_in_goes_on_to_is_always_a_path_of_this_server(target: str) -> None:
    went = local_path(target)
    assert went.startswith("/")
    # Not another host: no scheme-relative //host, no backslash browsers read as one.
    assert not went.startswith("//") and "\\" not in went
    assert went in (target, "/")


def test_pages_carry_their_own_policy_and_assets_are_cached(ui: str) -> None:
    client = signed_in(ui, "viewer")
    page = client.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    # The server's own time, for the browser's tools and bench/ui.py.
    assert page.headers["server-timing"].startswith("app;dur=")
    for name in assets.MEDIA:
        url = assets.url(name)
        got = client.get(url)
        assert got.status_code == 200 and got.content, name
        assert "immutable" in got.headers["cache-control"]
    stale = client.get("/static/000000000000/trenches.css")
    assert stale.headers["cache-control"] == "no-cache"
    assert client.get(f"/static/{assets.digest()}/secrets.txt").status_code == 404


def test_each_role_sees_the_links_it_may_follow(ui: str) -> None:
    for role in ROLES:
        page = signed_in(ui, role).get("/").text
        assert ('href="/audit"' in page) == (role == "admin"), role
        assert ('href="/queue"' in page) == (role != "viewer"), role
        assert 'href="/problems"' in page


def test_signing_out_ends_the_session(ui: str) -> None:
    client = signed_in(ui, "tester")
    assert client.post("/sign-out").headers["hx-redirect"] == "/sign-in"
    assert client.get("/").status_code == 303
    # Signing out is a change: without the CSRF token it is refused.
    other = signed_in(ui, "tester")
    del other.headers["X-CSRF-Token"]
    assert other.post("/sign-out").status_code == 403
    assert other.get("/").status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_the_home_page_in_chromium(ui: str, browser: Any, role: str) -> None:
    with browsing(browser, ui, role) as visit:
        visit.go("/")
        page = visit.page
        assert page.get_by_role("heading", name="Home", exact=True).is_visible()
        assert page.get_by_role("link", name="cancer-clf").first.is_visible()
        assert visit.serious_violations() == []


def test_the_ui_guide_shows_a_picture_of_every_page_make_screenshots_takes() -> None:
    import re
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    shown = set(re.findall(r"\(images/(ui-[a-z-]+\.png)\)", (docs / "ui.md").read_text()))
    taken = {p.name for p in (docs / "images").glob("ui-*.png")}
    assert shown == taken and len(taken) >= 15
