"""PyTorch models: exported to ONNX with ``torch.onnx`` from an example input, and kept
as a pickle of the module besides (which loads only when trusted).

torch is not a dependency of trenches (``pip install 'trenches[torch]'``); nothing here
imports it: a module is known as one only when the caller's process has torch loaded.
A module takes one float32 matrix (the input columns in signature order) and gives, for
a classifier, one score a class (logits: the exported form ends in a softmax, so its
scores are probabilities) and, for a regressor, one value a row.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

import numpy as np

from trenches.errors import InvalidInput


def is_torch(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (torch is never imported to tell)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


class TorchModel:
    """A module answering like a scikit-learn model: ``predict`` and ``predict_proba``
    over a DataFrame (or matrix) of its input columns."""

    def __init__(self, module: Any, columns: list[str], classes: tuple[Any, ...] | None) -> None:
        self.module = module.eval()
        self.columns = columns
        self.classes_ = None if classes is None else np.asarray(classes)

    def _forward(self, X: Any) -> np.ndarray:
        import torch

        if hasattr(X, "columns"):
            X = X[self.columns]
        matrix = torch.as_tensor(np.asarray(X, dtype=np.float32))
        with torch.no_grad():
            out = self.module(matrix)
            if self.classes_ is not None:
                out = torch.softmax(out, dim=1)
        return np.asarray(out.numpy(), dtype=np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise InvalidInput("a regressor gives no probabilities")
        return self._forward(X)

    def predict(self, X: Any) -> np.ndarray:
        out = self._forward(X)
        if self.classes_ is None:
            return out.ravel()
        return np.asarray(self.classes_[out.argmax(axis=1)])


def to_onnx(model: TorchModel, X: Any) -> tuple[bytes | None, str | None]:
    """The ONNX bytes of ``model``'s module (with its softmax, for a classifier) taking
    a float32 matrix of any number of rows, or None and why it could not be exported:
    torch.export's exporter first (it needs onnxscript), then the TorchScript one."""
    import torch

    module: Any = model.module
    if model.classes_ is not None:
        module = torch.nn.Sequential(module, torch.nn.Softmax(dim=1)).eval()
    example = torch.as_tensor(np.asarray(X[model.columns][:2], dtype=np.float32))
    # Its exporters log what they skip (torchvision's operators, ...) as warnings.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        return _exported(module, example)
    finally:
        exporter_log.setLevel(level)


def _exported(module: Any, example: Any) -> tuple[bytes | None, str | None]:
    import torch

    reasons = []
    for dynamo in (True, False):
        try:
            if dynamo:
                batch = torch.export.Dim("rows")
                program = torch.onnx.export(
                    module,
                    (example,),
                    dynamo=True,
                    input_names=["X"],
                    dynamic_shapes=({0: batch},),
                    verbose=False,
                )
                return program.model_proto.SerializeToString(), None
            out = io.BytesIO()
            torch.onnx.export(
                module,
                (example,),
                out,
                dynamo=False,
                input_names=["X"],
                output_names=["Y"],
                dynamic_axes={"X": {0: "rows"}, "Y": {0: "rows"}},
            )
            return out.getvalue(), None
        except Exception as e:  # exporters raise many kinds: "not this way"
            reasons.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(e).__name__}: {e}")
    return None, "torch.onnx could not export it: " + "; ".join(r[:300] for r in reasons)
