"""Explanations with LIME: what they rank first, reproducibility, storage, the CLI."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

import trenches
from trenches.cli import main

SAMPLES = 1000


def _frame(n: int, seed: int) -> pd.DataFrame:
    """radius decides the label; texture, grade (integer) and site (string) do not."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "radius": rng.normal(10, 2, n),
            "texture": rng.normal(20, 4, n),
            "grade": rng.integers(1, 4, n),
            "site": rng.choice(["left", "right", "centre"], n),
        }
    )
    frame["label"] = np.where(frame["radius"] > 10, "malignant", "benign")
    return frame


def _fit(
    store: trenches.Store,
    dataset: str,
    make: Callable[[pd.DataFrame, np.ndarray], Any],
    name: str = "clf",
) -> str:
    snap = store.datasets.get(dataset).snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        return run.log_model(make(X, y), name).ref


@pytest.fixture
def tumours(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(_frame(300, seed=0), source="expert", created_at="2026-01-01")
    return ds


@pytest.fixture
def stump_ref(store: trenches.Store, tumours: trenches.Dataset) -> str:
    """A depth-1 tree on the numeric inputs: it splits on radius and on nothing else."""
    ds = store.datasets.create("numeric", task="classification", label="label")
    ds.add(_frame(300, seed=1).drop(columns="site"), source="expert", created_at="2026-01-01")

    def make(X: pd.DataFrame, y: np.ndarray) -> Any:
        tree = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
        assert tree.tree_.feature[0] == list(X.columns).index("radius")
        return tree

    return _fit(store, "numeric", make, name="stump")


@pytest.fixture
def radius_only_ref(store: trenches.Store, tumours: trenches.Dataset) -> str:
    """A pipeline that drops every input but radius, on a frame with a string column."""
    return _fit(
        store,
        "tumours",
        lambda X, y: make_pipeline(
            ColumnTransformer([("radius", "passthrough", ["radius"])]), LogisticRegression()
        ).fit(X, y),
    )


def _ids(store: trenches.Store, dataset: str, n: int) -> list[int]:
    return [int(i) for i in store.datasets.get(dataset).pattern_info().index[:n]]


def _rows(store: trenches.Store) -> int:
    return len(store.explanations.list())


# --- what LIME ranks ------------------------------------------------------------


def test_a_model_that_uses_one_feature_has_it_ranked_first(
    store: trenches.Store, stump_ref: str
) -> None:
    version = store.models.get(stump_ref)
    assert "onnx" in version.formats  # explained through its ONNX form
    found = store.explanations.explain(stump_ref, _ids(store, "numeric", 5), num_samples=SAMPLES)
    assert len(found) == 5
    for e in found:
        assert e.method == "lime-tabular" and e.label in ("benign", "malignant")
        assert e.weights[0][0] == "radius"
        assert abs(e.weights[0][2]) > 5 * max(abs(w) for _, _, w in e.weights[1:])
        assert e.toward()[0][0] == "radius"  # radius's bin pushes toward the prediction
        assert e.probability is not None and e.probability >= 0.5
        assert e.prediction == e.label


def test_a_pipeline_that_keeps_one_column_has_it_ranked_first(
    store: trenches.Store, radius_only_ref: str
) -> None:
    found = store.explanations.explain(
        radius_only_ref, _ids(store, "tumours", 4), num_samples=SAMPLES
    )
    for e in found:
        assert e.weights[0][0] == "radius"
        assert "radius" in e.weights[0][1]  # the condition, e.g. "8.70 < radius <= 9.96"


def test_a_categorical_string_column_is_encoded_and_decoded(store: trenches.Store) -> None:
    ds = store.datasets.create("sites", task="classification", label="label")
    frame = _frame(300, seed=2)
    frame["label"] = np.where(frame["site"] == "left", "malignant", "benign")
    ds.add(frame, source="expert")
    ref = _fit(
        store,
        "sites",
        # handle_unknown="error": a badly decoded sample would make it raise.
        lambda X, y: make_pipeline(
            ColumnTransformer([("site", OneHotEncoder(handle_unknown="error"), ["site"])]),
            LogisticRegression(),
        ).fit(X, y),
    )
    patterns = ds.patterns()
    ids = [int(i) for i in patterns.index[:3]]
    for e in store.explanations.explain(ref, ids, num_samples=SAMPLES):
        site = patterns.loc[e.pattern_id, "site"]
        assert e.weights[0][:2] == ("site", f"site={site}")


def test_a_regression_model_is_explained(store: trenches.Store) -> None:
    ds = store.datasets.create("sizes", task="regression", label="size")
    frame = _frame(300, seed=3).drop(columns=["label", "site"])
    frame["size"] = 3 * frame["radius"] + np.random.default_rng(0).normal(0, 0.1, len(frame))
    ds.add(frame, source="expert")
    ref = _fit(store, "sizes", lambda X, y: LinearRegression().fit(X, y))
    patterns = ds.patterns()
    big = int(patterns["radius"].idxmax())
    (e,) = store.explanations.explain(ref, [big], num_samples=SAMPLES)
    assert e.label is None and e.probability is None
    assert isinstance(e.prediction, float)
    assert e.prediction == pytest.approx(3 * patterns.loc[big, "radius"], abs=1)
    assert e.weights[0][0] == "radius" and e.weights[0][2] > 0  # the largest radius: up
    assert e.toward()[0][0] == "radius"
    assert e.to_json()["label"] is None


def test_missing_values_and_booleans(store: trenches.Store) -> None:
    ds = store.datasets.create("gaps", task="classification", label="label")
    frame = _frame(300, seed=4)
    frame["smoker"] = frame["radius"] > 11
    frame.loc[frame.index[::7], "radius"] = np.nan
    frame.loc[frame.index[::5], "site"] = None
    ds.add(frame, source="expert")
    ref = _fit(
        store,
        "gaps",
        lambda X, y: make_pipeline(
            ColumnTransformer(
                [
                    ("num", SimpleImputer(), ["radius", "texture", "grade", "smoker"]),
                    ("site", OneHotEncoder(handle_unknown="ignore"), ["site"]),
                ]
            ),
            LogisticRegression(max_iter=1000),
        ).fit(X, y),
    )
    patterns = ds.patterns()
    gap = int(patterns.index[patterns["radius"].isna()][0])
    whole = int(patterns.index[patterns["radius"].notna() & patterns["site"].isna()][0])
    held, complete = store.explanations.explain(ref, [gap, whole], num_samples=SAMPLES)
    assert "radius" not in [f for f, _, _ in held.weights]  # missing: held, not explained
    conditions = [c for _, c, _ in complete.weights]
    assert "site=(missing)" in conditions
    assert any(c in ("smoker=true", "smoker=false") for c in conditions)


def test_a_text_model_ranks_the_decisive_word_first(store: trenches.Store) -> None:
    rng = np.random.default_rng(5)
    filler = [
        "the",
        "a",
        "my",
        "order",
        "was",
        "please",
        "thanks",
        "today",
        "item",
        "box",
        "store",
        "late",
    ]
    texts, labels = [], []
    for i in range(240):
        words = list(rng.choice(filler, 6))
        complaint = i % 2 == 0
        if complaint:
            words.insert(int(rng.integers(0, 6)), "refund")
        texts.append(" ".join(words))
        labels.append("complaint" if complaint else "other")
    # A fixed split salt: with a random one the small model was sometimes fit on a
    # training split that left it calling a complaint "other".
    ds = store.datasets.create(
        "mail",
        task="classification",
        label="topic",
        text="message",
        salt="746578742d6578706c61696e2d303031",
    )
    ds.add(pd.DataFrame({"message": texts, "topic": labels}), source="expert")
    ref = _fit(
        store,
        "mail",
        lambda X, y: make_pipeline(
            ColumnTransformer([("words", TfidfVectorizer(), "message")]), LogisticRegression()
        ).fit(X, y),
    )
    patterns = ds.patterns()
    ids = [int(i) for i in patterns.index[patterns["topic"] == "complaint"][:2]]
    for e in store.explanations.explain(ref, ids, num_samples=SAMPLES, num_features=5):
        assert e.method == "lime-text" and e.label == "complaint"
        assert e.weights[0][0] == "refund" and e.weights[0][2] > 0
        assert e.weights[0][1] == 'contains "refund"'


# --- reproducible and stored once ------------------------------------------------


def test_the_same_settings_give_the_same_weights_stored_once(
    store: trenches.Store, radius_only_ref: str
) -> None:
    ids = _ids(store, "tumours", 2)
    first = store.explanations.explain(radius_only_ref, ids, seed=7, num_samples=SAMPLES)
    assert _rows(store) == 2
    again = store.explanations.explain(radius_only_ref, ids, seed=7, num_samples=SAMPLES)
    assert _rows(store) == 2
    assert [e.weights for e in again] == [e.weights for e in first]
    assert [e.created_at for e in again] == [e.created_at for e in first]
    other = store.explanations.explain(radius_only_ref, ids[:1], seed=8, num_samples=SAMPLES)
    assert _rows(store) == 3
    assert other[0].settings["seed"] == 8 and first[0].settings["seed"] == 7


def test_an_explanation_does_not_depend_on_what_was_explained_before(
    store: trenches.Store, tumours: trenches.Dataset
) -> None:
    # The same model registered twice: two versions, computed in opposite orders.
    model = make_pipeline(
        ColumnTransformer([("radius", "passthrough", ["radius", "grade"])]), LogisticRegression()
    )
    a = _fit(store, "tumours", lambda X, y: model.fit(X, y))
    b = _fit(store, "tumours", lambda X, y: model.fit(X, y))
    ids = _ids(store, "tumours", 3)
    forward = store.explanations.explain(a, ids, seed=3, num_samples=SAMPLES)
    backward = store.explanations.explain(b, ids[::-1], seed=3, num_samples=SAMPLES)
    assert [e.weights for e in forward] == [e.weights for e in backward[::-1]]
    assert [e.version for e in forward + backward] == [a] * 3 + [b] * 3


def test_stored_explanations_are_listed(
    store: trenches.Store, radius_only_ref: str, stump_ref: str
) -> None:
    ids = _ids(store, "tumours", 2)
    made = store.explanations.explain(radius_only_ref, ids, num_samples=SAMPLES)
    store.explanations.explain(stump_ref, _ids(store, "numeric", 1), num_samples=SAMPLES)
    assert len(store.explanations.list()) == 3
    listed = store.explanations.list(radius_only_ref)
    assert [e.pattern_id for e in listed] == ids
    assert listed == made
    assert [e.pattern_id for e in store.explanations.list(pattern_ids=ids[1:])] == ids[1:]
    assert [e.version for e in store.explanations.list(dataset="numeric")] == [stump_ref]
    out = json.loads(json.dumps(listed[0].to_json()))
    assert out["weights"][0]["feature"] == "radius" and out["version"] == radius_only_ref


# --- bad requests ----------------------------------------------------------------


def test_bad_requests_say_what_to_do(
    store: trenches.Store, radius_only_ref: str, stump_ref: str
) -> None:
    with pytest.raises(trenches.NotFound, match="no pattern with id 99999"):
        store.explanations.explain(radius_only_ref, [99999])
    other = _ids(store, "numeric", 1)[0]
    with pytest.raises(trenches.InvalidInput, match="belongs to dataset 'numeric'"):
        store.explanations.explain(radius_only_ref, [other])
    loose = store.models.register(
        LogisticRegression().fit(pd.DataFrame({"x": [0.0, 1.0]}), [0, 1]),
        "loose",
        X=pd.DataFrame({"x": [0.0, 1.0]}),
    )
    with pytest.raises(trenches.InvalidInput, match="without a dataset"):
        store.explanations.explain(loose.ref, [1])
    assert _rows(store) == 0


# --- the command line ----------------------------------------------------------


def _cli(store_url: str, *args: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(["--store", store_url, *map(str, args)])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def test_explain_command_prints_and_stores(
    store: trenches.Store, store_url: str, radius_only_ref: str
) -> None:
    ids = _ids(store, "tumours", 2)
    code, out, err = _cli(store_url, "explain", radius_only_ref, *ids, "--samples", SAMPLES)
    assert code == 0, err
    assert "2 new, 0 stored already" in err
    assert "toward " in out and "against" in out and "radius" in out
    code, out, err = _cli(
        store_url, "explain", radius_only_ref, *ids, "--samples", SAMPLES, "--json"
    )
    assert code == 0, err
    parsed = json.loads(out)
    assert parsed["computed"] == 0 and parsed["version"] == radius_only_ref
    assert [e["pattern_id"] for e in parsed["explanations"]] == ids
    assert parsed["explanations"][0]["weights"][0]["feature"] == "radius"


def test_explain_command_explains_each_pattern_of_a_problem(
    store: trenches.Store, store_url: str, radius_only_ref: str
) -> None:
    ids = _ids(store, "tumours", 5)
    store.problems.create("small", dataset="tumours", title="Small tumours")
    store.problems.add("small", positive=ids[:3], negative=ids[3:], backfill=False)
    code, out, err = _cli(
        store_url, "explain", radius_only_ref, "--problem", "small", "--samples", SAMPLES, "--json"
    )
    assert code == 0, err
    assert sorted(e["pattern_id"] for e in json.loads(out)["explanations"]) == sorted(ids)


def test_explain_command_refuses_bad_input_with_exit_2(
    store: trenches.Store, store_url: str, radius_only_ref: str
) -> None:
    code, _, err = _cli(store_url, "explain", radius_only_ref, 99999)
    assert code == 2 and "no pattern with id 99999" in err and "Traceback" not in err
    code, _, err = _cli(store_url, "explain", radius_only_ref)
    assert code == 2 and "--problem" in err
    code, _, err = _cli(store_url, "explain", radius_only_ref, "--problem", "nope")
    assert code == 2
