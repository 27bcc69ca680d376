"""The problems board in Chromium: each role reads the board, a problem and one
version's verdicts (no console error, no serious accessibility violation); a tester
makes a problem of patterns picked in the patterns list and sees the backfilled graph
with a point per version, adds patterns by id and from a file, and closes it; a viewer
sees no edit control and is refused a change posted anyway."""

from __future__ import annotations

from typing import Any

import pytest

import trenches
from test_web import signed_in
from webui import browsing

READERS = ("viewer", "labeller", "tester")


def _versions(store: trenches.Store) -> list[str]:
    return [v.ref for v in store.models.versions("cancer-clf")]


def _points(page: Any, plot: str) -> list[list[str]]:
    """The x values of each trace of the graph ``plot``, as Plotly drew them."""
    return page.evaluate(f"() => document.getElementById('{plot}').data.map(t => t.x)")


@pytest.mark.parametrize("role", READERS)
def test_each_reader_walks_the_board_a_problem_and_a_version(
    ui: str, browser: Any, team_store: trenches.Store, role: str
) -> None:
    last = _versions(team_store)[-1]
    with browsing(browser, ui, role) as visit:
        visit.go("/problems")
        page = visit.page
        assert page.get_by_role("heading", name="Problems", exact=True).is_visible()
        assert page.get_by_role("link", name="Small malignant", exact=False).first.is_visible()
        page.wait_for_selector("#problems-graph .main-svg")
        links = page.evaluate(
            "() => document.getElementById('problems-graph').data[0].customdata.map(c => c[0])"
        )
        assert links[-1] == f"/problems/small-malignant/versions/{last}"
        assert visit.serious_violations() == []
        assert (page.get_by_role("button", name="Create the problem").count() > 0) == (
            role == "tester"
        )

        visit.go("/problems?status=closed")
        assert page.get_by_text("No problem matches these filters").is_visible()

        visit.go("/problems/small-malignant")
        page.wait_for_selector("#problem-graph .main-svg")
        assert _points(page, "problem-graph")[0] == _versions(team_store)
        assert page.locator("td.wrong, td.right").count() > 0
        assert page.get_by_role("link", name="1", exact=True).count() <= 1
        assert visit.serious_violations() == []
        assert (page.get_by_role("button", name="Close").count() > 0) == (role == "tester")

        # A click on a point of the graph opens that version's verdicts.
        page.evaluate(
            "() => { const g = document.getElementById('problem-graph');"
            " g.emit('plotly_click', {points: [{customdata: g.data[0].customdata.at(-1)}]}); }"
        )
        page.wait_for_url(f"**/problems/small-malignant/versions/{last}")
        assert page.get_by_role("heading", name=f"{last} on", exact=False).is_visible()
        visit.go(f"/problems/small-malignant/versions/{last}?only=wrong")
        assert page.locator("td.right").count() == 0
        assert visit.serious_violations() == []


def test_a_tester_makes_a_problem_of_picked_patterns_and_sees_it_backfilled(
    ui: str, browser: Any, team_store: trenches.Store
) -> None:
    versions = _versions(team_store)
    with browsing(browser, ui, "tester") as visit:
        visit.go("/patterns?dataset=cancer&split=validation")
        page = visit.page
        boxes = page.locator('input[name="patterns"]')
        picked = [boxes.nth(i).get_attribute("value") for i in range(3)]
        for i in range(3):
            boxes.nth(i).check()
        page.get_by_label("Polarity").select_option("positive")
        page.get_by_text("Make a new problem of them").click()
        page.get_by_label("Slug").fill("picked-by-hand")
        page.get_by_label("Title").fill("Picked by hand")
        page.get_by_role("button", name="Create problem").click()
        page.wait_for_url("**/problems/picked-by-hand")
        page.wait_for_selector("#problem-graph .main-svg")
        # Backfilled: every version has a point, held out and all.
        traces = _points(page, "problem-graph")
        assert traces == [versions, versions]
        assert page.evaluate(
            "() => document.getElementById('problem-graph').data[1].y.every(y => y !== null)"
        )
        rows = page.locator("tbody tr")
        assert rows.count() == 3
        assert sorted(rows.locator("td:first-child").all_inner_texts()) == sorted(picked)
        assert visit.serious_violations() == []

        # More patterns by id, as negative controls.
        page.get_by_label("Pattern ids").fill("1, 2")
        page.get_by_label("Polarity").select_option("negative")
        page.get_by_role("button", name="Add", exact=True).click()
        page.get_by_text("Added 2 patterns").wait_for()
        assert f"{len(versions)} versions predicted them" in page.inner_text("#add-result")

        page.get_by_label("Why").fill("fixed by a later version")
        page.get_by_role("button", name="Close").click()
        page.get_by_text("fixed by a later version").wait_for()
    problem = team_store.problems.get("picked-by-hand")
    assert problem.status == "closed" and problem.negative == (1, 2)
    assert sorted(problem.positive) == sorted(int(p) for p in picked if p)
    audit = [e for e in team_store.audit.list() if e.target == "problem:picked-by-hand"]
    assert {e.action for e in audit} >= {"problems.create", "problems.add", "problems.close"}
    assert {e.actor for e in audit} == {"tester"}


