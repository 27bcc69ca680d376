"""Models beyond plain scikit-learn on numbers: pipelines over string and text columns,
XGBoost and LightGBM, each with a verified ONNX form that a real server answers with."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import trenches
from test_serving import LiveServer
from trenches.errors import InvalidInput
from trenches.serving.settings import Settings


def customers(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers, an integer, two categorical string columns and a free-text note."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "kids": rng.integers(0, 4, n),
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "plan": rng.choice(["basic", "gold"], n),
            "note": rng.choice(["great service", "slow and bad", "fine", "bad bill"], n),
        }
    )
    churn = (X["age"] > 40) ^ (X["city"] == "rome") | X["note"].str.contains("bad")
    return X, np.where(churn, "leaves", "stays")


def categorical(encoder: Any, classifier: Any) -> Any:
    columns = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["age", "kids"]),
            ("categories", encoder, ["city", "plan"]),
            ("words", TfidfVectorizer(), "note"),
        ]
    )
    return make_pipeline(columns, classifier)


@pytest.mark.parametrize(
    "make",
    [
        lambda: categorical(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()),
        lambda: categorical(OrdinalEncoder(), RandomForestClassifier(20, random_state=0)),
    ],
    ids=["one-hot-logistic", "ordinal-forest"],
)
def test_a_pipeline_over_strings_and_text_gets_a_faithful_onnx_form(
    store: trenches.Store, make: Any
) -> None:
    X, y = customers()
    model = make().fit(X, y)
    version = store.models.register(model, "churn", X=X)
    assert version.formats == ("onnx", "skops"), version.onnx_error
    onnx = store.models.load(version.ref, format="onnx")
    fresh, _ = customers(200, seed=1)
    assert list(onnx.predict(fresh)) == list(model.predict(fresh))
    assert np.abs(onnx.predict_proba(fresh) - model.predict_proba(fresh)).max() <= 1e-5


def test_the_onnx_form_of_a_string_pipeline_names_a_missing_column(
    store: trenches.Store,
) -> None:
    X, y = customers()
    model = categorical(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(X, y)
    onnx = store.models.load(store.models.register(model, "churn", X=X).ref, format="onnx")
    with pytest.raises(InvalidInput, match="lacks the column 'plan'") as e:
        onnx.predict(X.drop(columns="plan"))
    assert e.value.field == "plan"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cities=st.lists(st.sampled_from(["paris", "rome", "oslo", "lima", ""]), min_size=1),
    notes=st.lists(st.text(alphabet="abcdefg hijk", max_size=30), min_size=1),
)
def test_unseen_categories_and_any_words_are_answered_like_scikit_learn(
    churn_onnx: tuple[Any, Any], cities: list[str], notes: list[str]
) -> None:
    model, onnx = churn_onnx
    n = max(len(cities), len(notes))
    rows = pd.DataFrame(
        {
            "age": np.linspace(20, 70, n),
            "kids": np.arange(n) % 4,
            "city": (cities * n)[:n],
            "plan": ["gold"] * n,
            "note": (notes * n)[:n],
        }
    )
    assert np.abs(onnx.predict_proba(rows) - model.predict_proba(rows)).max() <= 1e-5


@pytest.fixture(scope="module")
def churn_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    X, y = customers()
    model = categorical(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(X, y)
    with trenches.open(tmp_path_factory.mktemp("churn") / "store") as store:
        onnx = store.models.load(store.models.register(model, "churn", X=X).ref, format="onnx")
    return model, onnx


# --- XGBoost and LightGBM ---------------------------------------------------------------

CANCER = load_breast_cancer(as_frame=True)
DIABETES = load_diabetes(as_frame=True)


@pytest.mark.parametrize(
    ("library", "make"),
    [
        ("xgboost", lambda: xgb.XGBClassifier(n_estimators=25, max_depth=3)),
        ("lightgbm", lambda: lgb.LGBMClassifier(n_estimators=25, verbose=-1)),
    ],
)
def test_boosted_classifiers_keep_their_own_format_and_a_faithful_onnx_form(
    store: trenches.Store, library: str, make: Any
) -> None:
    X, y = CANCER.data, CANCER.target
    model = make().fit(X, y)
    version = store.models.register(model, f"cancer-{library}", X=X)
    assert version.flavor == library
    assert version.formats == tuple(sorted(("onnx", library))), version.onnx_error
    assert version.needs_trust == ()  # its own format runs no code on load
    native = store.models.load(version.ref)
    assert np.array_equal(native.predict(X), model.predict(X))
    assert np.array_equal(native.predict_proba(X), model.predict_proba(X))
    onnx = store.models.load(version.ref, format="onnx")
    assert np.array_equal(onnx.predict(X), model.predict(X))
    assert np.abs(onnx.predict_proba(X) - model.predict_proba(X)).max() <= 1e-5


@pytest.mark.parametrize(
    ("library", "make"),
    [
        ("xgboost", lambda: xgb.XGBRegressor(n_estimators=25, max_depth=3)),
        ("lightgbm", lambda: lgb.LGBMRegressor(n_estimators=25, verbose=-1)),
    ],
)
def test_boosted_regressors_keep_their_own_format_and_a_faithful_onnx_form(
    store: trenches.Store, library: str, make: Any
) -> None:
    X, y = DIABETES.data, DIABETES.target
    model = make().fit(X, y)
    version = store.models.register(model, f"diabetes-{library}", X=X)
    assert version.formats == tuple(sorted(("onnx", library))), version.onnx_error
    assert np.array_equal(store.models.load(version.ref).predict(X), model.predict(X))
    onnx = store.models.load(version.ref, format="onnx").predict(X)
    native = model.predict(X)
    # ONNX adds the trees up in single precision: within a millionth of each value.
    assert np.all(np.abs(onnx - native) <= 1e-5 + 1e-5 * np.abs(native))


def test_an_xgboost_step_in_a_pipeline_converts_with_it(store: trenches.Store) -> None:
    X, y = customers()
    X = X.drop(columns="note")
    encode = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"])],
        remainder="passthrough",
    )
    model = make_pipeline(encode, xgb.XGBClassifier(n_estimators=20)).fit(X, y == "leaves")
    version = store.models.register(model, "churn-pipe", X=X)
    assert version.formats == ("onnx", "skops"), version.onnx_error
    onnx = store.models.load(version.ref, format="onnx")
    assert np.array_equal(onnx.predict(X), model.predict(X))


def test_a_pipeline_that_rounds_differently_in_onnx_keeps_no_onnx_form(
    store: trenches.Store,
) -> None:
    """Scaled in single precision before XGBoost's trees (whose ONNX operator takes no
    doubles), some patterns cross a threshold the native model does not: no ONNX form,
    and the version says why."""
    X, y = CANCER.data, CANCER.target
    model = make_pipeline(StandardScaler(), xgb.XGBClassifier(n_estimators=20)).fit(X, y)
    version = store.models.register(model, "cancer-pipe", X=X)
    assert version.formats == ("skops",)
    assert "probabilities differ" in (version.onnx_error or "")


def test_a_boosted_model_without_its_library_says_what_to_install(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = CANCER.data, CANCER.target
    version = store.models.register(
        lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y), "m", X=X
    )
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if not installed
    with pytest.raises(InvalidInput, match=r"pip install 'trenches\[lightgbm\]'"):
        store.models.load(version.ref)
    assert store.models.load(version.ref, format="onnx").predict(X).shape == (len(X),)


# --- served through ONNX Runtime --------------------------------------------------------


def _serve(store_path: Path, ref: str, tmp_path: Path) -> Settings:
    return Settings(
        ref=ref, store=str(store_path), spool_dir=str(tmp_path / "spool"), log_requests=False
    )


def test_string_and_boosted_models_are_served_through_onnx_runtime(tmp_path: Path) -> None:
    path = tmp_path / "store"
    X, y = customers()
    churn = categorical(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(X, y)
    light = lgb.LGBMClassifier(n_estimators=25, verbose=-1).fit(CANCER.data, CANCER.target)
    boosted = xgb.XGBClassifier(n_estimators=25, max_depth=3).fit(CANCER.data, CANCER.target)
    with trenches.open(path) as store:
        store.models.register(churn, "churn", X=X)
        store.models.register(light, "cancer", X=CANCER.data)
        store.models.register(boosted, "cancer", X=CANCER.data)
    rows = CANCER.data.iloc[:50]
    cases = [
        ("churn@1", churn, X.iloc[:50]),
        ("cancer@1", light, rows),
        ("cancer@2", boosted, rows),
    ]
    for ref, model, rows in cases:
        with LiveServer(_serve(path, ref, tmp_path)) as live, httpx.Client(base_url=live.url) as c:
            assert live.app.state.server.served.model.format == "onnx"
            r = c.post("/predict", json=rows.to_dict(orient="records"))
            assert r.status_code == 200, r.text
            answers = r.json()["predictions"]
            assert [a["label"] for a in answers] == model.predict(rows).tolist()
            got = np.array([[a["scores"][str(k)] for k in model.classes_] for a in answers])
            assert np.abs(got - model.predict_proba(rows)).max() <= 1e-5
