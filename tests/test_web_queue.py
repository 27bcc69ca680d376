"""The labelling queue (/queue) in Chromium and over HTTP: a labeller relabels a
data-check finding with the keyboard and the pattern's history shows it, as the store,
the audit log and the API tell; production rows with feedback wait, disagreeing
first, and leave the queue when kept or relabelled (becoming patterns); a viewer sees
no queue and is refused its actions."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

import trenches
from test_web import signed_in
from webui import browsing


def _feedback(
    store: trenches.Store, *, disagreeing: bool = True, back: int = 0
) -> tuple[str, Any, Any]:
    """Feedback on row 0 of the newest logged request (``back`` requests before it):
    the other class when ``disagreeing``, else the model's answer. Returns (request id,
    answer, label)."""
    newest = store.requests.list(limit=1, offset=back).iloc[0]
    answer = newest["outputs"]["labels"][0]
    other = "benign" if answer == "malignant" else "malignant"
    label = other if disagreeing else answer
    store.requests.feedback(newest["request_id"], row=0, label=label, comment="biopsy")
    return str(newest["request_id"]), answer, label


def _first_finding(visit: Any) -> Any:
    """The first data-check finding of the queue, once the check has answered."""
    item = visit.page.locator("li[data-row][id^='item-pattern-']").first
    item.wait_for(timeout=60_000)
    return item


def test_a_labeller_relabels_a_finding_with_the_keyboard_and_its_history_shows_it(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    with browsing(browser, ui, "labeller") as visit:
        visit.go("/queue")
        page = visit.page
        assert page.locator("kbd", has_text="r").first.is_visible()
        item = _first_finding(visit)
        pattern_id = int(str(item.get_attribute("id")).rsplit("-", 1)[1])
        old = team_store.patterns.get(pattern_id)
        item.focus()
        page.keyboard.press("r")
        chosen = page.locator(f"#item-pattern-{pattern_id}-label")
        # The <details> opens at once; its toggle event, which moves the focus into the
        # form, comes a task later (the browser dispatches it so): waited for.
        expect(chosen).to_be_focused()
        new_label = chosen.input_value()
        assert new_label != str(old.label)
        page.keyboard.press("Tab")
        page.keyboard.type("the biopsy says so")
        page.keyboard.press("Enter")
        page.locator(f"#item-pattern-{pattern_id}.decided").wait_for()
        assert "Relabelled as" in page.locator(f"#item-pattern-{pattern_id}").inner_text()
        # The next item is current, ready for the next key.
        current = page.locator("[data-queue] [data-row].current")
        assert current.count() == 1
        assert current.get_attribute("id") != f"item-pattern-{pattern_id}"
        assert visit.serious_violations() == []

    history = team_store.patterns.history(pattern_id)
    assert pattern_id in [p.id for p in history.patterns]
    assert history.changes[-1].pattern_id == pattern_id
    assert str(history.current.label) == new_label
    assert history.current.labelled_by == "labeller"
    assert history.changes[-1].changed_by == "labeller"
    assert history.changes[-1].reason == "the biopsy says so"
    entry = team_store.audit.list(action="patterns.relabel")[0]
    assert (entry.actor, entry.target) == ("labeller", f"pattern:{pattern_id}")
    assert [r.decision for r in team_store.reviews.of(f"pattern:{pattern_id}")] == ["relabelled"]

    client = signed_in(ui, "viewer")
    shown = client.get(f"/api/v1/patterns/{pattern_id}/history").json()
    assert str(shown["patterns"][-1]["label"]) == new_label
    assert shown["patterns"][-1]["labelled_by"] == "labeller"
    # Reviewed, the finding is not asked about again.
    again = signed_in(ui, "labeller").get("/queue/findings/cancer")
    assert f'id="item-pattern-{pattern_id}"' not in again.text


def test_production_rows_with_feedback_wait_disagreeing_first_and_leave_when_decided(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    kept_id, _, _ = _feedback(team_store, disagreeing=False, back=1)
    request_id, answer, _ = _feedback(team_store)
    assert team_store.reviews.count_waiting_rows() == 2
    with browsing(browser, ui, "labeller") as visit:
        visit.go("/")
        assert "2 production rows with feedback wait" in visit.page.inner_text("main")
        visit.go("/queue")
        page = visit.page
        rows = page.locator("#h-feedback ~ ol [data-row]")
        assert rows.count() == 2
        first = rows.first
        assert first.get_attribute("id") == f"item-request-{request_id}-0"
        assert "disagrees" in first.inner_text()
        assert f"Model's answer {answer}" in first.inner_text()
        assert visit.serious_violations() == []
        # j moves to the second row; a keeps its label.
        first.focus()
        page.keyboard.press("j")
        page.keyboard.press("a")
        page.locator(f"#item-request-{kept_id}-0.decided").wait_for()
        assert page.inner_text("#waiting-count") == "1 waiting"
        # Back to the first, relabelled: it becomes a production pattern.
        page.locator(f"#item-request-{request_id}-0").focus()
        page.keyboard.press("r")
        page.select_option(f"#item-request-{request_id}-0-label", answer)
        page.fill(f"#item-request-{request_id}-0-reason", "second opinion")
        page.keyboard.press("Enter")
        page.locator(f"#item-request-{request_id}-0.decided").wait_for()
        assert "Labelled" in page.locator(f"#item-request-{request_id}-0").inner_text()

    assert team_store.reviews.count_waiting_rows() == 0
    made = team_store.reviews.of(f"request:{request_id}:0")[0]
    assert made.decision == "relabelled" and made.reviewed_by == "labeller"
    assert made.pattern_id is not None
    pattern = team_store.patterns.get(made.pattern_id)
    assert (pattern.label, pattern.source, pattern.labelled_by) == (
        answer,
        "production",
        "labeller",
    )
    assert team_store.reviews.of(f"request:{kept_id}:0")[0].decision == "kept"
    actions = {(e.action, e.actor) for e in team_store.audit.list(limit=10)}
    assert {("patterns.review", "labeller"), ("patterns.relabel", "labeller")} <= actions


def test_a_tester_sends_a_finding_to_a_problem(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    with browsing(browser, ui, "tester") as visit:
        visit.go("/queue")
        page = visit.page
        item = _first_finding(visit)
        pattern_id = int(str(item.get_attribute("id")).rsplit("-", 1)[1])
        item.focus()
        page.keyboard.press("p")
        page.select_option(f"#item-pattern-{pattern_id}-problem", "small-malignant")
        page.select_option(f"#item-pattern-{pattern_id}-polarity", "negative")
        page.locator(f"#item-pattern-{pattern_id} form[hx-post$='/send'] button").click()
        page.locator(f"#item-pattern-{pattern_id}.decided").wait_for(timeout=60_000)
    assert pattern_id in team_store.problems.get("small-malignant").negative
    review = team_store.reviews.of(f"pattern:{pattern_id}")[0]
    assert (review.decision, review.problem, review.reviewed_by) == (
        "sent",
        "small-malignant",
        "tester",
    )


def test_a_labeller_sees_no_send_control(ui: str, team_store: trenches.Store) -> None:
    page = signed_in(ui, "labeller").get("/queue/findings/cancer")
    assert page.status_code == 200
    assert 'data-shortcut="r"' in page.text
    assert 'data-shortcut="p"' not in page.text


def test_a_viewer_has_no_queue_and_its_actions_are_refused(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    request_id, _, _ = _feedback(team_store)
    with browsing(browser, ui, "viewer", expected_errors=("status of 403",)) as visit:
        visit.go("/")
        assert visit.page.locator("header nav a[href='/queue']").count() == 0
        assert "Waiting for a label" not in visit.page.inner_text("main")
        assert visit.go("/queue").status == 403
    client = signed_in(ui, "viewer")
    for path, form in (
        ("/queue/patterns/120/accept", {}),
        ("/queue/patterns/120/relabel", {"label": "benign", "reason": "no"}),
        ("/queue/patterns/120/send", {"problem": "small-malignant", "polarity": "positive"}),
        (f"/queue/requests/{request_id}/0/accept", {}),
        (f"/queue/requests/{request_id}/0/relabel", {"label": "benign", "reason": "no"}),
    ):
        assert client.post(path, data=form).status_code == 403, path
    assert team_store.reviews.count_waiting_rows() == 1
    assert team_store.patterns.get(120).active
    # A labeller's relabel without a reason is refused, and changes nothing.
    labeller = signed_in(ui, "labeller")
    answer = labeller.post("/queue/patterns/120/relabel", data={"label": "benign"})
    assert answer.status_code == 422
    assert team_store.patterns.get(120).active


def test_a_row_the_log_does_not_hold_is_not_found(ui: str, team_store: trenches.Store) -> None:
    labeller = signed_in(ui, "labeller")
    request_id = str(team_store.requests.list(limit=1).iloc[0]["request_id"])
    assert labeller.post(f"/queue/requests/{request_id}/999/accept").status_code == 404
    assert labeller.post("/queue/requests/nope/0/accept").status_code == 404
    assert labeller.post("/queue/patterns/99999999/accept").status_code == 404
    assert team_store.reviews.reviewed([f"request:{request_id}:999"]) == set()
