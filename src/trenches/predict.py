"""Batch prediction of a model version over patterns, into the prediction store.

The model is loaded once and asked for a whole chunk at a time; each chunk is stored
in its own transaction. Only patterns without a prediction of that version are
predicted, so a prediction job can be run again, stopped and resumed, or run by two
processes at once, and it never computes a prediction twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trenches import predictions as store_of
from trenches.db.engine import read, write
from trenches.errors import InvalidInput
from trenches.patterns import inputs as inp
from trenches.patterns.frames import read_patterns, splits_of
from trenches.tables.arrays import ascending_unique

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models, ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.predictors import Predictor

#: Predictions stored a transaction at a time (an Iceberg commit each).
CHUNK = 500_000
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
    wanted = ascending_unique(pattern_ids)
    with read(engine) as conn:
        have = store_of.predicted_ids(conn, predictor.id, wanted)
        todo = np.setdiff1d(wanted, have, assume_unique=True)
    if len(todo) == 0:
        return PredictResult(version.ref, predictor.id, len(wanted), 0)
    fmt = "onnx" if "onnx" in version.formats else "native"
    model = models.load(version, format=fmt, trusted=trusted)
    classes = None if predictor.classes is None else list(predictor.classes)
    computed = 0
    label_type = dataset.label_type or "string"
    for batch in _batches(dataset, todo, chunk):
        blocks = []
        for split, ids in batch:
            frame, _ = read_patterns(dataset, split=split, ids=ids, full_info=False)
            X = model_inputs(version, dataset, frame)
            truth = frame[dataset.label_column].to_numpy()
            found = frame.index.to_numpy()
            blocks.append(_predict_block(model, X, found, truth, label_type, classes, dataset.task))
        with write(engine) as conn:
            computed += store_of.write_block(
                conn, predictor.id, store_of.joined_blocks(blocks), skip_existing=True
            )
        if progress is not None:
            progress(sum(len(ids) for _, ids in batch))
    return PredictResult(version.ref, predictor.id, len(wanted), computed)


#: Patterns read and predicted at a time, within a stored batch.
READ_ROWS = 100_000


def _batches(
    dataset: Dataset, todo: np.ndarray, chunk: int
) -> Iterator[list[tuple[str | None, np.ndarray]]]:
    """``todo`` (ascending) in stored batches of up to ``chunk`` patterns, each as
    reads of up to :data:`READ_ROWS` patterns of one split: a dataset's table keeps
    each split's rows together, so a read of one split's ids skips the others' row
    groups (ids of every split, read together, reach into all of them)."""
    parts: list[tuple[str | None, np.ndarray]] = []
    for split, ids in splits_of(dataset, todo):
        parts += [
            (split, ids[start : start + READ_ROWS]) for start in range(0, len(ids), READ_ROWS)
        ]
    batch: list[tuple[str | None, np.ndarray]] = []
    size = 0
    for split, ids in parts:
        if batch and size + len(ids) > chunk:
            yield batch
            batch, size = [], 0
        while len(ids) > chunk:  # a stored batch smaller than a read
            yield [(split, ids[:chunk])]
            ids = ids[chunk:]
        batch.append((split, ids))
        size += len(ids)
    if batch:
        yield batch


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


def class_positions(
    values: np.ndarray, label_type: str, classes: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """Each label's position among ``classes`` (-1: not one of them) and its text as
    stored, worked out once per distinct label: a text for each row and then a hash of
    each took a second for 1.5 million patterns. Labels of more than one kind in one
    array (which one distinct value could stand for) go row by row."""
    values = np.asarray(values)
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) != "string":
        texts = np.asarray(inp.label_to_text(values, label_type), dtype=object)
        return classes.get_indexer(texts).astype(np.int64), texts
    if values.dtype.kind == "f":  # by their bits: 0.0 and -0.0 are one value, not one text
        values = values.astype(np.float64)
        codes, bits = pd.factorize(values.view(np.uint64), use_na_sentinel=False)
        distinct = np.asarray(bits, dtype=np.uint64).view(np.float64)
    else:
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
    distinct_text = np.asarray(inp.label_to_text(np.asarray(distinct), label_type), dtype=object)
    at = classes.get_indexer(distinct_text).astype(np.int64)
    return at[codes], distinct_text[codes]


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
    known = pd.Index(classes, dtype=object)
    label_index, predicted_text = class_positions(predicted, label_type, known)
    true_index, truth_text = class_positions(np.asarray(truth), label_type, known)
    label_index = label_index.astype(np.int32)
    correct = (label_index == true_index) & (label_index >= 0)
    neither = (label_index < 0) & (true_index < 0)
    if neither.any():  # two labels outside the classes: right when they are the same
        correct[neither] = predicted_text[neither] == truth_text[neither]
    scores = None
    loss = np.full(len(truth_text), np.nan)
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X), dtype=np.float64)
        p_true = np.where(
            true_index >= 0, scores[np.arange(len(scores)), np.maximum(true_index, 0)], 0.0
        )
        loss = -np.log(np.maximum(p_true, _EPS))
    return store_of.Block(
        pattern_ids, label_index=label_index, scores=scores, correct=correct, loss=loss
    )
