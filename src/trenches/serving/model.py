"""The model a server answers with: loaded once, asked for a whole request at a time.

Numeric models with an ONNX form take a float matrix straight from the request's
JSON (no DataFrame on the hot path); every other model gets a DataFrame with the
columns and types of its signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.models import formats
from trenches.requests.labels import Labels
from trenches.serving.payloads import Schema

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.models.versions import ModelVersion
    from trenches.store import Store


@dataclass
class Answer:
    """What the model said about each row of one request."""

    labels: list[Any] | None  # classification: the predicted class of each row
    scores: np.ndarray | None  # classification: (rows, classes) probabilities
    values: list[float] | None  # regression

    def outputs(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "scores": None if self.scores is None else self.scores.tolist(),
            "values": self.values,
        }


class ServedModel:
    """One registered version, ready to answer."""

    def __init__(self, store: Store, version: ModelVersion, *, trusted: bool = False) -> None:
        self.version = version
        self.ref = version.ref
        self.version_id = version.id
        self.signature = version.signature
        self.columns = list(version.signature.columns)
        self.types = dict(version.signature.inputs)
        self.numeric = version.signature.all_numeric
        self.classes = (
            list(version.signature.classes) if version.signature.classes is not None else None
        )
        self.format = "onnx" if "onnx" in version.formats else "native"
        self.model = store.models.load(version.ref, format=self.format, trusted=trusted, threads=1)
        self._onnx = self.model if isinstance(self.model, formats.OnnxModel) else None
        self.has_scores = self.classes is not None and hasattr(self.model, "predict_proba")
        #: Whether it answers by calling a service (an endpoint version): its requests
        #: wait on the network, off the event loop.
        self.remote = bool(getattr(self.model, "remote", False))

    @property
    def task(self) -> str:
        return "classification" if self.classes is not None else "regression"

    def answer(self, rows: np.ndarray | pd.DataFrame) -> Answer:
        """Predict every row: a float matrix in signature order, or a DataFrame."""
        if self._onnx is not None and isinstance(rows, np.ndarray):
            labels, proba = self._onnx.predict_with_proba(rows)
        elif hasattr(self.model, "predict_with_proba"):  # one run (or call) for both
            frame = self.frame(rows) if isinstance(rows, np.ndarray) else rows
            labels, proba = self.model.predict_with_proba(frame)
        else:
            frame = self.frame(rows) if isinstance(rows, np.ndarray) else rows
            labels = np.asarray(self.model.predict(frame))
            proba = (
                np.asarray(self.model.predict_proba(frame), dtype=np.float64)
                if self.has_scores
                else None
            )
        if self.classes is None:
            return Answer(None, None, np.asarray(labels, dtype=np.float64).ravel().tolist())
        return Answer(_plain(labels), proba, None)

    def frame(self, matrix: np.ndarray) -> pd.DataFrame:
        """A float matrix in signature order as the DataFrame the model was fit on."""
        import pandas as pd

        frame = pd.DataFrame(matrix, columns=self.columns)
        for name, kind in self.types.items():
            if kind == "integer" and not frame[name].isna().any():
                frame[name] = frame[name].astype(np.int64)
            elif kind == "boolean" and not frame[name].isna().any():
                frame[name] = frame[name].astype(bool)
        return frame


def _plain(labels: np.ndarray) -> list[Any]:
    """Labels as JSON-ready Python values (numpy ints and strings made plain)."""
    return list(np.asarray(labels).tolist())


def load_served(store: Store, ref: str, *, trusted: bool = False) -> ServedModel:
    return ServedModel(store, store.models.get(ref), trusted=trusted)


@dataclass
class Served:
    """The model answering now, with what the hot path needs of it."""

    model: ServedModel
    schema: Schema
    name: str  # the registered model's name
    version: str  # its version number, as text
    labels: Labels  # what feedback on its answers may say

    @classmethod
    def of(cls, model: ServedModel, engine: Engine) -> Served:
        return cls(
            model,
            Schema(tuple(model.columns), dict(model.types)),
            model.version.model,
            str(model.version.version),
            Labels.of(engine, model.version),
        )
