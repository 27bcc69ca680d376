"""Deny by default, page by page: every page route of the web UI, asked for by every
role over HTTP, answers 200 to the roles its rule allows and 403 to the others; every
change a page offers is refused to a viewer who posts it anyway (with the session's
CSRF token, so that the refusal is the role's, not the token's)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

import trenches
from test_web import signed_in
from trenches.api.app import rule_of
from trenches.team.roles import ACTIONS, includes
from trenches.web.app import PAGES, page_routes
from webui import ROLES

MODEL = "cancer-clf"


def _values(store: trenches.Store) -> dict[str, str]:
    """A real value for each path parameter of the pages, from the demo's store."""
    production = store.models.get(f"{MODEL}@production")
    problem = store.problems.list(status="open")[0]
    served = store.requests.list(limit=1)
    return {
        "slug": problem.slug,
        "ref": quote(production.ref),
        "pattern_id": str(problem.positive[0]),
        "dataset": problem.dataset,
        "model": MODEL,
        "version": str(production.version),
        "alias": "candidate",
        "snapshot_id": str(store.datasets.get(problem.dataset).snapshots()[-1].id),
        "request_id": str(served["request_id"].iloc[0]),
        "row": "0",
    }


def _path(template: str, values: dict[str, str]) -> str:
    path = template
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a parameter of {template}"
    return path


def _allowed(role: str, action: str | None) -> bool:
    """Whether ``role``, granted on every namespace, may do ``action``."""
    return action is None or role == "admin" or includes(role, ACTIONS[action])


@pytest.mark.parametrize("role", ROLES)
def test_every_page_answers_the_roles_its_rule_allows_and_refuses_the_others(
    ui: str, team_store: trenches.Store, role: str
) -> None:
    values = _values(team_store)
    client = signed_in(ui, role)
    asked = 0
    for method, template, route in page_routes(PAGES):
        if method != "GET":
            continue
        rule = rule_of(route)
        assert rule is not None and isinstance(rule.action, str | None)
        answer = client.get(_path(template, values), timeout=60)
        expected = 200 if _allowed(role, rule.action) else 403
        assert answer.status_code == expected, f"{role} GET {template}: {answer.text[:300]}"
        if expected == 403:
            # A refusal is a page that says what is needed, not a bare status.
            assert "Not allowed" in answer.text
        asked += 1
    assert asked >= 20


def test_a_viewer_posting_any_change_a_page_offers_is_refused(
    ui: str, team_store: trenches.Store
) -> None:
    values = _values(team_store)
    viewer = signed_in(ui, "viewer")
    before = team_store.audit.list(limit=1)
    refused: list[Any] = []
    for method, template, _ in page_routes(PAGES):
        if method != "POST" or template == "/sign-out":
            continue
        form = {
            "reason": "I should not",
            "label": "benign",
            "slug": values["slug"],
            "version": f"{MODEL}@{values['version']}",
        }
        answer = viewer.post(_path(template, values), data=form)
        assert answer.status_code == 403, f"POST {template}: {answer.status_code}"
        refused.append(template)
    assert len(refused) >= 12
    # Nothing was changed, nor recorded as changed.
    assert team_store.audit.list(limit=1) == before


#: Parts a page fetches once shown, not pages of their own.
_FRAGMENTS = ("/result", "/outliers", "/findings", "/report")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_a_role_may_see_walked_in_chromium(
    ui: str, team_store: trenches.Store, browser: Any, role: str
) -> None:
    from webui import browsing

    values = _values(team_store)
    walked = []
    with browsing(browser, ui, role) as visit:
        for method, template, route in page_routes(PAGES):
            rule = rule_of(route)
            if method != "GET" or any(f in template for f in _FRAGMENTS) or rule is None:
                continue
            if not _allowed(role, rule.action if isinstance(rule.action, str) else None):
                continue
            answer = visit.go(_path(template, values))
            assert answer.status == 200, f"{role} {template}"
            assert visit.page.locator("main h1").count() == 1, template
            assert visit.serious_violations() == [], f"{role} {template}"
            walked.append(template)
    assert len(walked) >= (16 if role == "admin" else 8)
