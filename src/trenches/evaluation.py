"""Metrics from stored predictions, always over a named set of patterns.

Every figure says which patterns it is over and how many; a predictor that has not
predicted every pattern of the set is refused rather than measured on part of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trenches import predictions as store_of
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.json_form import json_shape
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import read_patterns

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.patterns.datasets import Dataset
    from trenches.patterns.sets import PatternSet
    from trenches.predict import PredictResult
    from trenches.predictors import Predictor
    from trenches.settings import Costs


def _per_class(frame: pd.DataFrame) -> list[dict[Any, Any]]:
    records: list[dict[Any, Any]] = frame.reset_index().to_dict(orient="records")
    return records


def _confusion(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {str(k): {str(c): int(v) for c, v in row.items()} for k, row in frame.iterrows()}


def _per_class_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records).set_index("class")


def _confusion_frame(rows: dict[str, dict[str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return frame.rename_axis(index="true", columns="predicted")


@json_shape(
    encode={"per_class": _per_class, "confusion": _confusion},
    decode={"per_class": _per_class_frame, "confusion": _confusion_frame},
)
@dataclass(frozen=True)
class Evaluation:
    """Metrics of one predictor over one named pattern set."""

    predictor: str
    pattern_set: str
    size: int
    task: str
    metrics: dict[str, float]
    per_class: pd.DataFrame | None = None
    confusion: pd.DataFrame | None = None


def evaluate(
    engine: Engine,
    predictor: Predictor,
    patterns: PatternSet,
    *,
    costs: Costs | None = None,
    found: store_of.Predictions | None = None,
    truth: np.ndarray | None = None,
) -> Evaluation:
    """Metrics of ``predictor`` over exactly the patterns of ``patterns``; one without
    a prediction for every one of them is refused, not measured on part of the set.
    With ``costs`` (``[evaluation.cost]``: true class -> predicted class -> cost, as in
    ``store.settings.costs``), also ``cost`` and ``cost_per_pattern``. ``found`` (the
    predictor's stored predictions) and ``truth`` (the labels of the set's patterns, in
    ascending id order, from :func:`labels_of`) spare reading them again."""
    wanted = np.unique(np.asarray(patterns.ids, dtype=np.int64))
    pattern_set = patterns.name
    if len(wanted) == 0:
        raise InvalidInput(f"the pattern set {pattern_set!r} is empty")
    if found is None:
        with read(engine) as conn:
            found = store_of.read(conn, predictor.id)
    have = np.isin(wanted, found.pattern_ids)
    if not have.all():
        raise InvalidInput(
            f"{predictor.ref} has predictions for {int(have.sum())} of the {len(wanted)} "
            f"patterns of {pattern_set}; run `trenches evaluate` (or backfill) first"
        )
    rows = np.searchsorted(found.pattern_ids, wanted)
    if truth is None:
        truth = labels_of(predictor.dataset, wanted)
    elif len(truth) != len(wanted):
        raise ValueError(f"{len(truth)} labels given for {len(wanted)} patterns")
    ds = predictor.dataset
    if ds.task == "regression":
        assert found.values is not None
        values = regression_metrics(truth.astype(np.float64), found.values[rows])
        return Evaluation(predictor.ref, pattern_set, len(wanted), ds.task, values)
    y_true = np.asarray(inp.label_to_text(truth, ds.label_type or "string"), dtype=object)
    assert found.labels is not None and found.classes is not None
    values, per_class, confusion = classification_metrics(
        y_true,
        found.labels[rows],
        list(found.classes),
        scores=None if found.scores is None else found.scores[rows],
        costs=costs,
    )
    return Evaluation(
        predictor.ref, pattern_set, len(wanted), ds.task, values, per_class, confusion
    )


def labels_of(dataset: Dataset, ids: np.ndarray) -> np.ndarray:
    """The stored labels of the patterns ``ids`` (ascending), as the dataset keeps them."""
    frame, _ = read_patterns(dataset, ids=ids.tolist(), full_info=False, with_inputs=False)
    return np.asarray(frame[dataset.label_column].to_numpy())


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and R² of predicted values against true ones (R² needs two values)."""
    from sklearn import metrics as m

    y, said = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return {
        "mae": float(m.mean_absolute_error(y, said)),
        "rmse": float(math.sqrt(m.mean_squared_error(y, said))),
        "r2": float(m.r2_score(y, said)) if len(y) > 1 else float("nan"),
    }


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    *,
    scores: np.ndarray | None = None,
    costs: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Metrics of predicted labels against true ones (both as text), with the per-class
    table and the confusion matrix. ``scores`` (one column per class of ``classes``)
    adds log loss and ROC AUC; ``costs`` (true class -> predicted class -> cost) adds
    the total and per-pattern cost."""
    from sklearn import metrics as m

    y_true_text = np.asarray(y_true, dtype=object)
    every = sorted(set(classes) | set(y_true_text.tolist()) | set(np.asarray(y_pred).tolist()))
    # scikit-learn is given integer codes: sorting object arrays of strings is most of its
    # time, and the figures are the same.
    code = {c: i for i, c in enumerate(every)}
    truth = np.array([code[c] for c in y_true_text], dtype=np.int64)
    said = np.array([code[c] for c in y_pred], dtype=np.int64)
    codes = list(range(len(every)))
    values = {"accuracy": float(m.accuracy_score(truth, said))}
    for average in ("macro", "weighted"):
        p, r, f, _ = m.precision_recall_fscore_support(
            truth, said, labels=codes, average=average, zero_division=0
        )
        values[f"precision_{average}"] = float(p)
        values[f"recall_{average}"] = float(r)
        values[f"f1_{average}"] = float(f)
    p, r, f, support = m.precision_recall_fscore_support(
        truth, said, labels=codes, average=None, zero_division=0
    )
    per_class = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": support},
        index=pd.Index(every, name="class"),
    )
    confusion = pd.DataFrame(
        m.confusion_matrix(truth, said, labels=codes),
        index=pd.Index(every, name="true"),
        columns=pd.Index(every, name="predicted"),
    )
    if scores is not None:
        values.update(_score_metrics(y_true_text, list(classes), scores))
    if costs is not None:
        total = sum(
            int(confusion.loc[truth_class, pred_class])
            * costs.get(truth_class, {}).get(pred_class, 0.0)
            for truth_class in every
            for pred_class in every
        )
        values["cost"] = float(total)
        values["cost_per_pattern"] = float(total) / len(y_true_text)
    return values, per_class, confusion


def _score_metrics(
    y_true_text: np.ndarray, classes: list[str], scores: np.ndarray
) -> dict[str, float]:
    """Log loss and ROC AUC from class scores, when every score is known and every true
    class is one the model knows."""
    from sklearn import metrics as m

    if np.isnan(scores).any() or not set(y_true_text) <= set(classes):
        return {}
    # ONNX Runtime sums in single precision for some models: rows can be 1 +- 1e-7.
    norm = scores / scores.sum(axis=1, keepdims=True)
    in_classes = np.array([classes.index(c) for c in y_true_text], dtype=np.int64)
    values = {"log_loss": float(m.log_loss(in_classes, norm, labels=range(len(classes))))}
    present = sorted(set(in_classes.tolist()))
    if len(present) == 2 and len(classes) == 2:
        values["roc_auc"] = float(m.roc_auc_score(in_classes == 1, scores[:, 1]))
    elif len(present) > 2 and len(present) == len(classes):
        values["roc_auc"] = float(
            m.roc_auc_score(in_classes, norm, multi_class="ovr", labels=range(len(classes)))
        )
    return values


@dataclass(frozen=True)
class EvaluateResult:
    """What :meth:`Store.evaluate` did: the predictions it made, and the metrics."""

    evaluation: Evaluation
    predicted: PredictResult
