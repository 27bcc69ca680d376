"""The models pages in Chromium: every role that may read models walks the list, a
model, a version (its gate checks and replays) and a comparison (no console error, no
serious accessibility violation); an approver promotes a version that passed its
gates, and is refused, on the page, for one whose latest check failed; a viewer sees
no promotion control and is refused (403) when posting one anyway."""

from __future__ import annotations

from typing import Any

import pytest

import trenches
from test_web import signed_in
from webui import browsing

MODEL = "cancer-clf"


def failing_and_passing(store: trenches.Store) -> tuple[int, int]:
    """A version whose latest check failed and one whose latest check passed."""
    checked = [(v.version, store.gates.latest(v.ref)) for v in store.models.versions(MODEL)]
    failed = next(n for n, c in checked if c is not None and not c.passed)
    passed = next(n for n, c in checked if c is not None and c.passed)
    return failed, passed


@pytest.mark.parametrize("role", ["viewer", "approver", "admin"])
def test_the_models_pages_in_chromium(
    ui: str, browser: Any, role: str, team_store: trenches.Store
) -> None:
    replay = team_store.replays.run(f"{MODEL}@5", window=None)
    with browsing(browser, ui, role) as visit:
        page = visit.page
        visit.go("/models")
        assert page.get_by_role("heading", name="Models", exact=True).is_visible()
        page.get_by_role("link", name=MODEL).first.click()
        visit.settled()
        assert page.locator("#metrics-chart .main-svg").first.is_visible()
        assert page.get_by_role("cell", name="went live in March").is_visible()
        assert visit.serious_violations() == []

        visit.go(f"/models/{MODEL}/5")
        assert page.get_by_role("heading", name=f"{MODEL}@5").is_visible()
        assert page.get_by_text("Snapshot digest").is_visible()
        assert page.get_by_role("cell", name="problem:small-malignant (held out) score >= 0.85")
        promotes = page.get_by_role("button", name="Promote to production")
        assert promotes.count() == (0 if role == "viewer" else 1)
        assert page.get_by_role("link", name="Its problems on the board").is_visible()
        # Its replay on the request log, beside the checks.
        assert page.get_by_role("heading", name="Replays on the request log").is_visible()
        assert page.get_by_role("cell", name=f"#{replay.id}", exact=True).is_visible()
        # Each problem of its dataset links to what this version gets right and wrong.
        assert page.locator('a[href^="/problems/small-malignant/versions/cancer-clf%405"]').count()
        assert visit.serious_violations() == []

        visit.go(f"/models/{MODEL}")
        page.get_by_label("From (A)").select_option("4")
        page.get_by_label("To (B)").select_option("5")
        page.get_by_role("button", name="Compare").click()
        page.wait_for_url(f"**/models/{MODEL}/compare?a=4&b=5")
        # The comparison arrives once the page shows.
        page.get_by_text("McNemar p =").wait_for()
        assert page.get_by_role("heading", name="Data changes between their snapshots")
        assert page.get_by_role("link", name="small-malignant").is_visible()
        assert visit.serious_violations() == []


