"""The audit page: admins only (a viewer gets 403); newest first, in pages, filtered by
user, action and target; it shows a promotion made a moment before through the UI."""

from __future__ import annotations

from typing import Any

from test_web import signed_in
from webui import browsing


def test_the_audit_page_shows_the_promotion_just_made(ui: str, browser: Any) -> None:
    approver = signed_in(ui, "approver")
    moved = approver.post("/models/cancer-clf/1/aliases/candidate", data={"reason": "try it"})
    assert moved.status_code == 200
    with browsing(browser, ui, "admin") as visit:
        page = visit.page
        visit.go("/audit")
        assert page.get_by_role("heading", name="Audit log").is_visible()
        # Newest first: only the admin's sign-in came after the promotion.
        rows = page.locator("tbody tr")
        assert "sessions.start" in rows.nth(0).inner_text()
        promoted = rows.nth(1).inner_text()
        assert "approver" in promoted and "models.promote" in promoted
        assert "model:cancer-clf@1" in promoted and "alias candidate" in promoted
        assert "reason try it" in promoted
        assert visit.serious_violations() == []

        page.get_by_label("User").fill("approver")
        page.get_by_label("Action").fill("models")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/audit?user=approver&action=models&target=")
        rows = page.locator("tbody tr")
        assert rows.count() >= 1
        assert all("approver" in rows.nth(i).inner_text() for i in range(rows.count()))
        assert visit.serious_violations() == []


def test_the_audit_log_pages_back_and_is_for_admins(ui: str) -> None:
    admin = signed_in(ui, "admin")
    first = admin.get("/audit").text
    assert 'rel="next"' in first
    next_url = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    older = admin.get(next_url.replace("&amp;", "&"))
    assert older.status_code == 200 and "Back to the newest" in older.text
    assert admin.get("/audit?target=model:cancer-clf").status_code == 200
    assert admin.get("/audit?before=0").status_code == 422
    for role in ("viewer", "approver"):
        client = signed_in(ui, role)
        assert client.get("/audit").status_code == 403
        assert 'href="/audit"' not in client.get("/").text
