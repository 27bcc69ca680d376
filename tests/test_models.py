"""The model registry: versions, files, ONNX fidelity, trust, aliases."""

from __future__ import annotations

import sys

import fsspec
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import trenches
from trenches.errors import ArtifactCorrupted, Conflict, InvalidInput, NotFound, UntrustedModel


@pytest.fixture
def cancer(store: trenches.Store) -> trenches.Snapshot:
    ds = store.datasets.create("cancer", task="classification", label="target")
    ds.add(load_breast_cancer(as_frame=True).frame, source="expert", created_at="2026-01-01")
    return ds.snapshot()


class ThresholdRule:
    """Not a scikit-learn model: a rule with predict."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (X["mean radius"] < 15).astype(int).to_numpy()


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        lambda: RandomForestClassifier(n_estimators=15, random_state=0),
    ],
    ids=["logistic-pipeline", "random-forest"],
)
def test_native_and_onnx_forms_predict_like_the_original(
    store: trenches.Store, cancer: trenches.Snapshot, make: object
) -> None:
    X, y, _, _ = cancer.training_data("train")
    model = make().fit(X, y)  # type: ignore[operator]
    with store.run("fit", snapshot=cancer) as run:
        version = run.log_model(model, "cancer-clf")
    assert version.formats == ("onnx", "skops") and version.onnx_error is None
    assert version.run_id == run.id and version.dataset == "cancer"
    assert version.signature.columns == list(X.columns) and version.signature.classes == (0, 1)
    native = store.models.load(version.ref)
    onnx = store.models.load(version.ref, format="onnx")
    for split in ("train", "validation", "test"):
        Xs, _, _, _ = cancer.training_data(split)
        expected = model.predict_proba(Xs)
        assert np.array_equal(native.predict_proba(Xs), expected)
        assert np.array_equal(onnx.predict(Xs), model.predict(Xs))
        assert np.abs(onnx.predict_proba(Xs) - expected).max() <= 1e-5


def test_the_onnx_form_predicts_while_another_thread_is_still_importing_pandas(
    sqlite_store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server on the ONNX path answers while its request log's first move imports
    pandas on another thread: a module still being imported must not be touched (it
    was, and one-row requests got 422s for the length of the import)."""
    import types

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 3})
    y = (X["a"] > 20).astype(int)
    version = sqlite_store.models.register(LogisticRegression().fit(X, y), "half", X=X)
    onnx = sqlite_store.models.load(version.ref, format="onnx")
    importing = types.ModuleType("pandas")  # as sys.modules holds it mid-import
    importing.__spec__ = types.SimpleNamespace(_initializing=True)  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, "pandas", importing)
    assert onnx.predict(X.to_numpy()).tolist() == y.tolist()


def test_versions_are_numbered_and_found_by_alias_and_latest(
    store: trenches.Store, cancer: trenches.Snapshot
) -> None:
    X, y, _, _ = cancer.training_data("train")
    for c in (0.1, 1.0, 10.0):
        store.models.register(LogisticRegression(C=c, max_iter=3000).fit(X, y), "m", X=X)
    assert [v.version for v in store.models.versions("m")] == [1, 2, 3]
    assert store.models.get("m@latest").version == 3
    store.models.promote("m@2", "production", reason="review passed")
    assert store.models.get("m@production").version == 2
    with pytest.raises(NotFound, match="staging"):
        store.models.get("m@staging")
    with pytest.raises(NotFound, match="nope"):
        store.models.get("nope@1")
    with pytest.raises(InvalidInput, match="reference"):
        store.models.get("m")


def test_alias_moves_keep_their_history(store: trenches.Store, cancer: trenches.Snapshot) -> None:
    X, y, _, _ = cancer.training_data("train")
    for c in (0.1, 1.0):
        store.models.register(LogisticRegression(C=c, max_iter=3000).fit(X, y), "m", X=X)
    store.models.promote("m@1", "production", reason="first")
    store.models.promote("m@2", "production", reason="better recall")
    with pytest.raises(Conflict, match="already"):
        store.models.promote("m@2", "production", reason="again")
    with pytest.raises(InvalidInput, match="reason"):
        store.models.promote("m@1", "production", reason="")
    history = store.models.alias_history("m", "production")
    assert [(h.from_version, h.to_version, h.reason) for h in history] == [
        (None, 1, "first"),
        (1, 2, "better recall"),
    ]
    assert store.models.get("m@1").aliases == ()
    assert store.models.get("m@2").aliases == ("production",)


