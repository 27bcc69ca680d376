"""Metrics from stored predictions, always over a named set of patterns.

Every figure says which patterns it is over and how many; a predictor that has not
predicted every pattern of the set is refused rather than measured on part of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
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
from trenches.patterns.frames import stored_labels
from trenches.tables.arrays import ascending_unique

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
    truth: np.ndarray | pd.Categorical | None = None,
) -> Evaluation:
    """Metrics of ``predictor`` over exactly the patterns of ``patterns``; one without
    a prediction for every one of them is refused, not measured on part of the set.
    With ``costs`` (``[evaluation.cost]``: true class -> predicted class -> cost, as in
    ``store.settings.costs``), also ``cost`` and ``cost_per_pattern``. ``found`` (the
    predictor's stored predictions) and ``truth`` (the labels of the set's patterns, in
    ascending id order, from :func:`labels_of`, or as text in a categorical, as
    :func:`~trenches.patterns.frames.stored_labels` gives them) spare reading them
    again."""
    wanted = ascending_unique(patterns.ids)
    pattern_set = patterns.name
    if len(wanted) == 0:
        raise InvalidInput(f"the pattern set {pattern_set!r} is empty")
    if found is None:
        with read(engine) as conn:
            found = store_of.read(conn, predictor.id)
    rows, have = _positions(found.pattern_ids, wanted)
    if not have.all():
        raise InvalidInput(
            f"{predictor.ref} has predictions for {int(have.sum())} of the {len(wanted)} "
            f"patterns of {pattern_set}; run `trenches evaluate` (or backfill) first"
        )
    if truth is not None and len(truth) != len(wanted):
        raise ValueError(f"{len(truth)} labels given for {len(wanted)} patterns")
    ds = predictor.dataset
    if ds.task == "regression":
        if truth is None:
            truth = labels_of(ds, wanted)
        assert found.values is not None
        values = regression_metrics(truth.astype(np.float64), found.values[rows])
        return Evaluation(predictor.ref, pattern_set, len(wanted), ds.task, values)
    assert found.label_index is not None and found.classes is not None
    classes = list(found.classes)
    # Labels stay codes into their few distinct values all the way to the metrics.
    if truth is None:
        y_true = stored_labels(ds, wanted, patterns.split)
    elif isinstance(truth, pd.Categorical):
        y_true = truth
    else:
        y_true = pd.Categorical(inp.label_to_text(np.asarray(truth), ds.label_type or "string"))
    said = found.label_index[rows]
    y_pred = (
        pd.Categorical.from_codes(said, categories=pd.Index(classes, dtype=object))
        if (said >= 0).all()
        else found.labels[rows]  # type: ignore[index]
    )
    values, per_class, confusion = classification_metrics(
        y_true,
        y_pred,
        classes,
        scores=None if found.scores is None else found.scores[rows],
        costs=costs,
    )
    return Evaluation(
        predictor.ref, pattern_set, len(wanted), ds.task, values, per_class, confusion
    )


def _positions(known: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray | slice, np.ndarray]:
    """Where each of ``wanted`` sits in ``known`` (both ascending), and which are
    there at all: all of ``known``, in its order, when the two are the same ids (a
    split evaluated again), without a search for each."""
    if len(known) == len(wanted) and np.array_equal(known, wanted):
        return slice(None), np.ones(len(wanted), dtype=bool)
    if len(known) == 0:
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    rows = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
    return rows, known[rows] == wanted


def missing_from(found: store_of.Predictions, ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` (ascending, unique) ``found`` holds no prediction for."""
    _, have = _positions(found.pattern_ids, ids)
    missing: np.ndarray = ids[~have]
    return missing


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
    t_cat, s_cat = _categorical(y_true), _categorical(y_pred)
    every = sorted(set(classes) | set(_present(t_cat)) | set(_present(s_cat)))
    # The labels become integer codes once (hashing or sorting strings was most of the
    # time), and every figure comes from the confusion matrix, counted in one pass:
    # scikit-learn's definitions (zero where a class was never predicted or never
    # true; macro: the mean over classes; weighted: by support), without its passes
    # over the labels for each figure.
    truth, said = _recoded(t_cat, every), _recoded(s_cat, every)
    k = len(every)
    cell = truth.astype(np.intp)  # the one array of full-size integers
    cell *= k
    cell += said
    matrix = np.bincount(cell, minlength=k * k).reshape(k, k)
    del cell
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    p = _ratio(hits, predicted)
    r = _ratio(hits, support)
    f = _ratio(2 * hits, predicted + support)  # 2tp / (2tp + fp + fn)
    values = {"accuracy": float(hits.sum() / max(len(truth), 1))}
    weights = support.astype(np.float64)
    for average in ("macro", "weighted"):
        for name, figure in (("precision", p), ("recall", r), ("f1", f)):
            if average == "macro":
                value = float(np.mean(figure))
            else:
                value = float(np.average(figure, weights=weights)) if weights.sum() else 0.0
            values[f"{name}_{average}"] = value
    per_class = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": support},
        index=pd.Index(every, name="class"),
    )
    confusion = pd.DataFrame(
        matrix,
        index=pd.Index(every, name="true"),
        columns=pd.Index(every, name="predicted"),
    )
    if scores is not None:
        values.update(_score_metrics(_recoded(t_cat, list(classes)), len(classes), scores))
    if costs is not None:
        total = sum(
            int(confusion.loc[truth_class, pred_class])
            * costs.get(truth_class, {}).get(pred_class, 0.0)
            for truth_class in every
            for pred_class in every
        )
        values["cost"] = float(total)
        values["cost_per_pattern"] = float(total) / len(truth)
    return values, per_class, confusion


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom``, 0 where ``bottom`` is 0 (scikit-learn's ``zero_division=0``)."""
    out = np.zeros(len(top), dtype=np.float64)
    np.divide(top, bottom, out=out, where=bottom != 0)
    return out


def _categorical(values: Any) -> pd.Categorical:
    """Labels as text, or a categorical of them, as a categorical."""
    if isinstance(values, pd.Categorical):
        return values
    return pd.Categorical(np.asarray(values, dtype=object))


def _present(labels: pd.Categorical) -> list[str]:
    """The categories that occur, by counting codes (no hashing of the values)."""
    codes = np.asarray(labels.codes)
    seen = np.bincount(codes[codes >= 0], minlength=len(labels.categories)) > 0
    return [str(c) for c in np.asarray(labels.categories, dtype=object)[seen]]


def _recoded(labels: pd.Categorical, order: Sequence[str]) -> np.ndarray:
    """The labels as positions in ``order`` (-1: a label not in it), in the smallest
    signed type that holds them: a new array of a million labels is a fresh page of
    memory for every 4,096 of them, and one byte each is an eighth of eight."""
    position = {c: j for j, c in enumerate(order)}
    small = np.min_scalar_type(-len(order) - 1)
    table = np.array([position.get(str(c), -1) for c in labels.categories] + [-1], dtype=small)
    recoded: np.ndarray = table[labels.codes]  # a code of -1 (missing) takes the last
    return recoded


def _score_metrics(in_classes: np.ndarray, k: int, scores: np.ndarray) -> dict[str, float]:
    """Log loss and ROC AUC from class scores (``in_classes``: each true label's
    position among the ``k`` classes, -1 for one the model does not know), when every
    score is known and every true class is one the model knows."""
    from sklearn import metrics as m

    if k < 2 or (in_classes < 0).any():
        return {}
    n = len(scores)
    scores = np.ascontiguousarray(scores, dtype=np.float64)
    # ONNX Runtime sums in single precision for some models: rows can be 1 +- 1e-7.
    # (Summed column by column: NumPy's sum along rows of a few columns is ten
    # times as long.)
    total = scores[:, 0].copy()
    for j in range(1, k):
        total += scores[:, j]
    if np.isnan(total).any():  # a row with a score missing
        return {}
    # Log loss as scikit-learn defines it (each true class's probability, normalised
    # and clipped to [eps, 1 - eps], the mean of minus its log), read off the true
    # class's column instead of a log of every score.
    eps = np.finfo(np.float64).eps
    p_true = scores[:, 0].copy()
    for j in range(1, k):
        np.copyto(p_true, scores[:, j], where=in_classes == j)
    p_true /= total
    np.clip(p_true, eps, 1 - eps, out=p_true)
    values = {"log_loss": float(-np.mean(np.log(p_true, out=p_true))) if n else float("nan")}
    present = np.flatnonzero(np.bincount(in_classes, minlength=k))
    if len(present) == 2 and k == 2:
        positive = in_classes == 1
        second = scores[:, 1]
        values["roc_auc"] = binary_auc(second[positive], second[~positive])
    elif len(present) > 2 and len(present) == k:
        norm = scores / total[:, None]
        values["roc_auc"] = float(
            m.roc_auc_score(in_classes, norm, multi_class="ovr", labels=range(k))
        )
    return values


def binary_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """The area under the ROC curve from the scores of the positive and the negative
    patterns (both non-empty): the chance that a positive scores above a negative, a
    tie counting half. Each side is sorted, and the negatives below and equal to each
    positive are found by binary search: scikit-learn's ``roc_auc_score`` sorts with
    the labels and builds the whole curve, three times as long for the same figure."""
    pos = np.sort(positives)
    neg = np.sort(negatives)
    below = np.searchsorted(neg, pos, side="left")
    # The negatives equal to a positive are searched for only where there are any.
    tied = neg[np.minimum(below, len(neg) - 1)] == pos
    ties = 0
    if tied.any():
        ties = int((np.searchsorted(neg, pos[tied], side="right") - below[tied]).sum())
    # below + ties / 2, summed in integers: exact for any number of patterns.
    twice = int(below.sum()) * 2 + ties
    return twice / (2.0 * len(pos) * len(neg))


@dataclass(frozen=True)
class EvaluateResult:
    """What :meth:`Store.evaluate` did: the predictions it made, and the metrics."""

    evaluation: Evaluation
    predicted: PredictResult


def measure(
    engine: Engine,
    predictor: Predictor,
    patterns: str | PatternSet,
    *,
    costs: Mapping[str, Mapping[str, float]] | None,
    predict: Callable[[np.ndarray, str | None, Callable[[int], None] | None], PredictResult] | None,
    problem_ids: Callable[[], list[int]] | None,
    progress: Callable[[int, int], None] | None,
) -> EvaluateResult:
    """:meth:`trenches.Store.evaluate`: first, with ``predict`` (ids, the split most
    are of, a progress callback), what the predictor has not predicted of the set and
    of the patterns ``problem_ids`` gives; then the metrics over the set."""
    from concurrent.futures import ThreadPoolExecutor

    from trenches.names import SPLITS
    from trenches.patterns.sets import split, split_and_labels
    from trenches.predict import PredictResult

    dataset = predictor.dataset

    def predicted() -> store_of.Predictions:
        with read(engine) as conn:
            return store_of.read(conn, predictor.id, columns=("label_index", "value", "scores"))

    # What it has predicted already, read once (on a thread of its own, beside the
    # set's ids and labels: the two reads overlap on two cores): a set with nothing
    # left to predict is measured on these, not read again.
    with ThreadPoolExecutor(1, thread_name_prefix="trenches-evaluate") as reader:
        reading = reader.submit(predicted)
        truth = None
        if not isinstance(patterns, str):
            chosen = patterns
        elif dataset.task == "classification":
            # A classifier is measured on the split's labels: read with its ids.
            chosen, truth = split_and_labels(dataset, patterns)
        else:
            chosen = split(dataset, patterns)
        found: store_of.Predictions | None = reading.result()
    done = PredictResult(predictor.ref, predictor.id, len(chosen), 0)
    if predict is not None and predictor.version is not None:
        wanted = ascending_unique(chosen.ids)
        if problem_ids is not None:
            wanted = np.union1d(wanted, np.asarray(problem_ids(), dtype=np.int64))
        assert found is not None
        # Only what the read found missing is predicted (a process evaluating the
        # same version at once is still stepped around by each batch's write).
        missing = missing_from(found, wanted)
        done = PredictResult(predictor.ref, predictor.id, len(wanted), 0)
        if len(missing):
            made = predict(
                missing,
                # a split's rows are read without the other splits'
                patterns if isinstance(patterns, str) and patterns in SPLITS else None,
                None if progress is None else (lambda n: progress(n, len(missing))),
            )
            done = PredictResult(predictor.ref, predictor.id, len(wanted), made.computed)
            found = None  # read again: this run, or another, has stored more
    return EvaluateResult(
        evaluate(engine, predictor, chosen, costs=costs, found=found, truth=truth), done
    )
