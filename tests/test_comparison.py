"""Comparing two predictors: flips, McNemar, and refusing different pattern sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import trenches
from trenches.comparison import mcnemar_exact
from trenches.patterns.sets import split


@pytest.fixture
def two_versions(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    for c in (0.0005, 1.0):
        store.models.register(
            LogisticRegression(C=c, max_iter=5000).fit(X, y),
            "clf",
            X=X.iloc[:200],
            dataset="cancer",
        )
    return ds


def test_flips_equal_a_direct_computation(
    store: trenches.Store, two_versions: trenches.Dataset
) -> None:
    ids = split(two_versions, "all").ids
    for ref in ("clf@1", "clf@2"):
        store.predict(ref, ids)
    result = store.compare("clf@1", "clf@2")
    frame = two_versions.patterns(ids=ids)
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    right_a = store.models.load("clf@1").predict(X) == y
    right_b = store.models.load("clf@2").predict(X) == y
    assert set(result.fixed) == set(frame.index[~right_a & right_b])
    assert set(result.broken) == set(frame.index[right_a & ~right_b])
    assert result.overall.size == len(ids)
    assert result.deltas["accuracy"] == pytest.approx(right_b.mean() - right_a.mean())


def test_mcnemar_exact_is_the_two_sided_binomial() -> None:
    for b, c in [(0, 0), (1, 0), (3, 9), (10, 10), (2, 15)]:
        n = b + c
        expected = 1.0 if n == 0 else min(1.0, 2 * binom.cdf(min(b, c), n, 0.5))
        assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_comparing_over_different_pattern_sets_is_refused(
    store: trenches.Store, two_versions: trenches.Dataset
) -> None:
    ids = split(two_versions, "validation").ids
    store.problems.create("p", dataset="cancer", title="P")
    store.problems.add("p", positive=ids[:6], backfill=False)
    store.predict("clf@1", ids[:6])
    store.predict("clf@2", ids[:3])
    with pytest.raises(trenches.InvalidInput, match="3 of the 6 patterns of problem:p"):
        store.compare("clf@1", "clf@2", problem="p")
    store.predict("clf@2", ids[:6])
    result = store.compare("clf@1", "clf@2", problem="p")
    assert result.overall.size == 6 and "p" in result.problems
    other = store.datasets.create("other", task="classification", label="target")
    other.add(load_breast_cancer(as_frame=True).frame.iloc[:50], source="expert")
    X = other.patterns().drop(columns="target")
    store.models.register(
        LogisticRegression(max_iter=5000).fit(X, other.patterns()["target"]),
        "o",
        X=X,
        dataset="other",
    )
    store.predict("o@1", other.pattern_info().index.to_numpy())
    with pytest.raises(trenches.InvalidInput, match="different patterns"):
        store.compare("clf@1", "o@1")
    assert np.isfinite(result.overall.p_value)


def test_compare_names_the_flips_that_were_relabelled_or_added_between_the_snapshots(
    store: trenches.Store,
) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from conftest import make_frame, run_cli

    ds = store.datasets.create("tumours", task="classification", label="label")
    frame = make_frame(300, seed=1).drop(columns="site")
    ds.add(frame, source="crowd", labelled_by="vendor", created_at="2026-01-01")

    def fit(snapshot: trenches.Snapshot) -> None:
        X, y, _, _ = snapshot.training_data("train")
        with store.run("knn", snapshot=snapshot, capture_code=False) as run:
            # One neighbour: each version answers its training labels back exactly.
            run.log_model(KNeighborsClassifier(n_neighbors=1).fit(X, y), "knn")

    fit(ds.snapshot())
    info = ds.pattern_info()
    chosen = info.index[info["split"] == "train"][:3].tolist()
    labels = ds.patterns(ids=chosen)["label"]
    new_ids = []
    for pid, label in labels.items():
        flipped = "benign" if label == "malignant" else "malignant"
        new = store.patterns.relabel(
            pid, flipped, source="expert", labelled_by="dr.b", reason="biopsy"
        )
        new_ids.append(new.id)
    more = ds.add(
        make_frame(5, seed=9).drop(columns="site"), source="production", labelled_by="clinic"
    )
    fit(ds.snapshot())
    store.problems.create("reviewed", dataset="tumours", title="Labels the expert reviewed")
    store.problems.add("reviewed", positive=new_ids)

    result = store.compare("knn@1", "knn@2", problem="reviewed")
    assert result.data is not None and len(result.data.relabelled) == 3
    assert len(result.data.added) == 5 and set(result.data.added.index) == set(
        range(more.first_id, more.last_id + 1)
    )
    flips = result.problems["reviewed"]
    # knn@1 answers the old labels, knn@2 the new ones: all three fixed, by the relabel.
    assert set(flips.fixed) == set(new_ids) and flips.broken == ()
    assert {c.pattern_id for c in flips.changes} == set(new_ids)
    assert all(c.kind == "relabelled" and c.labelled_by == "dr.b" for c in flips.changes)
    assert flips.change_note().startswith(
        "3 fixed, 3 of them relabelled by dr.b (expert) in imports"
    )
    assert "relabelled" in flips.changes[0].describe() and "biopsy" in flips.changes[0].describe()

    code, out, _ = run_cli(
        "--store", store.location.db_url, "compare", "knn@1", "knn@2", "--problem", "reviewed"
    )
    assert code == 0
    assert "3 relabelled" in out and "reviewed: 3 fixed, 3 of them relabelled by dr.b" in out
    code, out, _ = run_cli("--store", store.location.db_url, "compare", "knn@1", "knn@2", "--json")
    import json

    body = json.loads(out)
    assert body["data"]["summary"] and body["problems"]["reviewed"]["change_note"]