def test_a_versions_files_are_given_byte_for_byte_and_load_as_stored(
    store: trenches.Store, cancer: trenches.Snapshot
) -> None:
    from trenches.models import formats

    X, y, _, _ = cancer.training_data()
    with store.run("lr", snapshot=cancer, capture_code=False) as run:
        v = run.log_model(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), "lr")
    skops = store.models.file_bytes("lr@1", "skops")
    again = formats.from_skops(skops, trusted=False)
    assert (again.predict(X) == store.models.load(v).predict(X)).all()
    onnx = store.models.file_bytes(v, "onnx")
    assert onnx != skops and len(onnx) > 100
    with pytest.raises(NotFound, match=r"lr@1 has no pickle file \(its files: onnx, skops\)"):
        store.models.file_bytes("lr@1", "pickle")
    with pytest.raises(NotFound):
        store.models.file_bytes("lr@2", "skops")


def test_a_pickled_model_loads_only_when_trusted(
    store: trenches.Store, cancer: trenches.Snapshot
) -> None:
    X, _, _, _ = cancer.training_data("validation")
    version = store.models.register(ThresholdRule(), "rule", X=X)
    assert version.formats == ("pickle",) and version.flavor == "python"
    with pytest.raises(UntrustedModel, match="runs code"):
        store.models.load("rule@1")
    loaded = store.models.load("rule@1", trusted=True)
    assert np.array_equal(loaded.predict(X), ThresholdRule().predict(X))


def test_a_corrupted_model_file_is_detected(
    store: trenches.Store, cancer: trenches.Snapshot
) -> None:
    X, y, _, _ = cancer.training_data("train")
    store.models.register(LogisticRegression(max_iter=3000).fit(X, y), "m", X=X)
    fs, root = fsspec.core.url_to_fs(store.artifacts.root)
    for blob in fs.find(f"{root}/sha256"):
        data = bytearray(fs.cat_file(blob))
        data[len(data) // 2] ^= 0xFF
        fs.pipe_file(blob, bytes(data))
    with pytest.raises(ArtifactCorrupted, match="corrupted"):
        store.models.load("m@1")


def test_a_model_without_an_onnx_form_says_why(store: trenches.Store) -> None:
    from sklearn.kernel_ridge import KernelRidge

    X = pd.DataFrame({"x": np.arange(20.0), "z": np.arange(20.0) % 3})
    y = np.arange(20.0)
    model = KernelRidge().fit(X, y)  # skl2onnx has no converter for it
    version = store.models.register(model, "prices", X=X)
    assert version.formats == ("skops",)
    assert version.onnx_error is not None
    assert version.onnx_error.startswith("no faithful ONNX form of KernelRidge: float64: ")
    assert "KernelRidge" in version.onnx_error.split(": ", 2)[2]
    with pytest.raises(NotFound, match="no ONNX form"):
        store.models.load("prices@1", format="onnx")
    assert np.allclose(store.models.load("prices@1").predict(X), model.predict(X))


def test_a_pipeline_over_a_string_column_takes_one_onnx_input_a_column(
    sqlite_store: trenches.Store,
) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.preprocessing import OneHotEncoder

    X = pd.DataFrame({"site": ["left", "right"] * 10, "x": np.arange(20.0), "colour": ["red"] * 20})
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["site", "colour"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(X, np.arange(20) % 2)

    version = sqlite_store.models.register(model, "sites", X=X)

    assert version.formats == ("onnx", "skops") and version.onnx_error is None
    onnx = sqlite_store.models.load(version.ref, format="onnx")
    assert [i.name for i in onnx._session.get_inputs()] == ["site", "x", "colour"]
    assert np.array_equal(onnx.predict(X), model.predict(X))


def test_registering_needs_a_model_and_a_signature(store: trenches.Store) -> None:
    with pytest.raises(InvalidInput, match="no predict"):
        store.models.register(object(), "x", X=pd.DataFrame({"a": [1.0]}))
    with pytest.raises(InvalidInput, match="input example"):
        store.models.register(ThresholdRule(), "x")
