"""The data quality pages (/quality, /quality/{snapshot_id}) in Chromium: every
snapshot the viewer may read, and a snapshot's report (computed on demand, then kept),
each finding linking to its patterns, with the class balance chart."""

from __future__ import annotations

from typing import Any

import trenches
from test_web import signed_in
from webui import browsing


def test_a_viewer_reads_the_quality_report_of_a_snapshot(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    snapshots = team_store.datasets.get("cancer").snapshots()
    newest = snapshots[-1]
    expected = team_store.datasets.get("cancer").check(snapshot=newest.id)
    with browsing(browser, ui, "viewer") as visit:
        visit.go("/quality")
        page = visit.page
        links = page.locator("main table a[href^='/quality/']")
        assert links.count() == len(snapshots)
        assert links.first.inner_text() == f"Snapshot {newest.id}"
        assert visit.serious_violations() == []
        links.first.click()
        page.wait_for_url(f"**/quality/{newest.id}")
        page.locator("#h-findings").wait_for(timeout=60_000)
        text = page.inner_text("main")
        for finding in expected.findings:
            assert finding.summary in text
        # Each finding links to its patterns.
        errors = expected.finding("label-errors").pattern_ids
        assert page.locator(f"#f-label-errors ~ table a[href='/patterns/{errors[0]}']").count()
        conflict = expected.finding("conflicting-labels").groups[0]
        for pid in conflict:
            assert page.locator(f"a[href='/patterns/{pid}']").count()
        # The class balance, drawn by Plotly from the page's own assets.
        page.locator(f"#balance-{newest.id} .main-svg").first.wait_for()
        assert visit.serious_violations() == []
        # Computed once, the report is part of the page from then on.
        visit.go(f"/quality/{newest.id}")
        assert page.locator("#h-findings").count() == 1
        assert page.locator("[hx-get$='/report']").count() == 0


def test_quality_pages_answer_each_role_and_refuse_strangers(ui: str) -> None:
    for role in ("viewer", "labeller", "admin"):
        client = signed_in(ui, role)
        assert client.get("/quality").status_code == 200
        assert "Data quality" in client.get("/quality/1").text
    client = signed_in(ui, "viewer")
    assert client.get("/quality/999").status_code == 404
    assert client.get("/quality/0").status_code == 422