def test_a_tester_adds_picked_patterns_and_a_file_to_a_problem(
    ui: str, team_store: trenches.Store
) -> None:
    client = signed_in(ui, "tester")
    inside = set(team_store.problems.get("rough-texture").patterns())
    fresh = [i for i in range(1, 100) if i not in inside][:2]
    added = client.post(
        "/problems/add", data={"problem": "rough-texture", "patterns": [str(i) for i in fresh]}
    )
    assert added.status_code == 200 and "Added 2 patterns" in added.text
    one = team_store.patterns.get(1)
    header = ",".join([*one.inputs, "diagnosis"])
    row = ",".join([*(str(v) for v in one.inputs.values()), "benign"])
    upload = client.post(
        "/problems/rough-texture/patterns",
        data={"polarity": "negative"},
        files={"file": ("more.csv", f"{header}\n{row}\n".encode(), "text/csv")},
    )
    assert upload.status_code == 200, upload.text
    assert "Added 1 pattern " in upload.text
    problem = team_store.problems.get("rough-texture")
    assert set(fresh) <= set(problem.positive) and len(problem.negative) == 1
    made = client.post(
        "/problems",
        data={"dataset": "cancer", "slug": "from-a-file", "title": "From a file"},
        files={"file": ("new.csv", f"{header}\n{row}\n".encode(), "text/csv")},
    )
    assert made.headers["hx-redirect"] == "/problems/from-a-file"
    assert len(team_store.problems.get("from-a-file").positive) == 1
    assert client.get("/problems/from-a-file/versions/cancer-clf@99").status_code == 404
    stranger = {"dataset": "cancer", "slug": "strangers", "title": "S", "patterns": ["99999"]}
    assert client.post("/problems", data=stranger).status_code == 422
    assert "strangers" not in {p.slug for p in team_store.problems.list()}
    bad = client.post(
        "/problems/rough-texture/patterns",
        files={"file": ("more.exe", b"MZ", "application/octet-stream")},
    )
    assert bad.status_code == 422
    assert client.post("/problems/add", data={"problem": "rough-texture"}).status_code == 422


def test_a_viewer_sees_no_edit_control_and_is_refused_a_change(ui: str) -> None:
    client = signed_in(ui, "viewer")
    board = client.get("/problems").text
    assert "Create the problem" not in board
    page = client.get("/problems/small-malignant").text
    assert "hx-post" not in page.replace('hx-post="/sign-out"', "")
    new = {"dataset": "cancer", "slug": "nope", "title": "Nope", "patterns": ["1"]}
    assert client.post("/problems", data=new).status_code == 403
    assert (
        client.post(
            "/problems/add", data={"problem": "small-malignant", "patterns": ["1"]}
        ).status_code
        == 403
    )
    assert (
        client.post("/problems/small-malignant/patterns", data={"patterns": "1"}).status_code == 403
    )
    assert client.post("/problems/small-malignant/close", data={"reason": "x"}).status_code == 403
    # A labeller may not either.
    labeller = signed_in(ui, "labeller")
    assert labeller.post("/problems", data=new).status_code == 403
