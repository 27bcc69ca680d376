"""The team server over loopback, on SQLite and PostgreSQL: a real uvicorn, real tokens
and grants, and every route of /api/v1 tried by every role."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from sklearn.linear_model import LogisticRegression

import trenches
from trenches.api.app import PREFIX, Settings, check_rules, create_app, guarded_routes, rule_of
from trenches.team.roles import ACTIONS, ROLES, includes

from conftest import (
    _free_port,
    log_requests,
    make_frame,
    run_cli,
    s3_bucket,
    wait_until_answering,
)

#: The only routes that answer without a token: the probes, and signing in.
OPEN_PATHS = {
    "/health",
    "/metrics",
    f"{PREFIX}/sessions",
    f"{PREFIX}/oidc/login",
    f"{PREFIX}/oidc/callback",
}
#: What a path parameter is filled with when every route is tried.
PARAMS = {
    "dataset": "tumours",
    "slug": "small",
    "model": "clf",
    "alias": "candidate",
    "version": "1",
    "pattern_id": "1",
    "snapshot_id": "1",
    "run_id": "1",
    "request_id": "r-0",
}


class Live:
    """``create_app`` (or ``make``) over ``store``, served by uvicorn in a thread on a
    free port."""

    def __init__(
        self,
        store: trenches.Store,
        *,
        port: int | None = None,
        make: Callable[..., Any] = create_app,
        **settings: Any,
    ) -> None:
        self.app = make(Settings(**settings), store=store)
        port = port or _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Live:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def store(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[trenches.Store]:
    """As a team runs it: PostgreSQL with its artifacts on S3 (moto's server), and the
    embedded SQLite store with its artifacts in a folder."""
    if store_url.startswith("postgresql"):
        bucket = s3_bucket(request.getfixturevalue("moto_s3"))
        monkeypatch.setenv("TRENCHES_ARTIFACTS", f"s3://{bucket}/artifacts")
    else:
        monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "artifacts"))
    opened = trenches.open(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def team(store: trenches.Store) -> dict[str, str]:
    """A dataset ``tumours`` with a problem and a snapshot; a model ``clf@1`` fitted in
    run 1 on that snapshot, and requests it answered (``r-0``, ...) with feedback; one
    user per role granted on ``tumours`` and ``clf`` (the admin: an admin account); their
    tokens."""
    frame = make_frame()
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(frame, source="expert", created_at="2026-01-01")
    X = frame[["radius", "texture", "grade"]]
    with store.run("train", snapshot=ds.snapshot(), capture_code=False) as run:
        run.log_metric("accuracy", 0.5)
        version = run.log_model(LogisticRegression(max_iter=500).fit(X, frame["label"]), "clf", X=X)
    log_requests(store, version, frame.head(10), list(X.columns), label="label")
    store.problems.create("small", dataset="tumours", title="small tumours")
    return role_tokens(store)


def role_tokens(store: trenches.Store) -> dict[str, str]:
    """A token per role, its user granted it on ``tumours`` and ``clf`` (``admin``: an
    admin account), and one for ``stranger``, a user with no grant."""
    tokens = {}
    for role in ROLES:
        user = store.accounts.create(f"{role}-user", admin=role == "admin")
        if role != "admin":
            store.grants.grant(user, role, "tumours")
            store.grants.grant(user, role, "clf")
        tokens[role] = store.tokens.create(user, "tests", expires_in=None).secret
    stranger = store.accounts.create("stranger")
    tokens["stranger"] = store.tokens.create(stranger, "tests", expires_in=None).secret
    return tokens


def _routes(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    """Every operation of the app's OpenAPI document under /api/v1, with its route (a
    route with no rule has none, and fails here), its path parameters filled in."""
    ruled = {(m, p): route for m, p, route in guarded_routes()}
    out = []
    for path, operations in app.openapi()["paths"].items():
        if path in OPEN_PATHS:
            continue
        for method in operations:
            key = (method.upper(), path)
            assert key in ruled, f"{key} declares no rule (trenches.api.access.Allow)"
            out.append((method.upper(), path.format(**PARAMS), ruled[key]))
    return out


def _required(route: APIRoute, method: str) -> str | None:
    rule = rule_of(route)
    assert rule is not None
    if rule.action is None:
        return None  # any signed-in user
    if isinstance(rule.action, str):
        return ACTIONS[rule.action]
    if route.path.endswith("/file"):  # a download: PARAMS ask for no pickle
        return ACTIONS["models.read"]
    assert "{alias}" in route.path  # a promotion: PARAMS move "candidate"
    return ACTIONS["models.promote.candidate"]


def test_every_route_gives_each_role_what_the_table_says(
    store: trenches.Store, team: dict[str, str]
) -> None:
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        routes = _routes(live.app)
        assert len(routes) >= 15
        wrong = []
        for method, url, route in routes:
            required = _required(route, method)
            for who, token in team.items():
                role = None if who == "stranger" else who
                allowed = required is None or (role is not None and includes(role, required))
                answer = client.request(
                    method, url, json={}, headers={"Authorization": f"Bearer {token}"}
                )
                refused = answer.status_code == 403
                if refused == allowed or answer.status_code in (401, 500):
                    wrong.append(f"{who} {method} {url}: {answer.status_code} {answer.text[:200]}")
                if refused:
                    assert answer.headers["content-type"] == "application/problem+json"
        assert wrong == []


def test_a_route_without_a_rule_stops_the_app_from_being_built() -> None:
    bare = APIRouter()

    @bare.get("/datasets/secret")
    def secret() -> str:
        return "everyone may read this"

    with pytest.raises(RuntimeError, match=r"without a rule.*datasets/secret"):
        check_rules([bare])


def test_without_a_valid_token_every_route_is_401(
    store: trenches.Store, team: dict[str, str]
) -> None:
    admin = store.accounts.get("admin-user")
    later = store.tokens.create(admin, "soon gone", expires_in=timedelta(seconds=1))
    revoked = store.tokens.create(admin, "revoked", expires_in=None)
    store.tokens.revoke(revoked.token.id)
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        assert client.get(f"{PREFIX}/me", headers=_bearer(later.secret)).status_code == 200
        time.sleep(1.1)
        for headers in ({}, _bearer("trn_nope"), _bearer(revoked.secret), _bearer(later.secret)):
            for method, url, _ in _routes(live.app):
                answer = client.request(method, url, json={}, headers=headers)
                assert answer.status_code == 401, (method, url, headers, answer.text)
                assert answer.headers["www-authenticate"] == "Bearer"
                body = answer.json()
                assert body["status"] == 401 and body["title"] == "Unauthorized"
        assert client.get("/health").json() == {"status": "ok"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_each_change_is_audited_once_with_who_and_from_where(
    store: trenches.Store, team: dict[str, str]
) -> None:
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        added = client.post(
            f"{PREFIX}/problems/small/patterns",
            json={"positive": [1, 2], "negative": [3]},
            headers=_bearer(team["tester"]),
        )
        assert added.status_code == 200, added.text
        moved = client.post(
            f"{PREFIX}/models/clf/aliases/candidate",
            json={"version": 1, "reason": "first"},
            headers=_bearer(team["maintainer"]),
        )
        assert moved.status_code == 200, moved.text
        refused = client.post(
            f"{PREFIX}/models/clf/aliases/production",
            json={"version": 1, "reason": "release"},
            headers=_bearer(team["maintainer"]),
        )
        assert refused.status_code == 403
        log = client.get(f"{PREFIX}/audit", headers=_bearer(team["admin"])).json()
    by_action = {e["action"]: e for e in log}
    assert by_action["problems.add"]["actor"] == "tester-user"
    assert by_action["problems.add"]["remote"] == "127.0.0.1"
    assert by_action["problems.add"]["target"] == "problem:small"
    assert by_action["models.promote"]["actor"] == "maintainer-user"
    assert [e["action"] for e in log].count("problems.add") == 1
    assert not any(e["target"].endswith("@production") for e in log)
    # The records' own "by" columns name the caller, not the server's OS user.
    [move] = store.models.alias_history("clf", "candidate")
    assert move.moved_by == "maintainer-user"


def test_bodies_are_bounded_and_answers_carry_security_headers(
    store: trenches.Store, team: dict[str, str]
) -> None:
    with Live(store, max_body=1_000) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        big = c.post(
            f"{PREFIX}/problems/small/patterns",
            content=b"[" + b"1," * 2_000 + b"1]",
            headers={**_bearer(team["tester"]), "content-type": "application/json"},
        )
        assert big.status_code == 413 and big.json()["status"] == 413
        answer = c.get(f"{PREFIX}/me", headers=_bearer(team["viewer"]))
        assert answer.json()["user"]["name"] == "viewer-user"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        bad = c.post(
            f"{PREFIX}/problems/small/patterns",
            json={"positive": "one"},
            headers=_bearer(team["tester"]),
        )
        assert bad.status_code == 422 and bad.json()["field"] == "positive"


def test_the_openapi_document_lists_every_route(
    store: trenches.Store, team: dict[str, str]
) -> None:
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        doc = client.get(f"{PREFIX}/openapi.json").json()
    for method, path, _ in guarded_routes():
        assert method.lower() in doc["paths"][path], (method, path)


def test_lists_show_only_what_the_caller_may_read_and_the_log_needs_the_whole_store(
    store: trenches.Store, team: dict[str, str]
) -> None:
    other = store.datasets.create("secret", task="classification", label="label")
    other.add(make_frame(20, seed=1), source="expert")
    local_admin = store.accounts.create("tumours-admin")
    store.grants.grant(local_admin, "admin", "tumours")
    token = store.tokens.create(local_admin, "t", expires_in=None).secret
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        seen = client.get(f"{PREFIX}/datasets", headers=_bearer(team["viewer"])).json()
        assert [d["name"] for d in seen] == ["tumours"]
        everything = client.get(f"{PREFIX}/datasets", headers=_bearer(team["admin"])).json()
        assert {d["name"] for d in everything} == {"tumours", "secret"}
        hidden = client.get(f"{PREFIX}/datasets/secret", headers=_bearer(team["viewer"]))
        assert hidden.status_code == 403
        assert client.get(f"{PREFIX}/audit", headers=_bearer(token)).status_code == 403
        stranger = client.get(f"{PREFIX}/datasets", headers=_bearer(team["stranger"]))
        assert stranger.status_code == 403


def test_the_command_serves_with_two_workers_until_sigterm(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    admin = sqlite_store.accounts.create("root", admin=True)
    token = sqlite_store.tokens.create(admin, "t", expires_in=None).secret
    where = str(sqlite_store.location.sqlite_path)
    port = _free_port()
    command = [sys.executable, "-m", "trenches", "--store", where, "server"]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(proc, f"{url}/health")
        for _ in range(4):  # both workers answer some
            me = httpx.get(f"{url}{PREFIX}/me", headers=_bearer(token), timeout=10)
            assert me.json()["user"]["name"] == "root"
        assert httpx.get(f"{url}{PREFIX}/problems/none", headers=_bearer(token)).status_code == 404
        # The web UI is served beside the API, by every worker.
        home = httpx.get(f"{url}/", headers=_bearer(token), timeout=10)
        assert home.status_code == 200 and "<h1>Home</h1>" in home.text
        assert httpx.get(f"{url}/sign-in", timeout=10).status_code == 200
        # Prometheus sees the two workers' counts added up, by route template, not path.
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        assert 'trenches_api_requests_total{method="GET",route="/api/v1/me",status="200"} 4.0' in (
            metrics
        )
        assert 'route="/api/v1/problems/{slug}",status="404"} 1.0' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert b"trenches team server at http://127.0.0.1" in out
    assert b"the web UI, and the API under /api/v1" in out
    code, _, err = run_cli("--store", where, "server", "--ssl-certfile", str(tmp_path / "c"))
    assert code == 2 and "--ssl-keyfile" in err


PASSWORD = "correct horse battery staple"


def test_a_browser_signs_in_and_its_changes_need_the_csrf_token(
    store: trenches.Store, team: dict[str, str]
) -> None:
    store.accounts.set_password("tester-user", PASSWORD)
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as browser:
        wrong = browser.post(f"{PREFIX}/sessions", json={"name": "tester-user", "password": "x"})
        assert wrong.status_code == 401 and "trenches_session" not in browser.cookies
        signed = browser.post(
            f"{PREFIX}/sessions", json={"name": "tester-user", "password": PASSWORD}
        )
        assert signed.status_code == 201, signed.text
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed.json()["csrf"]
        assert browser.get(f"{PREFIX}/me").json()["user"]["name"] == "tester-user"
        url = f"{PREFIX}/problems/small/patterns"
        forged = browser.post(url, json={"positive": [5]})
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
        done = browser.post(url, json={"positive": [5]}, headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        out = browser.delete(f"{PREFIX}/sessions/current", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        assert browser.get(f"{PREFIX}/me").status_code == 401
    [entry] = [e for e in store.audit.list(action="problems.add") if e.target == "problem:small"]
    assert entry.actor == "tester-user"
    [signed_in] = store.audit.list(action="sessions.start")
    assert signed_in.actor == "tester-user" and signed_in.remote == "127.0.0.1"
    assert store.sessions.list("tester-user") == []


def test_sign_in_is_rate_limited_by_name_and_address(
    store: trenches.Store, team: dict[str, str]
) -> None:
    store.accounts.set_password("viewer-user", PASSWORD)
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        for _ in range(5):
            bad = {"name": "viewer-user", "password": "not it at all"}
            assert client.post(f"{PREFIX}/sessions", json=bad).status_code == 401
        good = {"name": "viewer-user", "password": PASSWORD}
        blocked = client.post(f"{PREFIX}/sessions", json=good)
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 300
        assert blocked.headers["content-type"] == "application/problem+json"
        other = client.post(f"{PREFIX}/sessions", json={"name": "tester-user", "password": "x"})
        assert other.status_code == 401  # another name from here still gets its answer


def test_on_postgresql_the_model_files_live_on_s3_and_load_from_there(
    store: trenches.Store, team: dict[str, str]
) -> None:
    import boto3

    version = store.models.get("clf@1")
    if store.location.sqlite_path is None:
        assert store.artifacts.root.startswith("s3://")
        bucket = store.artifacts.root.removeprefix("s3://").split("/")[0]
        s3 = boto3.client("s3", endpoint_url=os.environ["FSSPEC_S3_ENDPOINT_URL"])
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len(keys) >= 2  # the skops and the ONNX forms
    model = store.models.load(version.ref, format="onnx")
    assert len(model.predict(make_frame(5)[["radius", "texture", "grade"]])) == 5
    with Live(store) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        shown = client.get(f"{PREFIX}/models/clf/versions/1", headers=_bearer(team["viewer"]))
        assert shown.status_code == 200 and shown.json()["formats"]
