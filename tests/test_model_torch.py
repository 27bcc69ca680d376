"""PyTorch modules: exported with torch.onnx, verified, served through ONNX Runtime.
torch is an optional extra (its Linux wheels bring several GB of CUDA libraries), so
these tests run only where it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

import trenches
from trenches.errors import InvalidInput, UntrustedModel

torch = pytest.importorskip("torch")


def _fit(X: pd.DataFrame, y: np.ndarray, outputs: int, loss: object) -> object:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 16), torch.nn.ReLU(), torch.nn.Linear(16, outputs)
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    inputs = torch.as_tensor(X.to_numpy(np.float32))
    target = torch.as_tensor(y)
    for _ in range(150):
        optimiser.zero_grad()
        loss(net(inputs), target).backward()  # type: ignore[operator]
        optimiser.step()
    return net.eval()


def _scaled(frame: pd.DataFrame) -> pd.DataFrame:
    return (frame - frame.mean()) / frame.std()


def test_a_torch_classifier_gets_a_verified_onnx_form(store: trenches.Store) -> None:
    data = load_breast_cancer(as_frame=True)
    X = _scaled(data.data)
    net = _fit(X, data.target.to_numpy(), 2, torch.nn.functional.cross_entropy)
    version = store.models.register(net, "cancer-net", X=X, classes=["malignant", "benign"])
    assert version.flavor == "torch"
    assert version.formats == ("onnx", "pickle"), version.onnx_error
    assert version.signature.classes == ("malignant", "benign")
    with torch.no_grad():
        want = torch.softmax(net(torch.as_tensor(X.to_numpy(np.float32))), dim=1).numpy()  # type: ignore[operator]
    onnx = store.models.load(version.ref, format="onnx")
    assert np.abs(onnx.predict_proba(X) - want).max() <= 1e-5
    assert list(onnx.predict(X)) == list(np.array(["malignant", "benign"])[want.argmax(axis=1)])
    with pytest.raises(UntrustedModel):
        store.models.load(version.ref)  # the module itself is a pickle
    native = store.models.load(version.ref, trusted=True)
    assert np.abs(native.predict_proba(X) - want).max() <= 1e-6


def test_a_torch_regressor_predicts_one_value_a_row(store: trenches.Store) -> None:
    data = load_diabetes(as_frame=True)
    X = _scaled(data.data)
    y = ((data.target - data.target.mean()) / data.target.std()).to_numpy(np.float32)

    def mse(out: object, target: object) -> object:
        return torch.nn.functional.mse_loss(out.squeeze(1), target)  # type: ignore[attr-defined]

    net = _fit(X, y, 1, mse)
    version = store.models.register(net, "diabetes-net", X=X)
    assert version.formats == ("onnx", "pickle"), version.onnx_error
    with torch.no_grad():
        want = net(torch.as_tensor(X.to_numpy(np.float32))).numpy().ravel()  # type: ignore[operator]
    got = store.models.load(version.ref, format="onnx").predict(X)
    assert got.shape == (len(X),) and np.abs(got - want).max() <= 1e-5


def test_a_torch_module_needs_an_input_example(store: trenches.Store) -> None:
    with pytest.raises(InvalidInput, match="needs an input example"):
        store.models.register(torch.nn.Linear(3, 1), "net")


def test_classes_are_refused_for_a_model_that_knows_its_own(
    store: trenches.Store, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame({"x": np.arange(10.0)})
    model = LogisticRegression().fit(X, np.arange(10) % 2)
    with pytest.raises(InvalidInput, match="classes= is for PyTorch modules"):
        store.models.register(model, "m", X=X, classes=[0, 1])
