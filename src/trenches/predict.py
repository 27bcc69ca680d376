"""Batch prediction of a model version over patterns, into the prediction store.

The model is loaded once and asked for a whole chunk at a time; each chunk is stored
in its own transaction. Only patterns without a prediction of that version are
predicted, so a prediction job can be run again, stopped and resumed, or run by two
processes at once, and it never computes a prediction twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import predictions as store_of
from trenches.db.engine import read, write
from trenches.errors import InvalidInput
from trenches.patterns import inputs as inp
from trenches.patterns.frames import read_patterns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models, ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.predictors import Predictor

CHUNK = 100_000
_EPS = 1e-15


@dataclass(frozen=True)
class PredictResult:
    """What one prediction job did."""

    ref: str
    predictor_id: int
    requested: int
    computed: int

    @property
    def already(self) -> int:
        """Patterns that had a prediction before and were left alone."""
        return self.requested - self.computed


def predict(
    engine: Engine,
    models: Models,
    predictor: Predictor,
    pattern_ids: Sequence[int] | np.ndarray,
    *,
    trusted: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> PredictResult:
    """Predict the patterns ``pattern_ids`` with the version ``predictor`` where it has
    not, loading it from ``models``.

    A version with an ONNX form predicts through ONNX Runtime (verified at registration
    to give the native model's labels and probabilities to 1e-5, and far quicker to
    load); otherwise through its native form.
    """
    version = predictor.version
    if version is None:
        raise InvalidInput(
            f"{predictor.ref} is a baseline: its predictions were given, it cannot predict"
        )
    dataset = predictor.dataset
    wanted = np.unique(np.asarray(pattern_ids, dtype=np.int64))
    with read(engine) as conn:
        todo = np.setdiff1d(wanted, store_of.predicted_ids(conn, predictor.id), assume_unique=True)
    if len(todo) == 0:
        return PredictResult(version.ref, predictor.id, len(wanted), 0)
    fmt = "onnx" if "onnx" in version.formats else "native"
    model = models.load(version, format=fmt, trusted=trusted)
    classes = None if predictor.classes is None else list(predictor.classes)
    computed = 0
    for start in range(0, len(todo), chunk):
        ids = todo[start : start + chunk]
        frame, _ = read_patterns(dataset, ids=ids.tolist(), full_info=False)
        X = model_inputs(version, dataset, frame)
        truth = frame[dataset.label_column].to_numpy()
        found = frame.index.to_numpy()
        block = _predict_block(
            model, X, found, truth, dataset.label_type or "string", classes, dataset.task
        )
        with write(engine) as conn:
            computed += store_of.write_block(conn, predictor.id, block, skip_existing=True)
        if progress is not None:
            progress(len(ids))
    return PredictResult(version.ref, predictor.id, len(wanted), computed)


def model_inputs(version: ModelVersion, dataset: Dataset, frame: Any) -> Any:
    """The columns of ``frame`` (patterns of ``dataset``) that ``version`` takes, in its
    order; a column the dataset lacks is an error naming it."""
    columns = list(version.signature.columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{version.ref} takes the input {missing[0]!r}, which dataset "
            f"{dataset.name!r} does not have",
            field=missing[0],
        )
    return frame[columns]


def _predict_block(
    model: Any,
    X: Any,
    pattern_ids: np.ndarray,
    truth: np.ndarray,
    label_type: str,
    classes: list[str] | None,
    task: str,
) -> store_of.Block:
    """The block of ``model``'s predictions on the patterns ``pattern_ids`` (inputs
    ``X``, labels ``truth``)."""
    predicted = np.asarray(model.predict(X))
    if task == "regression" or classes is None:
        values = predicted.astype(np.float64).ravel()
        y = truth.astype(np.float64)
        return store_of.Block(pattern_ids, values=values, loss=(values - y) ** 2)
    truth_text = inp.label_to_text(np.asarray(truth), label_type)
    predicted_text = inp.label_to_text(predicted, label_type)
    position = {c: j for j, c in enumerate(classes)}
    label_index = np.array([position.get(p, -1) for p in predicted_text], dtype=np.int32)
    correct = np.array([p == y for p, y in zip(predicted_text, truth_text, strict=True)])
    scores = None
    loss = np.full(len(truth_text), np.nan)
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
        true_index = np.array([position.get(y, -1) for y in truth_text])
        p_true = np.where(
            true_index >= 0, scores[np.arange(len(scores)), np.maximum(true_index, 0)], 0.0
        )
        loss = -np.log(np.maximum(p_true, _EPS))
    return store_of.Block(
        pattern_ids, label_index=label_index, scores=scores, correct=correct, loss=loss
    )
