"""Baselines: the predictions of a system that is not trained here (human labellers, a
legacy rule engine), imported for given patterns so it can be compared like any model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from trenches import predictions as predictions_store
from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import insert_returning_id, read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.patterns import inputs as inp
from trenches.patterns.frames import stored_labels
from trenches.patterns.ingest import read_file
from trenches.patterns.lookup import owners

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.patterns.datasets import Datasets

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_EPS = 1e-15


@dataclass(frozen=True)
class Baseline:
    """A named set of predictions from outside, on patterns of one dataset."""

    id: int
    name: str
    dataset: str
    description: str | None
    predictions: int
    created_at: datetime


class Baselines:
    """The baselines of a store: ``store.baselines``."""

    def __init__(self, engine: Engine, datasets: Datasets) -> None:
        self._engine = engine
        self._datasets = datasets

    def add(
        self,
        name: str,
        *,
        dataset: str,
        predictions: pd.DataFrame | str | os.PathLike[str],
        description: str | None = None,
    ) -> Baseline:
        """Import a baseline's predictions: columns ``pattern_id`` and ``prediction``,
        and optionally ``proba_<class>`` for every class. One transaction; bad rows are
        refused with the file, row and field."""
        if not _NAME.match(name or ""):
            raise InvalidInput(
                f"baseline name {name!r} must start with a letter or digit and hold only "
                "letters, digits, '_', '.' and '-'"
            )
        ds = self._datasets.get(dataset)
        if ds.label_type is None:
            raise InvalidInput(f"dataset {dataset!r} has no patterns yet")
        frame, file = _read_predictions(predictions, ds.label_type)
        pattern_ids = _pattern_ids(frame, file)
        labels = self._pattern_labels(ds.id, pattern_ids, file)
        pred = _predicted(frame, ds.label_type, file)
        truth_text = [labels[p] for p in pattern_ids.tolist()]
        classes: list[str] | None = None
        if ds.task == "regression":
            values = pred.values.astype(np.float64)
            loss = (values - np.array(truth_text, dtype=object).astype(np.float64)) ** 2
            block = predictions_store.Block(pattern_ids, values=values, loss=loss)
        else:
            texts = inp.label_to_text(pred.values, ds.label_type)
            classes, block = _classification_block(frame, pattern_ids, texts, truth_text, file)
        now = timestamps.now_us()
        with write(self._engine) as conn:
            if conn.execute(select(t.baselines.c.id).where(t.baselines.c.name == name)).first():
                raise Conflict(f"a baseline named {name!r} exists already; choose another name")
            baseline_id = insert_returning_id(
                conn,
                t.baselines,
                {"name": name, "dataset_id": ds.id, "description": description, "created_at": now},
            )
            predictor = predictions_store.make_predictor(
                conn, baseline_id=baseline_id, classes=classes
            )
            predictions_store.write_block(conn, predictor, block)
        return self.get(name)

    def _pattern_labels(
        self, dataset_id: int, pattern_ids: np.ndarray, file: str | None
    ) -> dict[int, str]:
        wanted = pattern_ids.tolist()
        with read(self._engine) as conn:
            owner, _ = owners(conn, pattern_ids)
        for row, (pid, found) in enumerate(zip(wanted, owner.tolist(), strict=True), start=1):
            if found < 0:
                raise InvalidInput(
                    f"there is no pattern {pid}", file=file, row=row, field="pattern_id"
                )
            if found != dataset_id:
                raise InvalidInput(
                    f"pattern {pid} belongs to another dataset",
                    file=file,
                    row=row,
                    field="pattern_id",
                )
        unique = np.unique(pattern_ids)
        labels = stored_labels(self._datasets.by_id(dataset_id), unique)
        return dict(zip(unique.tolist(), np.asarray(labels).tolist(), strict=True))

    def get(self, name: str) -> Baseline:
        b = t.baselines.c
        with read(self._engine) as conn:
            row = conn.execute(select(t.baselines).where(b.name == name)).first()
            if row is None:
                raise NotFound(f"no baseline named {name!r}")
            dataset = conn.execute(
                select(t.datasets.c.name).where(t.datasets.c.id == row.dataset_id)
            ).scalar_one()
            predictor = conn.execute(
                select(t.predictors.c.id).where(t.predictors.c.baseline_id == row.id)
            ).scalar()
            count = 0 if predictor is None else predictions_store.count(conn, predictor)
        return Baseline(
            row.id,
            row.name,
            dataset,
            row.description,
            int(count),
            timestamps.from_us(row.created_at),
        )

    def list(self) -> list[Baseline]:
        with read(self._engine) as conn:
            names = list(
                conn.execute(select(t.baselines.c.name).order_by(t.baselines.c.name)).scalars()
            )
        return [self.get(n) for n in names]

    def predictions(self, name: str) -> pd.DataFrame:
        """The baseline's predictions by pattern id: label (or value), correct, loss."""
        baseline = self.get(name)
        with read(self._engine) as conn:
            predictor = conn.execute(
                select(t.predictors.c.id).where(t.predictors.c.baseline_id == baseline.id)
            ).scalar_one()
            found = predictions_store.read(conn, predictor)
        n = len(found)
        labels = found.labels
        return pd.DataFrame(
            {
                "label": list(labels) if labels is not None else [None] * n,
                "value": list(found.values) if found.values is not None else [None] * n,
                "correct": list(found.correct) if found.correct is not None else [None] * n,
                "loss": [None if v != v else float(v) for v in found.loss],
            },
            index=pd.Index(found.pattern_ids, name="pattern_id"),
        )


