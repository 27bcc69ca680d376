"""Patterns a page at a time (``store.patterns.find``): filters, keyset paging that
walks every match once, and a count that stops at its bound."""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import trenches
from trenches import PatternQuery, timestamps
from trenches.db import schema as t
from trenches.db.engine import read
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


# --- a columnar dataset beside one of an earlier release ------------------------------

#: Texts to look for: letters of either case, JSON's and LIKE's special characters,
#: letters beyond A-Z (not folded), and parts of ``null`` (a missing input).
_NEEDLES = (
    *("left", "LEFT", "eft s", "Right", "centre", "mal", "BEN"),
    *('"', 'say "', "\\", "k\\s", "%", "50%_", "_", ",", "[", '","'),
    *("null", "ul", "ü", "Ü", "ünï", "x"),
)


def _notes(n: int, seed: int) -> pd.DataFrame:
    """Patterns with two string inputs, one of them often missing and full of the
    characters a search must take literally."""
    rng = np.random.default_rng(seed)
    words = ["Left side", "RIGHT", "centre", 'say "hi"', "back\\slash", "50%_off", "Ünïcode"]
    note = rng.choice(np.array([*words, "null", "ünïcode"], dtype=object), n)
    note[rng.random(n) < 0.2] = None
    return pd.DataFrame(
        {
            "radius": rng.normal(10, 2, n),
            "site": rng.choice(["left", "right", "Centre"], n),
            "note": note,
            "label": rng.choice(["benign", "malignant"], n),
        }
    )


def _two_kinds(store: trenches.Store) -> tuple[pd.DataFrame, dict[str, set[int]]]:
    """A columnar dataset and one of an earlier release, their ids interleaved, with
    relabels, deactivations and problems; the facts of every pattern (read one by one,
    not listed) and each problem's ids."""
    new = store.datasets.create("notes", task="classification", label="label")
    store.datasets.create("old", task="classification", label="label")
    with store.engine.begin() as conn:
        conn.execute(t.datasets.update().where(t.datasets.c.name == "old").values(columnar=False))
    old = store.datasets.get("old")
    assert new.columnar and not old.columnar
    new.add(_notes(30, 1), source="expert", labelled_by="dr.a", created_at="2026-01-01")
    old.add(_notes(20, 2), source="expert", labelled_by="dr.b", created_at="2026-01-10")
    new.add(_notes(25, 3), source="crowd", created_at="2026-02-01")
    old.add(_notes(15, 4), source="crowd", labelled_by="dr.a", created_at="2026-02-10")
    for pid in (3, 35, 60, 80):
        was = store.patterns.get(pid).label
        other = "benign" if was == "malignant" else "malignant"
        store.patterns.relabel(pid, other, source="review", reason="seen", labelled_by="dr.c")
    store.patterns.deactivate([5, 40, 70, 88], reason="dup")
    store.problems.create("p", dataset="notes", title="P")
    store.problems.add("p", positive=[2, 7, 58], negative=[9, 3], backfill=False)
    store.problems.create("q", dataset="old", title="Q")
    store.problems.add("q", positive=[31, 33, 89], backfill=False)
    last = store.patterns.find(PatternQuery(source="review"), limit=10).patterns[-1].id
    facts = pd.DataFrame(
        [
            {
                "id": p.id,
                "dataset": p.dataset,
                "split": p.split,
                "source": p.source,
                "labelled_by": p.labelled_by,
                "label": p.label,
                "created_at": timestamps.to_us(p.created_at),
                "active": p.deactivated_at is None,
                "texts": [v for v in (p.inputs["site"], p.inputs["note"]) if isinstance(v, str)],
            }
            for p in (store.patterns.get(i) for i in range(1, last + 1))
        ]
    )
    return facts, {"p": {2, 3, 7, 9, 58}, "q": {31, 33, 89}}


def _expected(query: PatternQuery, facts: pd.DataFrame, problems: dict[str, set[int]]) -> list[int]:
    """The ids ``query`` selects, worked out from the facts with pandas."""
    keep = pd.Series(True, index=facts.index)
    for field in ("split", "source", "labelled_by", "label", "active"):
        value = getattr(query, field)
        if value is not None:
            keep &= facts[field] == value
    if query.datasets is not None:
        keep &= facts["dataset"].isin(list(query.datasets))
    if query.since is not None:
        keep &= facts["created_at"] >= timestamps.parse(query.since)
    if query.until is not None:
        keep &= facts["created_at"] < timestamps.parse(query.until)
    if query.problem is not None:
        keep &= facts["id"].isin(problems.get(query.problem, set()))
    if query.within is not None:
        keep &= facts["id"].isin(list(query.within))
    if query.search:
        fold = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
        needle = query.search.translate(fold)
        keep &= facts.apply(
            lambda r: any(needle in v.translate(fold) for v in [r["label"], *r["texts"]]), axis=1
        )
    return facts["id"][keep].tolist()


