"""The server's routes as a whole, walked from the app itself so that a route added later
is held to the same: each is a module-level function on a router (not a closure), each
asks for the token but the probes, the OpenAPI document says so, and an error of
trenches that escapes a route is answered with its status and a JSON body."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import routing
from sklearn.linear_model import LogisticRegression

import trenches
from test_serving import JSON, OPEN, LiveServer
from trenches.errors import InvalidInput, StoreBusy
from trenches.serving.app import Settings, create_app

from conftest import tumours

pytestmark = pytest.mark.sqlite_only

TOKEN = "s3cret"
#: What a path parameter is filled with: the served model's name and version, so that
#: with the token every route would answer.
PARAMETERS = {"name": "clf", "version": "1"}


class Route(NamedTuple):
    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Any]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with clf@1, a logistic regression on three columns, in production."""
    path = tmp_path_factory.mktemp("routes") / "store"
    frame = tumours(200, seed=1)
    with trenches.open(path) as store:
        ds = store.datasets.create("tumours", task="classification", label="label")
        ds.add(frame, source="expert", created_at="2026-01-01")
        X, y, _, _ = ds.snapshot().training_data("train")
        version = store.models.register(
            LogisticRegression().fit(X, y), "clf", X=X, dataset="tumours"
        )
        store.models.promote(version.ref, "production", reason="first")
    yield str(path)


def served(store_path: str, tmp_path: Path, token: str | None = TOKEN) -> Settings:
    return Settings(
        ref="clf@production",
        store=store_path,
        token=token,
        spool_dir=str(tmp_path / "spool"),
        log_requests=False,
    )


def _routes(app: Any) -> list[Route]:
    """Every route of ``app``, walked through the routers it includes (FastAPI from
    0.16x keeps an included router as one entry of ``app.routes``; before, its routes)."""
    walk = getattr(routing, "iter_route_contexts", None)
    found = list(walk(app.routes)) if walk is not None else list(app.routes)
    return [Route(r.path, frozenset(r.methods or ()), r.endpoint) for r in found]


def _path(route: Route) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMETERS[m.group(1)], route.path)


def test_every_route_is_a_module_level_function(store_path: str, tmp_path: Path) -> None:
    app = create_app(served(store_path, tmp_path))
    closures = []
    for route in _routes(app):
        endpoint = route.endpoint
        module = sys.modules[endpoint.__module__]
        if (
            "<locals>" in endpoint.__qualname__
            or getattr(module, endpoint.__name__) is not endpoint
        ):
            closures.append((route.path, endpoint.__module__, endpoint.__qualname__))
    assert not closures, closures
    assert {"/openapi.json", "/docs", "/redoc", "/invocations", "/feedback"} <= {
        r.path for r in _routes(app)
    }


def test_every_route_but_the_probes_asks_for_the_token(store_path: str, tmp_path: Path) -> None:
    with (
        LiveServer(served(store_path, tmp_path)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        opened, told, refused = set(), [], []
        for route in _routes(live.app):
            for method in sorted(route.methods):
                path = _path(route)
                r = c.request(method, path, content=b"{}", headers=JSON)
                if route.path in OPEN:
                    opened.add(route.path)
                    if r.status_code != 200:
                        refused.append((method, path, r.status_code))
                elif not (
                    r.status_code == 401
                    and r.headers["www-authenticate"] == "Bearer"
                    and (method == "HEAD" or "bearer token" in r.json()["error"])
                    and "clf" not in r.text
                ):
                    told.append((method, path, r.status_code, r.text[:80]))
                elif method == "GET":  # with the token, the same route answers
                    given = c.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                    if given.status_code != 200:
                        refused.append((method, path, given.status_code))
        assert opened == set(OPEN)
        assert not told, told
        assert not refused, refused


def test_the_openapi_document_declares_the_token_only_when_one_is_set(
    store_path: str, tmp_path: Path
) -> None:
    doc = create_app(served(store_path, tmp_path)).openapi()
    assert doc["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The token trenches serve was given (--token-file).",
    }
    for path, item in doc["paths"].items():
        for operation in item.values():
            want = None if path in OPEN else [{"token": []}]
            assert operation.get("security") == want, (path, operation.get("security"))
    doc = create_app(served(store_path, tmp_path, token=None)).openapi()
    assert "securitySchemes" not in doc.get("components", {})
    assert not any(op.get("security") for item in doc["paths"].values() for op in item.values())


def busy() -> None:
    raise StoreBusy("the database stayed locked for 5 s; retry")


def bad_input() -> None:
    raise InvalidInput("not a number", field="radius")


def test_a_trenches_error_a_route_lets_through_is_a_json_answer_of_its_kind(
    store_path: str, tmp_path: Path
) -> None:
    live = LiveServer(served(store_path, tmp_path, token=None))
    live.app.get("/busy")(busy)
    live.app.get("/bad-input")(bad_input)
    with live, httpx.Client(base_url=live.url) as c:
        r = c.get("/busy")
        assert r.status_code == 503
        assert r.json() == {"error": "the database stayed locked for 5 s; retry"}
        r = c.get("/bad-input")
        assert r.status_code == 422
        assert r.json() == {"error": 'column "radius": not a number', "field": "radius"}
        assert r.headers.get("connection") != "close"
        assert c.get("/version").json() == "clf@1"
