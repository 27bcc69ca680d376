"""``store.reviews``: the labelling queue's decisions, and the production rows whose
feedback waits for one."""

from __future__ import annotations

from typing import Any

import pytest

import trenches
from test_requestlog import logged, versions  # noqa: F401 (fixtures)
from trenches.db.audit import Actor, acting_as
from trenches.errors import InvalidInput
from trenches.requests.reviews import pattern_subject, row_subject


def test_labelled_feedback_waits_disagreeing_first_until_reviewed(
    store: trenches.Store,
    logged: dict[str, Any],  # noqa: F811
) -> None:
    reviews = store.reviews
    assert reviews.count_waiting_rows() == 0
    store.requests.feedback("a", row=0, label="benign")  # agrees with the answer
    store.requests.feedback("b", row=1, label="benign")
    store.requests.feedback("b", row=1, label="malignant")  # the newest one counts
    store.requests.feedback("c", row=0, rating=0.5)  # no label: nothing to review
    assert reviews.count_waiting_rows() == 2

    waiting = reviews.waiting_rows()
    assert [(w.request_id, w.row, w.label, w.predicted) for w in waiting] == [
        ("b", 1, "malignant", "benign"),
        ("a", 0, "benign", "benign"),
    ]
    assert waiting[0].disagrees and not waiting[1].disagrees
    assert waiting[0].version == "clf@2"
    assert waiting[0].inputs == logged["rows"]["b"].iloc[1].to_dict()

    with acting_as(Actor("lab", 7)):
        kept = reviews.record(waiting[1].subject, "kept", label="benign", reason="looks right")
    assert (kept.subject, kept.decision, kept.reviewed_by) == ("request:a:0", "kept", "lab")
    assert reviews.count_waiting_rows() == 1
    assert [w.request_id for w in reviews.waiting_rows()] == ["b"]
    assert reviews.reviewed(["request:a:0", "request:b:1"]) == {"request:a:0"}
    assert [r.label for r in reviews.of("request:a:0")] == ["benign"]


def test_a_row_made_a_pattern_waits_no_more(
    store: trenches.Store,
    logged: dict[str, Any],  # noqa: F811
) -> None:
    store.requests.feedback("c", row=0, label="malignant")
    assert store.reviews.count_waiting_rows() == 1
    store.requests.to_patterns(["c"])
    assert store.reviews.count_waiting_rows() == 0
    assert store.reviews.waiting_rows() == []


def test_a_review_names_its_decision_and_subject(store: trenches.Store) -> None:
    assert row_subject("r1", 2) == "request:r1:2"
    assert pattern_subject(5) == "pattern:5"
    with pytest.raises(InvalidInput, match="decision 'maybe'"):
        store.reviews.record("pattern:5", "maybe")
    with pytest.raises(InvalidInput, match="subject"):
        store.reviews.record("row 5", "kept")
    sent = store.reviews.record("pattern:5", "sent", problem="p", pattern_id=5)
    assert (sent.problem, sent.pattern_id) == ("p", 5)
    assert store.reviews.reviewed(["pattern:5", "pattern:6"]) == {"pattern:5"}


def test_rows_of_the_log_come_with_their_answer_and_newest_label(
    store: trenches.Store,
    logged: dict[str, Any],  # noqa: F811
) -> None:
    store.requests.feedback("b", row=0, label="malignant")
    found = store.reviews.rows([("b", 0), ("c", 0), ("nope", 0)])
    assert [(w.request_id, w.row, w.label, w.predicted) for w in found] == [
        ("b", 0, "malignant", "benign"),
        ("c", 0, None, "benign"),
    ]
    assert found[1].feedback_id is None
    assert found[1].inputs == logged["rows"]["c"].iloc[0].to_dict()
    assert store.reviews.rows([]) == []
