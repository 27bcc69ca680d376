"""Patterns a page at a time (``store.patterns.find``): filters, keyset paging that
walks every match once, and a count that stops at its bound."""

from __future__ import annotations

import pandas as pd
import pytest

import trenches
from trenches import PatternQuery
from trenches.errors import InvalidInput

from conftest import make_frame


def test_pages_walk_every_match_once_in_id_order(
    store: trenches.Store, dataset: trenches.Dataset, frame: pd.DataFrame
) -> None:
    query = PatternQuery(datasets=["tumours"], label="malignant")
    seen: list[int] = []
    after = 0
    while True:
        page = store.patterns.find(query, after=after, limit=7)
        seen += [p.id for p in page.patterns]
        assert all(p.label == "malignant" and p.dataset == "tumours" for p in page.patterns)
        if page.next_after is None:
            break
        after = page.next_after
    expected = (frame.index[frame["label"] == "malignant"] + 1).tolist()
    assert seen == expected
    assert store.patterns.count(query) == (len(expected), False)
    assert store.patterns.count(query, at_most=5) == (5, True)


def test_filters_by_provenance_time_problem_and_ids(
    store: trenches.Store, dataset: trenches.Dataset
) -> None:
    dataset.add(make_frame(5, seed=1), source="production", created_at="2026-02-01")
    first = store.patterns.find(PatternQuery(source="production")).patterns
    assert [p.id for p in first] == [201, 202, 203, 204, 205]
    assert first[0].inputs.keys() == {"radius", "texture", "grade", "site"}
    assert first[0].labelled_by is None
    by_expert = PatternQuery(labelled_by="dr.a", until="2026-01-15")
    assert store.patterns.count(by_expert) == (200, False)
    assert store.patterns.count(PatternQuery(since="2026-01-15")) == (5, False)
    assert store.patterns.count(PatternQuery(datasets=[])) == (0, False)
    store.problems.create("p", dataset="tumours", title="P")
    store.problems.add("p", positive=[3, 150], negative=[9], backfill=False)
    in_problem = store.patterns.find(PatternQuery(problem="p"))
    assert [p.id for p in in_problem.patterns] == [3, 9, 150]
    some = store.patterns.find(PatternQuery(within=[150, 9, 3, 202]), after=3, limit=2)
    assert [p.id for p in some.patterns] == [9, 150] and some.next_after == 150
    site = str(first[0].inputs["site"])
    assert all(
        site in p.inputs["site"] for p in store.patterns.find(PatternQuery(search=site)).patterns
    )
    store.patterns.deactivate([4], reason="dup")
    assert store.patterns.count(PatternQuery(active=False)) == (1, False)
    with pytest.raises(InvalidInput, match="split"):
        store.patterns.find(PatternQuery(split="nope"))
    with pytest.raises(InvalidInput, match="page holds"):
        store.patterns.find(limit=0)
