"""The problem database: problems, patterns, backfill and scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import func, select

import trenches
from trenches.db import schema as t
from trenches.errors import Conflict, InvalidInput, NotFound


@pytest.fixture
def three_versions(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    for c in (0.001, 0.01, 1.0):
        with store.run(f"c={c}", snapshot=snap, capture_code=False) as run:
            # Scaled, so lbfgs converges in a few iterations (unscaled it ran to 5,000).
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c))
            run.log_model(model.fit(X, y), "clf")
    return ds


def _prediction_count(store: trenches.Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(select(func.coalesce(func.sum(t.prediction_blocks.c.n), 0))).scalar_one()
        )


def test_a_new_problem_is_backfilled_over_every_version_once(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    from trenches.evaluation import split_set
    from trenches.predict import predict

    _, validation = split_set(three_versions, "validation")
    for v in (1, 2, 3):
        predict(store, f"clf@{v}", validation)
    before = _prediction_count(store)
    _, train = split_set(three_versions, "train")
    store.problems.create("hard", dataset="cancer", title="Hard cases")
    result = store.problems.add("hard", positive=train[:8], negative=train[8:12])
    assert (result.added, result.predicted, result.versions) == (12, 36, 3)
    assert _prediction_count(store) == before + 36
    # Patterns the versions predicted already are not predicted again.
    store.problems.create("known", dataset="cancer", title="Validation cases")
    again = store.problems.add("known", positive=validation[:5])
    assert again.predicted == 0 and _prediction_count(store) == before + 36


def test_scores_are_shares_of_positive_and_negative_patterns_right(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    frame = three_versions.patterns()
    ids = frame.index.to_numpy()
    pos, neg = ids[:10], ids[10:15]
    store.problems.create("p", dataset="cancer", title="Some patterns")
    store.problems.add("p", positive=pos, negative=neg)
    scores = store.problems.scores("p")
    assert [s.predictor for s in scores] == ["clf@1", "clf@2", "clf@3"]
    for s in scores:
        model = store.models.load(s.predictor)
        right = model.predict(frame.drop(columns="target")) == frame["target"].to_numpy()
        assert s.positive_right == int(right[:10].sum()) and s.positive_total == 10
        assert s.negative_right == int(right[10:15].sum()) and s.negative_total == 5
        assert s.score == pytest.approx(right[:15].mean())


def test_no_backfill_defers_to_backfill(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    ids = three_versions.pattern_info().index.to_numpy()
    store.problems.create("later", dataset="cancer", title="Later")
    result = store.problems.add("later", positive=ids[:4], backfill=False)
    assert result.predicted == 0
    assert all(s.missing == 4 for s in store.problems.scores("later"))
    done = store.problems.backfill()
    assert (done.computed, done.versions, done.skipped) == (12, 3, ())
    again = store.problems.backfill()
    assert (again.computed, again.versions) == (0, 3)
    assert all(s.missing == 0 for s in store.problems.scores("later"))


def test_bad_additions_are_refused_whole(
    store: trenches.Store, three_versions: trenches.Dataset
) -> None:
    store.problems.create("x", dataset="cancer", title="X")
    with pytest.raises(InvalidInput, match="both positive and negative"):
        store.problems.add("x", positive=[1, 2], negative=[2])
    with pytest.raises(NotFound, match="no pattern 99999"):
        store.problems.add("x", positive=[1, 99999])
    assert store.problems.get("x").patterns() == ()
    store.problems.add("x", positive=[1], backfill=False)
    with pytest.raises(Conflict, match="positive pattern"):
        store.problems.add("x", negative=[1], backfill=False)
    with pytest.raises(Conflict, match="exists"):
        store.problems.create("x", dataset="cancer", title="again")
    with pytest.raises(InvalidInput, match="slug"):
        store.problems.create("Bad Slug", dataset="cancer", title="t")


def test_closing_keeps_the_problem(store: trenches.Store, three_versions: trenches.Dataset) -> None:
    store.problems.create("done", dataset="cancer", title="Done", severity="high")
    store.problems.add("done", positive=[1, 2], backfill=False)
    closed = store.problems.close("done", reason="fixed in clf@3")
    assert closed.status == "closed" and closed.close_reason == "fixed in clf@3"
    assert closed.positive == (1, 2)
    assert [p.slug for p in store.problems.list(status="open")] == []
    with pytest.raises(Conflict, match="closed already"):
        store.problems.close("done", reason="again")
    assert store.problems.scores("done")[0].missing == 2


def test_a_tester_adds_new_inputs_from_a_file(
    store: trenches.Store, three_versions: trenches.Dataset, tmp_path: Path
) -> None:
    frame = three_versions.patterns().iloc[:5].copy()
    frame["polarity"] = ["positive", "positive", "positive", "negative", "negative"]
    path = tmp_path / "new-cases.csv"
    frame.to_csv(path, index=False)
    store.problems.create("edge", dataset="cancer", title="Edge cases")
    result = store.problems.add_from_file("edge", path, source="production")
    assert (result.added, result.predicted, result.versions) == (5, 15, 3)
    problem = store.problems.get("edge")
    assert len(problem.positive) == 3 and len(problem.negative) == 2
    info = three_versions.pattern_info()
    assert set(info.loc[list(problem.patterns()), "source"]) == {"production"}


def test_a_bad_polarity_in_the_file_stores_nothing(
    store: trenches.Store, three_versions: trenches.Dataset, tmp_path: Path
) -> None:
    frame = three_versions.patterns().iloc[:2].copy()
    frame["polarity"] = ["positive", "sideways"]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    store.problems.create("edge", dataset="cancer", title="Edge cases")
    before = len(three_versions.pattern_info())
    with pytest.raises(InvalidInput, match="sideways") as err:
        store.problems.add_from_file("edge", path)
    assert (err.value.row, err.value.field) == (2, "polarity")
    assert len(three_versions.pattern_info()) == before
