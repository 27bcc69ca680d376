"""Comparing two predictors: flips, McNemar, and refusing different pattern sets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import trenches
from trenches.comparison import compare, mcnemar_exact
from trenches.evaluation import split_set
from trenches.predict import predict


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
    _, ids = split_set(two_versions, "all")
    for ref in ("clf@1", "clf@2"):
        predict(store, ref, ids)
    result = compare(store, "clf@1", "clf@2")
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
    _, ids = split_set(two_versions, "validation")
    store.problems.create("p", dataset="cancer", title="P")
    store.problems.add("p", positive=ids[:6], backfill=False)
    predict(store, "clf@1", ids[:6])
    predict(store, "clf@2", ids[:3])
    with pytest.raises(trenches.InvalidInput, match="3 of the 6 patterns of problem:p"):
        compare(store, "clf@1", "clf@2", problem="p")
    predict(store, "clf@2", ids[:6])
    result = compare(store, "clf@1", "clf@2", problem="p")
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
    predict(store, "o@1", other.pattern_info().index.to_numpy())
    with pytest.raises(trenches.InvalidInput, match="different patterns"):
        compare(store, "clf@1", "o@1")
    assert np.isfinite(result.overall.p_value)
