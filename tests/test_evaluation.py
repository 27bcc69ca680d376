"""Batch prediction into the store, and metrics from stored predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import trenches
from trenches import predictions
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.evaluation import binary_auc, classification_metrics
from trenches.patterns import feeds
from trenches.patterns.sets import PatternSet, split
from trenches.tables import catalog

from conftest import make_frame


@pytest.fixture
def model_ref(store: trenches.Store) -> str:
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        version = run.log_model(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y), "clf"
        )
    return version.ref


def test_prediction_is_incremental_and_stored_once(store: trenches.Store, model_ref: str) -> None:
    ds = store.datasets.get("cancer")
    validation = split(ds, "validation").ids
    test = split(ds, "test").ids
    first = store.predict(model_ref, validation)
    assert first.computed == len(validation)
    again = store.predict(model_ref, validation)
    assert again.computed == 0 and again.already == len(validation)
    both = store.predict(model_ref, np.concatenate([validation, test]))
    assert both.computed == len(test)


def test_stored_predictions_are_the_models(store: trenches.Store, model_ref: str) -> None:
    ds = store.datasets.get("cancer")
    ids = split(ds, "all").ids
    result = store.predict(model_ref, ids)
    with read(store.engine) as conn:
        stored = predictions.read(conn, result.predictor_id)
    frame = ds.patterns(ids=ids)
    model = store.models.load(model_ref)
    X = frame.drop(columns="target")
    assert list(stored.pattern_ids) == list(frame.index)
    assert np.array_equal(stored.labels.astype(int), model.predict(X))  # type: ignore[union-attr]
    assert np.abs(stored.scores - model.predict_proba(X)).max() <= 1e-5  # type: ignore[operator]
    assert np.array_equal(stored.correct, model.predict(X) == frame["target"].to_numpy())


@pytest.mark.parametrize("kind", ["numbers", "mixed"])
def test_predictions_read_a_few_row_groups_at_a_time_are_the_models(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A version predicts patterns of every split, and deactivated ones, from their
    table's rows read a few small row groups at a time: numbers into one matrix, or
    every kind of column as a frame (a pipeline that one-hot encodes a text column,
    whose ONNX form takes one input a column), through ONNX Runtime."""
    monkeypatch.setitem(catalog.PROPERTIES, "write.parquet.row-group-limit", "16")
    monkeypatch.setattr(feeds, "READ_ROWS", 40)
    columns = ["texture", "radius", "label"] if kind == "numbers" else None
    ds = store.datasets.create(kind, task="classification", label="label")
    for seed, n in ((3, 300), (4, 120)):
        ds.add(make_frame(n, seed=seed)[columns or slice(None)], source=f"s{seed}")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    every = ds.pattern_ids()
    store.patterns.deactivate(every[::9].tolist(), reason="blurred")
    encode = (
        StandardScaler()
        if kind == "numbers"
        else ColumnTransformer(
            [
                ("n", StandardScaler(), ["radius", "texture", "grade"]),
                ("site", OneHotEncoder(), ["site"]),
            ]
        )
    )
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        version = run.log_model(
            make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(X, y), "clf"
        )
    assert "onnx" in version.formats, version.onnx_error
    done = store.predict(version.ref, every)
    assert done.computed == len(every)
    with read(store.engine) as conn:
        stored = predictions.read(conn, done.predictor_id)
    frame = ds.patterns(ids=every.tolist(), include_inactive=True)
    model: Any = store.models.load(version.ref, format="native")
    inputs = frame[list(version.signature.columns)]
    assert np.array_equal(stored.pattern_ids, every)
    assert list(stored.labels) == list(model.predict(inputs))
    assert np.allclose(stored.scores, model.predict_proba(inputs), atol=1e-5)
    assert np.array_equal(stored.correct, model.predict(inputs) == frame["label"].to_numpy())


def test_predicting_a_pattern_of_no_dataset_names_it_and_stores_none_of_its_batch(
    store: trenches.Store, model_ref: str
) -> None:
    ids = split(store.datasets.get("cancer"), "validation").ids
    stranger = int(ids.max()) + 10_000
    with pytest.raises(InvalidInput, match=f"not in dataset 'cancer' \\(pattern {stranger}"):
        store.predict(model_ref, [*ids.tolist(), stranger])
    assert store.predict(model_ref, ids).computed == len(ids)