def test_an_approver_promotes_a_passing_version_and_is_refused_a_failing_one(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    failed, passed = failing_and_passing(team_store)
    # Production moves off the passing version, so that promoting it back is a move.
    team_store.models.promote(f"{MODEL}@2", "production", reason="rolled back for the test")
    with browsing(browser, ui, "approver", expected_errors=("status of 409",)) as visit:
        page = visit.page
        visit.go(f"/models/{MODEL}/{failed}")
        page.get_by_label("Reason (kept in the alias history)").fill("ship it")
        page.get_by_role("button", name="Promote to production").click()
        refusal = page.locator("#flash .message.error")
        refusal.wait_for()
        assert "cannot become production" in refusal.inner_text()
        assert "failed" in refusal.inner_text()
        assert team_store.models.get(f"{MODEL}@production").version == 2

        visit.go(f"/models/{MODEL}/{passed}")
        page.get_by_label("Reason (kept in the alias history)").fill("passed every gate again")
        page.get_by_role("button", name="Promote to production").click()
        done = page.locator("#promote .message.ok")
        done.wait_for()
        assert f"production now points at {MODEL}@{passed}" in done.inner_text()
        assert visit.serious_violations() == []

        visit.go(f"/models/{MODEL}")
        newest = page.locator("#h-aliases ~ table tbody tr").first
        assert "approver" in newest.inner_text()
        assert "passed every gate again" in newest.inner_text()
    assert team_store.models.get(f"{MODEL}@production").version == passed


def test_who_may_move_which_alias(ui: str, team_store: trenches.Store) -> None:
    failed, passed = failing_and_passing(team_store)
    reason = {"reason": "because"}
    viewer = signed_in(ui, "viewer")
    assert (
        viewer.post(f"/models/{MODEL}/{passed}/aliases/production", data=reason).status_code == 403
    )
    assert viewer.post(f"/models/{MODEL}/1/aliases/candidate", data=reason).status_code == 403
    assert "Promote to production" not in viewer.get(f"/models/{MODEL}/{passed}").text
    # A maintainer moves the candidate, not a release.
    maintainer = signed_in(ui, "maintainer")
    page = maintainer.get(f"/models/{MODEL}/1").text
    assert "Make candidate" in page and "Promote to production" not in page
    assert maintainer.post(f"/models/{MODEL}/1/aliases/production", data=reason).status_code == 403
    assert maintainer.post(f"/models/{MODEL}/1/aliases/candidate", data=reason).status_code == 200
    assert team_store.models.get(f"{MODEL}@candidate").version == 1
    approver = signed_in(ui, "approver")
    assert (
        approver.post(f"/models/{MODEL}/1/aliases/production", data={"reason": ""}).status_code
        == 422
    )
    refused = approver.post(f"/models/{MODEL}/{failed}/aliases/production", data=reason)
    assert refused.status_code == 409 and "cannot become production" in refused.text
    # Forced past the failed check (approvers), and the force is kept.
    assert (
        maintainer.post(
            f"/models/{MODEL}/{failed}/aliases/production?force=1", data=reason
        ).status_code
        == 403
    )
    forced = approver.post(f"/models/{MODEL}/{failed}/aliases/production?force=1", data=reason)
    assert forced.status_code == 200 and "(forced)" in forced.text
    assert team_store.models.alias_history(MODEL, "production")[-1].forced
    assert approver.get(f"/models/{MODEL}/99").status_code == 404
    assert approver.get("/models/nope").status_code == 404


def test_a_comparison_takes_numbers_or_references(ui: str) -> None:
    client = signed_in(ui, "viewer")
    by_number = client.get(f"/models/{MODEL}/compare?a=4&b=5")
    by_ref = client.get(f"/models/{MODEL}/compare?a={MODEL}@4&b={MODEL}@5")
    assert by_number.status_code == by_ref.status_code == 200
    assert "v4 against v5" in by_ref.text
    # The page fetches the comparison itself once shown: it reads every prediction.
    assert f'hx-get="/models/{MODEL}/compare/result?a=4&amp;b=5"' in by_ref.text
    result = client.get(f"/models/{MODEL}/compare/result?a={MODEL}@4&b=5")
    assert result.status_code == 200 and "McNemar p =" in result.text
    assert client.get(f"/models/{MODEL}/compare?a=other@4&b=5").status_code == 422


def test_an_endpoint_version_page_names_its_service(ui: str, team_store: trenches.Store) -> None:
    from test_endpoints import Service

    dataset = team_store.models.get(f"{MODEL}@1").dataset
    assert dataset is not None
    with Service(lambda rows: [[0.5, 0.5]] * len(rows)) as service:
        endpoint = trenches.Endpoint(url=service.url, protocol="json", language="r")
        team_store.models.add_endpoint(
            "remote-r", endpoint, dataset=dataset, sources={"api.R": b"# plumber"}
        )
    client = signed_in(ui, "viewer")
    page = client.get("/models/remote-r/1")
    client.close()
    assert page.status_code == 200
    assert f"<code>{service.url}</code> (json, r); kept with it: api.R" in page.text