def _read_predictions(
    predictions: pd.DataFrame | str | os.PathLike[str], label_type: str
) -> tuple[pd.DataFrame, str | None]:
    """The baseline's rows, and the file they were read from (``None`` for a frame)."""
    if isinstance(predictions, pd.DataFrame):
        frame, file = predictions.reset_index(drop=True), None
    else:
        file = str(predictions)
        frame = read_file(
            predictions, string_columns={"prediction"} if label_type == "string" else set()
        )
    for column in ("pattern_id", "prediction"):
        if column not in frame.columns:
            raise InvalidInput("this column is missing", file=file, field=column)
    return frame, file


def _pattern_ids(frame: pd.DataFrame, file: str | None) -> np.ndarray:
    """The ``pattern_id`` column, each given once."""
    ids = inp.coerce(frame["pattern_id"], "integer", file=file, offset=0, field="pattern_id")
    if ids.missing.any():
        row = int(np.flatnonzero(ids.missing)[0]) + 1
        raise InvalidInput("the pattern id is missing", file=file, row=row, field="pattern_id")
    pattern_ids = ids.values.astype(np.int64)
    seen: dict[int, int] = {}
    for row, pid in enumerate(pattern_ids.tolist(), start=1):
        if pid in seen:
            raise InvalidInput(
                f"pattern {pid} appears twice (first in row {seen[pid]})",
                file=file,
                row=row,
                field="pattern_id",
            )
        seen[pid] = row
    return pattern_ids


def _predicted(frame: pd.DataFrame, label_type: str, file: str | None) -> inp.CoercedColumn:
    """The ``prediction`` column as the dataset's labels are typed, none missing."""
    pred = inp.coerce(
        frame["prediction"],
        label_type,
        file=file,
        offset=0,
        field="prediction",
        text_file=file is not None and file.lower().endswith(".csv"),
    )
    if pred.missing.any():
        row = int(np.flatnonzero(pred.missing)[0]) + 1
        raise InvalidInput("the prediction is missing", file=file, row=row, field="prediction")
    return pred


def _classification_block(
    frame: pd.DataFrame,
    pattern_ids: np.ndarray,
    texts: list[str],
    truth_text: list[str],
    file: str | None,
) -> tuple[list[str], predictions_store.Block]:
    """The classes and the block of a classifier's predicted labels ``texts``: with
    the ``proba_<class>`` columns when given (their log loss), else the classes seen."""
    scores = None
    loss = np.full(len(frame), np.nan)
    proba_cols = [c for c in frame.columns if str(c).startswith("proba_")]
    if proba_cols:
        classes = [str(c)[len("proba_") :] for c in proba_cols]
        scores = _probabilities(frame, proba_cols, classes, texts, file)
        index = {c: j for j, c in enumerate(classes)}
        p_true = np.array(
            [scores[i, index[y]] if y in index else 0.0 for i, y in enumerate(truth_text)]
        )
        loss = -np.log(np.maximum(p_true, _EPS))
    else:
        classes = sorted(set(texts) | set(truth_text))
    position = {c: j for j, c in enumerate(classes)}
    block = predictions_store.Block(
        pattern_ids,
        label_index=np.array([position[x] for x in texts], dtype=np.int32),
        scores=scores,
        correct=np.array([x == y for x, y in zip(texts, truth_text, strict=True)]),
        loss=loss,
    )
    return classes, block


def _probabilities(
    frame: pd.DataFrame,
    proba_cols: list[Any],
    classes: list[str],
    texts: list[str],
    file: str | None,
) -> np.ndarray:
    """The ``proba_<class>`` columns as one array, each a number from 0 to 1, with a
    column for every predicted class."""
    for row, text in enumerate(texts, start=1):
        if text not in classes:
            raise InvalidInput(
                f"{text!r} has no proba_{text} column",
                file=file,
                row=row,
                field="prediction",
            )
    probs = np.column_stack(
        [
            inp.coerce(frame[c], "number", file=file, offset=0, field=str(c)).values
            for c in proba_cols
        ]
    )
    bad = np.isnan(probs).any(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1)
    if bad.any():
        raise InvalidInput(
            "probabilities must be numbers from 0 to 1",
            file=file,
            row=int(np.flatnonzero(bad)[0]) + 1,
            field=str(proba_cols[0]),
        )
    return probs