def _walk(store: trenches.Store, query: PatternQuery, limit: int) -> list[trenches.Pattern]:
    """Every pattern ``query`` selects, a page of ``limit`` at a time."""
    found: list[trenches.Pattern] = []
    after = 0
    while True:
        page = store.patterns.find(query, after=after, limit=limit)
        assert len(page.patterns) <= limit
        found += page.patterns
        if page.next_after is None:
            return found
        assert len(page.patterns) == limit and page.next_after == page.patterns[-1].id
        after = page.next_after


def _forget_rows(store: trenches.Store, dataset: str) -> None:
    """Delete a dataset's rows of ``patterns`` (the changes, problems and the like that
    still point at them keep their ids: their foreign keys are set aside)."""
    dataset_id = store.datasets.get(dataset).id
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        sqlite = store.engine.dialect.name == "sqlite"
        cur.execute("PRAGMA foreign_keys=OFF" if sqlite else "SET session_replication_role=replica")
        cur.execute(f"DELETE FROM patterns WHERE dataset_id = {int(dataset_id)}")
        raw.commit()
        cur.execute("PRAGMA foreign_keys=ON" if sqlite else "SET session_replication_role=origin")
        raw.commit()
    finally:
        raw.close()
    with read(store.engine) as conn:
        p = t.patterns.c
        left = conn.execute(select(func.count()).where(p.dataset_id == dataset_id)).scalar_one()
    assert left == 0


_QUERIES = (
    PatternQuery(),
    PatternQuery(datasets=["notes"]),
    PatternQuery(datasets=["notes"], split="train", label="benign"),
    PatternQuery(source="crowd", active=True),
    PatternQuery(labelled_by="dr.a"),
    PatternQuery(labelled_by="dr.c", datasets=["notes"]),
    PatternQuery(since="2026-01-05", until="2026-02-05"),
    PatternQuery(problem="p"),
    PatternQuery(problem="q", active=True),
    PatternQuery(active=False),
    PatternQuery(search="LEFT"),
    PatternQuery(search='"'),
    PatternQuery(search="null"),
    PatternQuery(search="50%_", datasets=["notes", "old"]),
    PatternQuery(within=[90, 1, 58, 3, 40, 2**70, -1], active=True),
)


def test_a_columnar_dataset_lists_the_same_without_its_database_rows(
    store: trenches.Store,
) -> None:
    facts, problems = _two_kinds(store)
    before = []
    for k, query in enumerate(_QUERIES):
        listed = _walk(store, query, limit=k % 4 + 2)
        assert [p.id for p in listed] == _expected(query, facts, problems), query
        before.append((listed, store.patterns.count(query), store.patterns.count(query, at_most=3)))
    _forget_rows(store, "notes")
    after = [
        (
            _walk(store, query, limit=k % 4 + 2),
            store.patterns.count(query),
            store.patterns.count(query, at_most=3),
        )
        for k, query in enumerate(_QUERIES)
    ]
    assert after == before
    assert any(p.dataset == "notes" and p.deactivated_at for p in after[-6][0])
    assert {p.dataset for p in after[0][0]} == {"notes", "old"}


_QUERY = st.builds(
    PatternQuery,
    datasets=st.sampled_from([None, ("notes",), ("old",), ("notes", "old"), (), ("nope",)]),
    split=st.sampled_from([None, "train", "validation", "test"]),
    source=st.sampled_from([None, "expert", "crowd", "review", "other"]),
    labelled_by=st.sampled_from([None, "dr.a", "dr.b", "dr.c", "nobody"]),
    label=st.sampled_from([None, "benign", "malignant", "x"]),
    since=st.sampled_from([None, "2026-01-05", "2026-02-01"]),
    until=st.sampled_from([None, "2026-01-20", "2026-02-05", "2100-01-01"]),
    problem=st.sampled_from([None, "p", "q", "nope"]),
    active=st.sampled_from([None, True, False]),
    search=st.sampled_from([None, "", *_NEEDLES]),
    within=st.one_of(st.none(), st.lists(st.integers(-3, 110), max_size=30)),
)


def test_every_filter_lists_what_a_plain_filter_of_the_facts_selects(
    store: trenches.Store,
) -> None:
    facts, problems = _two_kinds(store)
    _forget_rows(store, "notes")

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(query=_QUERY, limit=st.integers(2, 12), at_most=st.integers(1, 40))
    def check(query: PatternQuery, limit: int, at_most: int) -> None:
        expected = _expected(query, facts, problems)
        assert [p.id for p in _walk(store, query, limit)] == expected
        n = len(expected)
        assert store.patterns.count(query, at_most=at_most) == (min(n, at_most), n > at_most)

    check()