def test_an_interrupted_evaluation_resumes_to_the_same_predictions(
    store: trenches.Store, model_ref: str
) -> None:
    ds = store.datasets.get("cancer")
    ids = split(ds, "all").ids
    done = []

    def stop_after_two_chunks(n: int) -> None:
        done.append(n)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.predict(model_ref, ids, batch_size=100, progress=stop_after_two_chunks)
    resumed = store.predict(model_ref, ids, batch_size=100)
    assert resumed.computed == len(ids) - 200
    with read(store.engine) as conn:
        stored = predictions.read(conn, resumed.predictor_id)
    model = store.models.load(model_ref)
    frame = ds.patterns(ids=ids)
    assert np.array_equal(stored.labels.astype(int), model.predict(frame.drop(columns="target")))  # type: ignore[union-attr]


def test_metrics_need_every_pattern_of_the_set(store: trenches.Store, model_ref: str) -> None:
    ds = store.datasets.get("cancer")
    chosen = split(ds, "validation")
    name, ids = chosen.name, chosen.ids
    store.predict(model_ref, ids[:10])
    with pytest.raises(trenches.InvalidInput, match=f"10 of the {len(ids)} patterns"):
        store.evaluate(model_ref, PatternSet(name, ids), predict=False)
    store.predict(model_ref, ids)
    result = store.evaluate(model_ref, PatternSet(name, ids), predict=False).evaluation
    assert result.pattern_set == "cancer:validation" and result.size == len(ids)


def test_a_split_is_measured_on_its_active_patterns_and_their_labels(
    store: trenches.Store, model_ref: str
) -> None:
    # The split's ids and labels come from one read of the dataset's table; a pattern
    # deactivated or relabelled since must drop out of both, or the two fall out of step.
    ds = store.datasets.get("cancer")
    validation = split(ds, "validation").ids
    store.patterns.deactivate(validation[::7].tolist(), reason="blurred")
    relabelled = int(validation[3])
    old = int(ds.patterns(ids=[relabelled])["target"].iloc[0])
    store.patterns.relabel(relabelled, 1 - old, source="expert", reason="biopsy")
    result = store.evaluate(model_ref, "validation", with_problems=False).evaluation
    frame = ds.patterns(split="validation")
    assert result.size == len(frame) and relabelled not in frame.index
    info = ds.pattern_info()
    (replacement,) = info.index[info["replaces_id"] == relabelled]
    assert frame.loc[replacement, "target"] == 1 - old
    model = store.models.load(model_ref)
    X, y = frame.drop(columns="target"), frame["target"].to_numpy()
    m = result.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, model.predict(X)))
    probs = model.predict_proba(X)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, probs), rel=1e-5)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]), rel=1e-6)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0.01, 0.98), st.floats(0.01, 0.98)),
        min_size=8,
        max_size=40,
    )
)
def test_classification_metrics_equal_scikit_learns(
    sqlite_store: trenches.Store, data: list[tuple[str, float, float]]
) -> None:
    store = sqlite_store
    name = f"d{abs(hash(tuple(data))) % 10**9}"
    ds = store.datasets.create(name, task="classification", label="y")
    truth = [row[0] for row in data]
    ds.add(pd.DataFrame({"x": np.arange(len(data), dtype=float), "y": truth}), source="expert")
    raw = np.array([[p, q, 1.0] for _, p, q in data])
    probs = raw / raw.sum(axis=1, keepdims=True)
    classes = ["a", "b", "c"]
    predicted = [classes[i] for i in probs.argmax(axis=1)]
    ids = ds.pattern_info().index.to_numpy()
    frame = pd.DataFrame({"pattern_id": ids, "prediction": predicted})
    for j, c in enumerate(classes):
        frame[f"proba_{c}"] = probs[:, j]
    store.baselines.add(f"b-{name}", dataset=name, predictions=frame)
    result = store.evaluate(f"b-{name}", PatternSet("all", ids), predict=False).evaluation
    m = result.metrics
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert m["f1_macro"] == pytest.approx(
        skm.f1_score(truth, predicted, average="macro", labels=classes, zero_division=0)
    )
    assert m["log_loss"] == pytest.approx(skm.log_loss(truth, probs, labels=classes))
    if len(set(truth)) == 3:
        assert m["roc_auc"] == pytest.approx(
            skm.roc_auc_score(truth, probs, multi_class="ovr", labels=classes)
        )
    assert (
        result.confusion.to_numpy() == skm.confusion_matrix(truth, predicted, labels=classes)
    ).all()  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "unknown"]), st.sampled_from(["a", "b", "c"])),
        min_size=1,
        max_size=60,
    ),
    as_categories=st.booleans(),
)
def test_figures_from_the_confusion_matrix_equal_scikit_learns(
    pairs: list[tuple[str, str]], as_categories: bool
) -> None:
    """Every figure is worked out from one confusion matrix; each equals scikit-learn's
    own, including for a true class the model does not know and classes never seen,
    whether the labels come as text or as categoricals."""
    truth = [t for t, _ in pairs]
    said = [p for _, p in pairs]
    classes = ["a", "b", "c"]
    given_truth: Any = pd.Categorical(truth) if as_categories else np.array(truth, dtype=object)
    given_said: Any = pd.Categorical(said) if as_categories else np.array(said, dtype=object)
    values, per_class, confusion = classification_metrics(given_truth, given_said, classes)
    every = sorted(set(classes) | set(truth))
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(truth, said), abs=1e-12)
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            truth, said, labels=every, average=average, zero_division=0
        )
        assert values[f"precision_{average}"] == pytest.approx(p, abs=1e-12)
        assert values[f"recall_{average}"] == pytest.approx(r, abs=1e-12)
        assert values[f"f1_{average}"] == pytest.approx(f, abs=1e-12)
    p, r, f, support = skm.precision_recall_fscore_support(
        truth, said, labels=every, average=None, zero_division=0
    )
    assert per_class.index.tolist() == every
    assert np.allclose(per_class["f1"], f) and (per_class["support"].to_numpy() == support).all()
    assert (confusion.to_numpy() == skm.confusion_matrix(truth, said, labels=every)).all()


