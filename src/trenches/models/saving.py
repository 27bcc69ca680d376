"""Which files a registered model is kept in, by the library that made it: skops for
scikit-learn, XGBoost's and LightGBM's own formats, a pickle for a PyTorch module or
anything else, and ONNX besides wherever a faithful form can be made."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trenches.errors import InvalidInput
from trenches.models import boosting, formats, neural

if TYPE_CHECKING:
    import pandas as pd

#: A version's files: format -> (bytes, details recorded with the file).
Files = dict[str, tuple[bytes, dict[str, Any] | None]]


def prepared(model: Any, X: pd.DataFrame | None, classes: Sequence[Any] | None) -> Any:
    """``model`` as registration handles it: a PyTorch module wrapped to answer like a
    scikit-learn model (``classes``: a classifier's, in the order of its outputs)."""
    if neural.is_torch(model):
        if X is None:
            raise InvalidInput(
                "a PyTorch module needs an input example (X=DataFrame of its input "
                "columns, in the order it takes them)"
            )
        found = tuple(classes) if classes else None
        return neural.TorchModel(model, [str(c) for c in X.columns], found)
    if classes is not None:
        raise InvalidInput("classes= is for PyTorch modules; this model knows its own")
    return model


def files_of(
    model: Any, X: pd.DataFrame, signature: formats.Signature
) -> tuple[str, Files, str | None]:
    """The version's flavor, its files, and why it has no ONNX form (None: it has)."""
    files: Files = {}
    library = boosting.library_of(model)
    if library is not None or formats.is_sklearn(model):
        if library is not None:
            files[library] = (boosting.save(model, library), None)
        else:
            files["skops"] = formats.to_skops(model)
        onnx, rounds, why = formats.to_onnx(model, X, signature)
        if onnx is not None:
            files["onnx"] = (onnx, {"round_inputs": True} if rounds else None)
        return library or "sklearn", files, why
    files["pickle"] = (formats.to_pickle(model), None)
    if not isinstance(model, neural.TorchModel):
        return "python", files, "not a scikit-learn model"
    exported, why = neural.to_onnx(model, X)
    if exported is not None:
        why = formats.onnx_gap(model, formats.OnnxModel(exported, signature), X)
        if why is None:
            files["onnx"] = (exported, None)
    return "torch", files, why
