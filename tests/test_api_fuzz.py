"""The team server fuzzed from its own OpenAPI document (schemathesis), over loopback, as
an admin (so that requests reach every route's own checks): requests that break the
document change nothing stored, and no request of either kind gets a 500; every refusal
is RFC 9457 problem details."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select

import trenches
from test_api import Live
from trenches.api.app import PREFIX
from trenches.db import schema as t
from trenches.db.engine import read

from conftest import make_frame

pytestmark = pytest.mark.sqlite_only

#: Examples per operation and mode.
EXAMPLES = 25
#: The tables a change would touch.
COUNTED = (
    t.datasets,
    t.import_batches,
    t.pattern_changes,
    t.problems,
    t.problem_patterns,
    t.model_versions,
    t.aliases,
    t.alias_history,
    t.audit_log,
)


@pytest.fixture
def served(sqlite_store: trenches.Store) -> Iterator[tuple[trenches.Store, dict[str, str]]]:
    store = sqlite_store
    frame = make_frame()
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(frame, source="expert", created_at="2026-01-01")
    X = frame[["radius", "texture", "grade"]]
    store.models.register(
        LogisticRegression(max_iter=500).fit(X, frame["label"]), "clf", X=X, dataset="tumours"
    )
    store.problems.create("small", dataset="tumours", title="small tumours")
    admin = store.accounts.create("root", admin=True)
    token = store.tokens.create(admin, "fuzz", expires_in=None).secret
    yield store, {"Authorization": f"Bearer {token}"}


def _counts(store: trenches.Store) -> dict[str, int]:
    with read(store.engine) as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
            for table in COUNTED
        }


def _wrong(response: Any, method: str, path: str) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"{method} {path}: {status} {response.text[:300]}"
    if status >= 400:
        kind = response.headers.get("content-type")
        kind = kind[0] if isinstance(kind, list) else kind
        if status == 400 and response.text == "Invalid HTTP request received.":
            return None  # refused by uvicorn's HTTP parser, before any app sees it
        if kind != "application/problem+json":
            return f"{method} {path}: {status} as {kind}"
        body = response.json()
        if body.get("status") != status or not isinstance(body.get("detail"), str):
            return f"{method} {path}: {status} without problem details: {response.text[:300]}"
    return None


def _fuzz(live: Live, headers: dict[str, str], mode: GenerationMode) -> list[str]:
    wrong: list[str] = []
    with requests.Session() as session:
        schema = schemathesis.openapi.from_url(f"{live.url}{PREFIX}/openapi.json", headers=headers)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        for operation in operations:
            if mode is GenerationMode.NEGATIVE and not (
                operation.body or "{" in operation.path or operation.query
            ):
                continue  # nothing to break

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode, headers=headers))
            def fuzz(case: Any) -> None:
                response = case.call(base_url=live.url, session=session, headers=headers)
                problem = _wrong(response, case.method, case.formatted_path)
                if problem is not None:
                    wrong.append(problem)

            try:
                fuzz()
            except Unsatisfiable:
                # Every value fits (a free-text path parameter): no malformed request.
                assert mode is GenerationMode.NEGATIVE
    return wrong


def test_malformed_requests_change_nothing_and_get_problem_details(
    served: tuple[trenches.Store, dict[str, str]],
) -> None:
    store, headers = served
    before = _counts(store)
    with Live(store) as live:
        wrong = _fuzz(live, headers, GenerationMode.NEGATIVE)
    assert wrong == [], wrong[:10]
    assert _counts(store) == before


def test_well_formed_requests_never_get_a_500(
    served: tuple[trenches.Store, dict[str, str]],
) -> None:
    store, headers = served
    with Live(store) as live:
        wrong = _fuzz(live, headers, GenerationMode.POSITIVE)
    assert wrong == [], wrong[:10]
