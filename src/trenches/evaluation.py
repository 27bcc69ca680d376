"""Metrics from stored predictions, always over a named set of patterns.

Every figure says which patterns it is over and how many; a predictor that has not
predicted every pattern of the set is refused rather than measured on part of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from trenches import predictions as store_of
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput, NotFound
from trenches.patterns import inputs as inp
from trenches.patterns.datasets import read_patterns

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset
    from trenches.settings import Costs
    from trenches.store import Store


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

    def to_json(self) -> dict[str, Any]:
        return {
            "predictor": self.predictor,
            "pattern_set": self.pattern_set,
            "size": self.size,
            "task": self.task,
            "metrics": {k: (None if v != v else v) for k, v in self.metrics.items()},
            "per_class": None
            if self.per_class is None
            else self.per_class.reset_index().to_dict(orient="records"),
            "confusion": None
            if self.confusion is None
            else {
                str(k): {str(c): int(v) for c, v in row.items()}
                for k, row in self.confusion.iterrows()
            },
        }


@dataclass(frozen=True)
class Predictor:
    """A model version or a baseline, as the prediction store knows it."""

    ref: str
    id: int
    dataset: Dataset


def resolve_predictor(store: Store, ref: str) -> Predictor:
    """``name@3`` / ``name@alias`` is a model version; a bare name is a baseline."""
    if "@" in ref:
        from trenches.predict import version_predictor

        version = store.models.get(ref)
        if version.dataset is None:
            raise InvalidInput(f"{version.ref} has no dataset; its patterns are unknown")
        return Predictor(
            version.ref, version_predictor(store, version), store.datasets.get(version.dataset)
        )
    baseline = store.baselines.get(ref)
    with read(store.engine) as conn:
        pid = conn.execute(
            select(t.predictors.c.id).where(t.predictors.c.baseline_id == baseline.id)
        ).scalar()
    if pid is None:
        raise NotFound(f"baseline {ref!r} has no predictions")
    return Predictor(baseline.name, int(pid), store.datasets.get(baseline.dataset))


def split_set(dataset: Dataset, split: str) -> tuple[str, np.ndarray]:
    """The active patterns of one split (or ``all``), with the set's name."""
    if split != "all" and split not in ("train", "validation", "test"):
        raise InvalidInput(f"split {split!r} must be train, validation, test or all")
    return f"{dataset.name}:{split}", dataset.pattern_ids(None if split == "all" else split)


def evaluate(
    store: Store,
    ref: str,
    pattern_ids: Sequence[int] | np.ndarray,
    pattern_set: str,
    *,
    costs: Costs | None = None,
) -> Evaluation:
    """Metrics of ``ref`` over exactly the patterns ``pattern_ids`` (named ``pattern_set``);
    with ``costs`` (``[evaluation.cost]``: true class -> predicted class -> cost, as in
    ``store.settings.costs``), also ``cost`` and ``cost_per_pattern``."""
    from sklearn import metrics as m

    predictor = resolve_predictor(store, ref)
    wanted = np.unique(np.asarray(pattern_ids, dtype=np.int64))
    if len(wanted) == 0:
        raise InvalidInput(f"the pattern set {pattern_set!r} is empty")
    with read(store.engine) as conn:
        found = store_of.read(conn, predictor.id)
    have = np.isin(wanted, found.pattern_ids)
    if not have.all():
        raise InvalidInput(
            f"{predictor.ref} has predictions for {int(have.sum())} of the {len(wanted)} "
            f"patterns of {pattern_set}; run `trenches evaluate` (or backfill) first"
        )
    rows = np.searchsorted(found.pattern_ids, wanted)
    frame, _ = read_patterns(
        predictor.dataset, ids=wanted.tolist(), full_info=False, with_inputs=False
    )
    truth = frame[predictor.dataset.label_column].to_numpy()
    ds = predictor.dataset
    if ds.task == "regression":
        assert found.values is not None
        y_pred = found.values[rows]
        y = truth.astype(np.float64)
        values = {
            "mae": float(m.mean_absolute_error(y, y_pred)),
            "rmse": float(math.sqrt(m.mean_squared_error(y, y_pred))),
            "r2": float(m.r2_score(y, y_pred)) if len(y) > 1 else float("nan"),
        }
        return Evaluation(predictor.ref, pattern_set, len(wanted), ds.task, values)

    y_true_text = np.asarray(inp.label_to_text(truth, ds.label_type or "string"), dtype=object)
    labels = found.labels
    assert labels is not None and found.classes is not None
    y_pred_text = labels[rows]
    classes = list(found.classes)
    every = sorted(set(classes) | set(y_true_text.tolist()))
    # scikit-learn is given integer codes: sorting object arrays of strings is most of its
    # time, and the figures are the same.
    code = {c: i for i, c in enumerate(every)}
    y_true = np.array([code[c] for c in y_true_text], dtype=np.int64)
    y_pred = np.array([code[c] for c in y_pred_text], dtype=np.int64)
    codes = list(range(len(every)))
    values = {"accuracy": float(m.accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        p, r, f, _ = m.precision_recall_fscore_support(
            y_true, y_pred, labels=codes, average=average, zero_division=0
        )
        values[f"precision_{average}"] = float(p)
        values[f"recall_{average}"] = float(r)
        values[f"f1_{average}"] = float(f)
    p, r, f, support = m.precision_recall_fscore_support(
        y_true, y_pred, labels=codes, average=None, zero_division=0
    )
    per_class = pd.DataFrame(
        {"precision": p, "recall": r, "f1": f, "support": support},
        index=pd.Index(every, name="class"),
    )
    confusion = pd.DataFrame(
        m.confusion_matrix(y_true, y_pred, labels=codes),
        index=pd.Index(every, name="true"),
        columns=pd.Index(every, name="predicted"),
    )
    scores = None if found.scores is None else found.scores[rows]
    if scores is not None and not np.isnan(scores).any() and set(y_true_text) <= set(classes):
        # ONNX Runtime sums in single precision for some models: rows can be 1 +- 1e-7.
        norm = scores / scores.sum(axis=1, keepdims=True)
        in_classes = np.array([classes.index(c) for c in y_true_text], dtype=np.int64)
        values["log_loss"] = float(m.log_loss(in_classes, norm, labels=range(len(classes))))
        present = sorted(set(in_classes.tolist()))
        if len(present) == 2 and len(classes) == 2:
            values["roc_auc"] = float(m.roc_auc_score(in_classes == 1, scores[:, 1]))
        elif len(present) > 2 and len(present) == len(classes):
            values["roc_auc"] = float(
                m.roc_auc_score(in_classes, norm, multi_class="ovr", labels=range(len(classes)))
            )
    if costs is not None:
        total = sum(
            int(confusion.loc[truth_class, pred_class])
            * costs.get(truth_class, {}).get(pred_class, 0.0)
            for truth_class in every
            for pred_class in every
        )
        values["cost"] = float(total)
        values["cost_per_pattern"] = float(total) / len(wanted)
    return Evaluation(
        predictor.ref, pattern_set, len(wanted), ds.task, values, per_class, confusion
    )
