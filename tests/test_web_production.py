"""The production pages in Chromium: every role walks the overview and a model's page
(drift reports over time, a report column by column, outliers, request volume and
latency, retraining passes with why each candidate was or was not promoted), with no
console error and no serious accessibility violation."""

from __future__ import annotations

from typing import Any

import pytest

import trenches
from test_web import signed_in
from webui import browsing

MODEL = "cancer-clf"


@pytest.mark.parametrize("role", ["viewer", "approver", "admin"])
def test_the_production_pages_in_chromium(ui: str, browser: Any, role: str) -> None:
    with browsing(browser, ui, role) as visit:
        page = visit.page
        visit.go("/production")
        assert page.get_by_role("heading", name="Production", exact=True).is_visible()
        assert page.get_by_text("drift", exact=True).first.is_visible()
        assert visit.serious_violations() == []

        page.get_by_role("link", name=MODEL).first.click()
        visit.settled()
        for chart in ("#drift-over-time", "#drift-columns", "#traffic"):
            assert page.locator(f"{chart} .main-svg").first.is_visible(), chart
        # The newest report, column by column: the drifted first.
        first = page.locator("#h-columns ~ table tbody tr").first
        assert "drifted" in first.inner_text()
        # Outliers arrive once the page is shown.
        page.locator("#outliers table").wait_for()
        assert page.locator("#outliers tbody tr").count() > 0
        # The retraining pass and why its candidate waits.
        passes = page.locator("#h-retrains ~ table tbody tr").first
        assert "not promoted" in passes.inner_text()
        assert "Failed gates: problem:" in passes.inner_text()
        assert visit.serious_violations() == []

        # An older report, column by column, from the list.
        page.get_by_role("link", name="#1", exact=True).click()
        page.wait_for_url(f"**/production/{MODEL}?report=1")
        assert page.get_by_role("heading", name="Report #1, column by column").is_visible()


def test_request_volume_comes_from_the_log(ui: str, team_store: trenches.Store) -> None:
    client = signed_in(ui, "viewer")
    logged = team_store.requests.count(version=MODEL)
    page = client.get(f"/production/{MODEL}?span=all").text
    assert f'<div class="big">{logged}</div>' in page
    assert client.get(f"/production/{MODEL}?span=forever").status_code == 422
    assert client.get(f"/production/{MODEL}?report=999").status_code == 404
    assert client.get("/production/nope").status_code == 404