@settings(max_examples=100, deadline=None)
@given(
    scored=st.lists(
        st.tuples(
            st.booleans(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]) | st.floats(0, 1)
        ),
        min_size=2,
        max_size=80,
    ).filter(lambda xs: len({y for y, _ in xs}) == 2)
)
def test_the_binary_roc_auc_is_scikit_learns(scored: list[tuple[bool, float]]) -> None:
    """The two-class ROC AUC, from the two sides' sorted scores, equals scikit-learn's,
    ties between a positive and a negative included."""
    y = np.array([p for p, _ in scored])
    s = np.array([v for _, v in scored])
    assert binary_auc(s[y], s[~y]) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_regression_metrics_equal_scikit_learns(store: trenches.Store) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    guess = y + rng.normal(scale=0.3, size=50)
    ds = store.datasets.create("r", task="regression", label="y")
    ds.add(pd.DataFrame({"x": np.arange(50.0), "y": y}), source="expert")
    ids = ds.pattern_info().index.to_numpy()
    store.baselines.add(
        "guess", dataset="r", predictions=pd.DataFrame({"pattern_id": ids, "prediction": guess})
    )
    m = store.evaluate("guess", PatternSet("r:all", ids), predict=False).evaluation.metrics
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, guess))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, guess)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, guess))


def test_a_kept_small_read_is_given_again_only_for_the_same_files(tmp_path: Path) -> None:
    """Reads of a few patterns are kept across the versions of a backfill; two stores
    with the same dataset id and pattern ids (a store made again in place, say) each
    read their own rows, and a second read of the same store is the kept one."""
    got = []
    for k in (1, 2):
        store = trenches.open(tmp_path / f"s{k}")
        ds = store.datasets.create("d", task="classification", label="label")
        frame = make_frame(50, seed=0)[["radius", "texture", "label"]]
        ds.add(frame.assign(radius=frame["radius"] * k), source="s")
        ids = ds.pattern_ids()  # the same ids in both, each store's rows
        first = list(feeds.feeds(ds, ids, ["radius", "texture"]))
        again = list(feeds.feeds(ds, ids, ["radius", "texture"]))
        assert [a is b for a, b in zip(first, again, strict=True)] == [True] * len(first)
        got.append(np.sort(np.concatenate([f.inputs["radius"].to_numpy() for f in first])))
        store.close()
    assert np.allclose(got[1], 2 * got[0]) and not np.allclose(got[0], got[1])
