"""XGBoost and LightGBM models: kept in their libraries' own formats, which load without
running code from the file, and converted to ONNX through onnxmltools.

Neither library is a dependency of trenches: a model of one is registered only where
that library is installed (``pip install 'trenches[xgboost]'`` or ``[lightgbm]``), and
nothing here imports it before a model of its kind is met.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from trenches.errors import InvalidInput

#: The libraries whose models are kept in their own format (the version's flavor and
#: the format of its file are the library's name).
LIBRARIES = ("xgboost", "lightgbm")


def library_of(model: Any) -> str | None:
    """The library of a model kept in its own format (an XGBoost or LightGBM
    scikit-learn estimator), known by its class's module: nothing is imported."""
    module = type(model).__module__.split(".")[0]
    return module if module in LIBRARIES else None


def save(model: Any, library: str) -> bytes:
    """The model in its library's own format: XGBoost's UBJSON (with what its
    scikit-learn class needs to load again), LightGBM's model text."""
    if library == "xgboost":
        with tempfile.TemporaryDirectory(prefix="trenches-xgb-") as folder:
            path = Path(folder) / "model.ubj"
            model.save_model(str(path))
            return path.read_bytes()
    if library == "lightgbm":
        booster = getattr(model, "booster_", model)
        return str(booster.model_to_string()).encode()
    raise InvalidInput(f"{library!r} is not one of {', '.join(LIBRARIES)}")


def load(data: bytes, library: str, classes: tuple[Any, ...] | None) -> Any:
    """The model a file of :func:`save` holds, predicting like the one saved
    (``classes``: a classifier's, in the order it was fit on; None: a regressor)."""
    if library == "xgboost":
        xgb = _library("xgboost")
        kind = xgb.XGBClassifier if classes is not None else xgb.XGBRegressor
        model = kind()
        model.load_model(bytearray(data))
        return model
    if library == "lightgbm":
        lgb = _library("lightgbm")
        return LightGBMModel(lgb.Booster(model_str=data.decode()), classes)
    raise InvalidInput(f"{library!r} is not one of {', '.join(LIBRARIES)}")


def _library(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise InvalidInput(
            f"this version is a {name} model, and {name} is not installed here: "
            f"pip install 'trenches[{name}]'"
        ) from e


class LightGBMModel:
    """A LightGBM booster answering as its scikit-learn class did: the class with the
    highest probability (``classes`` in the order it was fit on), or the value."""

    def __init__(self, booster: Any, classes: tuple[Any, ...] | None) -> None:
        self.booster = booster
        self.classes_ = None if classes is None else np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise InvalidInput("a regressor gives no probabilities")
        scores = np.asarray(self.booster.predict(X), dtype=np.float64)
        return scores if scores.ndim == 2 else np.column_stack([1.0 - scores, scores])

    def predict(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            return np.asarray(self.booster.predict(X), dtype=np.float64)
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


def onnx_opsets(model: Any) -> dict[str, int] | None:
    """The ONNX operator sets to convert ``model`` with: onnxmltools' tree converters
    write version 3 of ``ai.onnx.ml`` and refuse a later one, so a model holding an
    XGBoost or LightGBM estimator (alone or as a step) is converted with it; None
    (skl2onnx's latest) for any other."""
    parts = [model]
    if hasattr(model, "get_params"):
        parts += list(model.get_params(deep=True).values())
    if not any(library_of(part) for part in parts):
        return None
    from skl2onnx import get_latest_tested_opset_version

    return {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}


@cache
def teach_skl2onnx() -> None:
    """Register onnxmltools' converters for XGBoost's and LightGBM's scikit-learn
    classes with skl2onnx (once), so that they convert alone or inside a pipeline;
    a library (or onnxmltools) not installed is left out."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes as classifier_shapes,
    )
    from skl2onnx.common.shape_calculator import (
        calculate_linear_regressor_output_shapes as regressor_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import xgboost as xgb
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    except ImportError:
        pass
    else:
        update_registered_converter(
            xgb.XGBClassifier,
            "XGBoostXGBClassifier",
            classifier_shapes,
            _unnamed(convert_xgboost),
            options=options,
        )
        update_registered_converter(
            xgb.XGBRegressor, "XGBoostXGBRegressor", regressor_shapes, _unnamed(convert_xgboost)
        )
    try:
        import lightgbm as lgb
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    except ImportError:
        return
    update_registered_converter(
        lgb.LGBMClassifier,
        "LightGbmLGBMClassifier",
        classifier_shapes,
        convert_lightgbm,
        options=options,
    )
    update_registered_converter(
        lgb.LGBMRegressor,
        "LightGbmLGBMRegressor",
        regressor_shapes,
        convert_lightgbm,
        options={"split": None},
    )


def _unnamed(convert: Any) -> Any:
    """onnxmltools' XGBoost converter reads features by XGBoost's default names
    (``f0``, ``f1``, ...); a model fit on a DataFrame keeps its columns' names. It is
    given a copy without them (the ONNX input is a matrix in the same order)."""

    def converting(scope: Any, operator: Any, container: Any) -> None:
        import copy

        model = operator.raw_operator
        if model.get_booster().feature_names is not None:
            model = copy.deepcopy(model)
            model.get_booster().feature_names = None
            operator.raw_operator = model
        convert(scope, operator, container)

    return converting
