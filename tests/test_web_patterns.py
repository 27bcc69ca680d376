"""The patterns pages in Chromium: each role filters and pages the patterns table and
reads a pattern (no console error, no serious accessibility violation); a labeller
relabels from the pattern's page and its history shows who and why; a maintainer
deactivates one and explains a prediction; a viewer sees no edit control and is
refused a change posted anyway."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import trenches
from test_web import signed_in
from webui import browsing

READERS = ("viewer", "labeller", "tester")


def _shown_ids(page: Any) -> list[int]:
    return [int(t) for t in page.locator("tbody tr td a[href^='/patterns/']").all_inner_texts()]


@pytest.mark.parametrize("role", READERS)
def test_each_reader_filters_and_pages_the_patterns(
    ui: str, browser: Any, team_store: trenches.Store, role: str
) -> None:
    with browsing(browser, ui, role) as visit:
        visit.go("/patterns")
        page = visit.page
        assert page.get_by_role("heading", name="Patterns", exact=True).is_visible()
        first = _shown_ids(page)
        assert len(first) == 50 and first == sorted(first)
        assert (page.locator('input[name="patterns"]').count() > 0) == (role == "tester")
        assert visit.serious_violations() == []
        page.get_by_role("link", name="Next →").click()
        page.wait_for_url("**after=50*")
        second = _shown_ids(page)
        assert second[0] > first[-1]

        page.get_by_label("Split").select_option("validation")
        page.get_by_label("Label", exact=True).fill("malignant")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**split=validation*")
        query = parse_qs(urlsplit(page.url).query)
        assert query["label"] == ["malignant"] and "after" not in query
        shown = _shown_ids(page)
        assert shown
        for pid in shown[:5]:
            pattern = team_store.patterns.get(pid)
            assert pattern.split == "validation" and pattern.label == "malignant"

        visit.go("/patterns?problem=small-malignant")
        assert sorted(_shown_ids(page)) == sorted(
            team_store.problems.get("small-malignant").patterns()
        )
        wrong = sorted(team_store.predictors.wrong("cancer-clf@4").tolist())
        visit.go("/patterns?wrong_by=cancer-clf%404")
        assert _shown_ids(page) == wrong[:50]
        assert visit.serious_violations() == []


@pytest.mark.parametrize("role", READERS)
def test_each_reader_reads_a_pattern(
    ui: str, browser: Any, team_store: trenches.Store, role: str
) -> None:
    pid = team_store.problems.get("small-malignant").positive[0]
    with browsing(browser, ui, role) as visit:
        visit.go(f"/patterns/{pid}")
        page = visit.page
        assert page.get_by_role("heading", name=f"Pattern {pid}").is_visible()
        rows = page.locator("section[aria-labelledby='h-predictions'] tbody tr")
        assert rows.count() == len(team_store.models.versions("cancer-clf"))
        assert page.get_by_role("link", name="Small malignant", exact=False).is_visible()
        assert (page.get_by_role("button", name="Relabel").count() > 0) == (role != "viewer")
        assert page.get_by_role("button", name="Deactivate").count() == 0
        assert page.get_by_role("button", name="Explain").count() == 0
        assert visit.serious_violations() == []


def test_a_labeller_relabels_and_the_history_shows_it(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    old = team_store.patterns.get(7)
    new_label = "benign" if old.label == "malignant" else "malignant"
    with browsing(browser, ui, "labeller") as visit:
        visit.go("/patterns/7")
        page = visit.page
        page.get_by_label("New label").fill(new_label)
        page.get_by_label("Why").fill("second opinion from pathology")
        page.get_by_role("button", name="Relabel").click()
        page.wait_for_url(lambda url: not url.endswith("/patterns/7"))
        new_id = int(page.url.rsplit("/", 1)[1])
        assert page.get_by_role("heading", name=f"Pattern {new_id}").is_visible()
        history = page.inner_text("#history")
        assert "relabelled by labeller, because second opinion from pathology" in history
        assert f"label {new_label}" in history and f"label {old.label}" in history
        assert visit.serious_violations() == []
    chain = team_store.patterns.history(7)
    assert chain.current.id == new_id
    assert chain.current.label == new_label and chain.current.labelled_by == "labeller"
    entries = [e for e in team_store.audit.list() if e.target == "pattern:7"]
    assert [(e.action, e.actor) for e in entries] == [("patterns.relabel", "labeller")]


def test_a_refused_relabel_is_shown_in_the_page(ui: str, browser: Any) -> None:
    with browsing(browser, ui, "labeller", expected_errors=("status of 409",)) as visit:
        visit.go("/patterns/7")
        page = visit.page
        page.get_by_label("New label").fill(str(page.locator("strong").last.inner_text()))
        page.get_by_label("Why").fill("no change")
        page.get_by_role("button", name="Relabel").click()
        page.locator("#flash .message.error").wait_for()
        assert "already has the label" in page.inner_text("#flash")


def test_a_maintainer_deactivates_and_explains(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    with browsing(browser, ui, "maintainer") as visit:
        visit.go("/patterns/11")
        page = visit.page
        page.get_by_label("Version to explain").select_option("cancer-clf@4")
        page.get_by_role("button", name="Explain").click()
        page.get_by_role("heading", name="cancer-clf@4:", exact=False).wait_for(timeout=60_000)
        assert page.locator("#explanations tbody tr").count() > 0
        page.get_by_label("Why (it stays stored").fill("a duplicate of 12")
        page.get_by_role("button", name="Deactivate").click()
        page.get_by_text("deactivated by maintainer, because a duplicate of 12").wait_for()
        assert page.get_by_text("inactive since").is_visible()
        assert page.get_by_role("button", name="Relabel").count() == 0
        assert visit.serious_violations() == []
    assert not team_store.patterns.get(11).active
    assert team_store.explanations.list("cancer-clf@4", pattern_ids=[11])


def test_a_viewer_sees_no_edit_control_and_is_refused_a_change(ui: str) -> None:
    client = signed_in(ui, "viewer")
    page = client.get("/patterns/7").text
    assert "hx-post" not in page.replace('hx-post="/sign-out"', "")
    listing = client.get("/patterns").text
    assert 'name="patterns"' not in listing and "Add to problem" not in listing
    refused = {
        "/patterns/7/relabel": {"label": "benign", "reason": "x"},
        "/patterns/7/deactivate": {"reason": "x"},
        "/patterns/7/explain": {"version": "cancer-clf@4"},
    }
    for path, form in refused.items():
        assert client.post(path, data=form).status_code == 403, path
    labeller = signed_in(ui, "labeller")
    assert labeller.post("/patterns/7/deactivate", data={"reason": "x"}).status_code == 403
    assert client.get("/patterns?after=-1").status_code == 422
    assert client.get("/patterns/0").status_code == 422
    assert client.get("/patterns/999999").status_code == 404
