"""Signing in to the team server through OpenID Connect: a real provider
(oidc-provider-mock, on loopback in a thread) and a real trenches server (uvicorn on
loopback), the browser's redirects followed by hand with httpx."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import flask
import httpx
import oidc_provider_mock
import pytest
import uvicorn
import werkzeug.serving
from joserfc import jwt
from joserfc.jwk import RSAKey

import trenches
from test_api import Live
from trenches.api.app import PREFIX, Settings, create_app
from trenches.api.oidc import OidcSettings
from trenches.errors import InvalidInput

from conftest import _free_port, run_cli

CLIENT_ID = "trenches-team"
#: Changes the provider makes to the claims of its next ID tokens (a test's way to have
#: it issue a token for another audience, or one already expired), re-signed with its key.
TAMPER: dict[str, Any] = {}


def _retoken(answer: flask.Response) -> flask.Response:
    """The provider's token answer, its ID token's claims changed by ``TAMPER``."""
    if flask.request.path != "/oauth2/token" or "claims" not in TAMPER:
        return answer
    body = answer.get_json()
    header, payload, _ = body["id_token"].split(".")
    claims = TAMPER["claims"](json.loads(base64.urlsafe_b64decode(payload + "==")))
    key = TAMPER.get("key")
    if key is None:  # the provider's own signing key, so that only the claims are wrong
        key = RSAKey.import_key(flask.g.oidc_provider_mock_storage.jwk.as_dict(is_private=True))
    protected = json.loads(base64.urlsafe_b64decode(header + "=="))
    body["id_token"] = jwt.encode(protected, claims, key)
    answer.set_data(json.dumps(body))
    return answer


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The issuer URL of an OpenID provider on loopback, for any client id."""
    app = oidc_provider_mock.app()
    app.after_request(_retoken)
    server = werkzeug.serving.make_server("localhost", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://localhost:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.fixture(autouse=True)
def _untampered() -> Iterator[None]:
    yield
    TAMPER.clear()


def live(store: trenches.Store, issuer: str, secret_file: Path) -> Live:
    """A team server signing in through ``issuer``, on a port known before its settings
    (the provider redirects back to it)."""
    port = _free_port()
    oidc = OidcSettings(
        issuer=issuer,
        client_id=CLIENT_ID,
        redirect_url=f"http://127.0.0.1:{port}{PREFIX}/oidc/callback",
        client_secret_file=str(secret_file),
    )
    return Live(store, port=port, oidc=oidc)


@pytest.fixture
def server(store: trenches.Store, provider: str, tmp_path: Path) -> Iterator[Live]:
    secret = tmp_path / "oidc-secret"
    secret.write_text("a client secret\n")
    with live(store, provider, secret) as served:
        yield served


@pytest.fixture
def browser(server: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _to_provider(browser: httpx.Client, provider: str, sub: str, claims: dict[str, Any]) -> str:
    """Start signing in, and sign in at the provider as ``sub``: the callback URL the
    provider sends the browser back to."""
    put = httpx.put(f"{provider}/users/{quote(sub, safe='')}", json=claims)
    assert put.status_code == 204
    login = browser.get(f"{PREFIX}/oidc/login")
    assert login.status_code == 303
    assert login.headers["location"].startswith(f"{provider}/oauth2/authorize?")
    asked = parse_qs(urlsplit(login.headers["location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["nonce"] and asked["state"]
    authorized = httpx.post(login.headers["location"], data={"sub": sub})
    assert authorized.status_code == 302
    return authorized.headers["location"]


def _sign_in(
    browser: httpx.Client, provider: str, sub: str, claims: dict[str, Any]
) -> httpx.Response:
    return browser.get(_to_provider(browser, provider, sub, claims))


def test_first_sign_in_makes_an_account_without_roles(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    store.datasets.create("tumours", task="classification", label="label")
    answer = _sign_in(browser, provider, "u-1", {"preferred_username": "grace"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"]["user"] == "grace"
    assert answer.json()["csrf"]
    me = browser.get(f"{PREFIX}/me")
    assert me.status_code == 200 and me.json()["user"]["name"] == "grace"
    assert browser.get(f"{PREFIX}/datasets/tumours").status_code == 403
    user = store.accounts.get("grace")
    assert (user.oidc_issuer, user.oidc_subject, user.admin) == (provider, "u-1", False)
    assert store.grants.list(user) == []
    actions = [(e.action, e.actor) for e in store.audit.list(limit=5)]
    assert ("users.create", "grace") in actions and ("sessions.start", "grace") in actions


def test_a_browser_goes_on_to_the_web_ui_signed_in(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    back = _to_provider(browser, provider, "u-9", {"preferred_username": "lovelace"})
    answer = browser.get(back, headers={"accept": "text/html,application/xhtml+xml"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    # A page of this site moves on (a redirect would go without the Strict cookies).
    assert '<meta http-equiv="refresh" content="0;url=/">' in answer.text
    assert {"trenches_session", "trenches_csrf"} <= set(browser.cookies.keys())
    assert browser.get(f"{PREFIX}/me").json()["user"]["name"] == "lovelace"


def test_a_second_sign_in_finds_the_same_account(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    for _ in range(2):
        answer = _sign_in(browser, provider, "u-2", {"preferred_username": "hopper"})
        assert answer.status_code == 200, answer.text
    assert [u.name for u in store.accounts.list()] == ["hopper"]


def test_a_linked_account_signs_in_as_itself(
    store: trenches.Store, store_url: str, provider: str, browser: httpx.Client
) -> None:
    ada = store.accounts.create("ada")
    store.grants.grant(ada, "viewer", "tumours")
    # The provider calls her by another name: the link, not the name, decides.
    code, _, err = run_cli(
        "--store", store_url, "users", "link", "ada", "--issuer", provider, "--subject", "u-3"
    )
    assert code == 0, err
    answer = _sign_in(browser, provider, "u-3", {"preferred_username": "ada.lovelace"})
    assert answer.status_code == 200, answer.text
    assert browser.get(f"{PREFIX}/me").json()["user"]["name"] == "ada"
    assert [u.name for u in store.accounts.list()] == ["ada"]
    link = store.audit.list(action="users.link")[0]
    assert link.target == "user:ada" and link.detail == {"issuer": provider, "subject": "u-3"}


def test_an_unlinked_account_of_the_same_name_is_not_taken_over(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    store.accounts.create("root", admin=True)
    answer = _sign_in(browser, provider, "u-4", {"preferred_username": "root"})
    assert answer.status_code == 401
    assert "trenches users link root" in answer.json()["detail"]
    assert browser.get(f"{PREFIX}/me").status_code == 401
    assert store.sessions.list("root") == []


def test_a_disabled_account_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    store.accounts.create("eve")
    store.accounts.link("eve", issuer=provider, subject="u-5")
    store.accounts.disable("eve")
    answer = _sign_in(browser, provider, "u-5", {"preferred_username": "eve"})
    assert answer.status_code == 401
    assert browser.get(f"{PREFIX}/me").status_code == 401
    assert store.sessions.list("eve") == []


def _refused(
    store: trenches.Store, browser: httpx.Client, answer: httpx.Response, why: str
) -> None:
    """Refused for ``why`` (a part of the answer's detail), and nobody signed in."""
    assert answer.status_code == 401, answer.text
    assert why in answer.json()["detail"]
    assert answer.headers["content-type"] == "application/problem+json"
    assert "trenches_session" not in browser.cookies
    assert browser.get(f"{PREFIX}/me").status_code == 401
    assert [s for u in store.accounts.list() for s in store.sessions.list(u.name)] == []


def test_a_tampered_state_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    callback = _to_provider(browser, provider, "u-6", {"preferred_username": "mallory"})
    tampered = callback.replace("state=", "state=x")
    _refused(store, browser, browser.get(tampered), "the state does not match")


def test_a_callback_without_the_browsers_flow_cookie_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client, server: Live
) -> None:
    callback = _to_provider(browser, provider, "u-7", {"preferred_username": "mallory"})
    with httpx.Client(base_url=server.url) as other:  # another browser, same link
        _refused(store, other, other.get(callback), "this browser did not start it here")


def test_a_replayed_code_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client, server: Live
) -> None:
    login = browser.get(f"{PREFIX}/oidc/login")
    flow = browser.cookies["trenches_oidc"]
    httpx.put(f"{provider}/users/u-8", json={"preferred_username": "trent"})
    callback = httpx.post(login.headers["location"], data={"sub": "u-8"}).headers["location"]
    assert browser.get(callback).status_code == 200
    with httpx.Client(base_url=server.url, cookies={"trenches_oidc": flow}) as replay:
        answer = replay.get(callback)
        assert answer.status_code == 401, answer.text
        assert "the provider refused the code: invalid_grant" in answer.json()["detail"]
        assert "trenches_session" not in replay.cookies
    assert len(store.sessions.list("trent")) == 1


def test_an_id_token_for_another_audience_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    TAMPER["claims"] = lambda claims: {**claims, "aud": "another-app"}
    answer = _sign_in(browser, provider, "u-9", {"preferred_username": "oscar"})
    _refused(store, browser, answer, "'aud'")
    assert [u.name for u in store.accounts.list()] == []


def test_an_expired_id_token_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    TAMPER["claims"] = lambda claims: {**claims, "exp": int(time.time()) - 3600}
    answer = _sign_in(browser, provider, "u-10", {"preferred_username": "pat"})
    _refused(store, browser, answer, "expired")


def test_an_id_token_signed_by_another_key_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    TAMPER["claims"] = lambda claims: claims
    TAMPER["key"] = RSAKey.generate_key(2048)
    answer = _sign_in(browser, provider, "u-11", {"preferred_username": "sam"})
    _refused(store, browser, answer, "signature")


def test_an_id_token_with_another_nonce_is_refused(
    store: trenches.Store, provider: str, browser: httpx.Client
) -> None:
    TAMPER["claims"] = lambda claims: {**claims, "nonce": "from-another-flow"}
    answer = _sign_in(browser, provider, "u-12", {"preferred_username": "tim"})
    _refused(store, browser, answer, "'nonce'")


def test_a_server_without_a_provider_has_no_oidc_sign_in(store: trenches.Store) -> None:
    app = create_app(Settings(), store=store)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        answer = httpx.get(f"http://127.0.0.1:{port}{PREFIX}/oidc/login")
        assert answer.status_code == 404
        assert "--oidc-issuer" in answer.json()["detail"]
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_server_command_wants_all_the_provider_settings(store_url: str) -> None:
    code, _, err = run_cli("--store", store_url, "server", "--oidc-issuer", "https://id.x")
    assert code == 2
    assert "--oidc-client-id" in err and "--oidc-redirect-url" in err


def test_the_client_secret_is_read_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = OidcSettings("https://id.x", "c", "https://t.x/api/v1/oidc/callback")
    monkeypatch.delenv("TRENCHES_OIDC_CLIENT_SECRET", raising=False)
    with pytest.raises(InvalidInput, match="TRENCHES_OIDC_CLIENT_SECRET"):
        settings.client_secret()
    monkeypatch.setenv("TRENCHES_OIDC_CLIENT_SECRET", "from the environment")
    assert settings.client_secret() == "from the environment"
    (tmp_path / "secret").write_text("from a file\n")
    in_file = OidcSettings(**{**settings.__dict__, "client_secret_file": str(tmp_path / "secret")})
    assert in_file.client_secret() == "from a file"
    missing = OidcSettings(**{**settings.__dict__, "client_secret_file": str(tmp_path / "no")})
    with pytest.raises(InvalidInput, match="cannot read the OIDC client secret file"):
        missing.client_secret()
