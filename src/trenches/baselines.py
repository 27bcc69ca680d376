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
import orjson
import pandas as pd
from sqlalchemy import func, select

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import bulk_insert, insert_returning_id, read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.patterns import inputs as inp
from trenches.patterns.ingest import read_file

if TYPE_CHECKING:
    from trenches.store import Store

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

    def __init__(self, store: Store) -> None:
        self._store = store

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
        ds = self._store.datasets.get(dataset)
        if ds.label_type is None:
            raise InvalidInput(f"dataset {dataset!r} has no patterns yet")
        file = None
        if isinstance(predictions, pd.DataFrame):
            frame = predictions.reset_index(drop=True)
        else:
            file = str(predictions)
            frame = read_file(
                predictions, string_columns={"prediction"} if ds.label_type == "string" else set()
            )
        for column in ("pattern_id", "prediction"):
            if column not in frame.columns:
                raise InvalidInput("this column is missing", file=file, field=column)
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
        labels = self._pattern_labels(ds.id, pattern_ids, file)
        pred = inp.coerce(
            frame["prediction"],
            ds.label_type,
            file=file,
            offset=0,
            field="prediction",
            text_file=file is not None and file.lower().endswith(".csv"),
        )
        if pred.missing.any():
            row = int(np.flatnonzero(pred.missing)[0]) + 1
            raise InvalidInput("the prediction is missing", file=file, row=row, field="prediction")
        n = len(frame)
        label_col: list[str | None] = [None] * n
        values: list[float | None] = [None] * n
        scores: list[bytearray | None] = [None] * n
        correct: list[bool | None] = [None] * n
        loss: list[float | None] = [None] * n
        classes = None
        if ds.task == "regression":
            predicted = pred.values.astype(np.float64)
            truth = np.array([float(labels[p]) for p in pattern_ids.tolist()])
            values = predicted.tolist()
            loss = ((predicted - truth) ** 2).tolist()
        else:
            texts = inp.label_to_text(pred.values, ds.label_type)
            label_col = list(texts)
            correct = [texts[i] == labels[p] for i, p in enumerate(pattern_ids.tolist())]
            proba_cols = [c for c in frame.columns if str(c).startswith("proba_")]
            if proba_cols:
                classes = [str(c)[len("proba_") :] for c in proba_cols]
                probs = np.column_stack(
                    [
                        inp.coerce(frame[c], "number", file=file, offset=0, field=str(c)).values
                        for c in proba_cols
                    ]
                )
                if np.isnan(probs).any() or (probs < 0).any() or (probs > 1).any():
                    bad = int(
                        np.flatnonzero(
                            np.isnan(probs).any(axis=1)
                            | (probs < 0).any(axis=1)
                            | (probs > 1).any(axis=1)
                        )[0]
                    )
                    raise InvalidInput(
                        "probabilities must be numbers from 0 to 1",
                        file=file,
                        row=bad + 1,
                        field=str(proba_cols[0]),
                    )
                index = {c: j for j, c in enumerate(classes)}
                for i, p in enumerate(pattern_ids.tolist()):
                    j = index.get(labels[p])
                    p_true = probs[i, j] if j is not None else 0.0
                    loss[i] = float(-np.log(max(p_true, _EPS)))
                raw = bytearray(np.ascontiguousarray(probs, dtype="<f8").tobytes())
                width = 8 * len(classes)
                scores = [raw[i * width : (i + 1) * width] for i in range(n)]
        now = timestamps.now_us()
        with write(self._store.engine) as conn:
            if conn.execute(select(t.baselines.c.id).where(t.baselines.c.name == name)).first():
                raise Conflict(f"a baseline named {name!r} exists already; choose another name")
            baseline_id = insert_returning_id(
                conn,
                t.baselines,
                {"name": name, "dataset_id": ds.id, "description": description, "created_at": now},
            )
            predictor_id = insert_returning_id(
                conn,
                t.predictors,
                {
                    "kind": "baseline",
                    "version_id": None,
                    "baseline_id": baseline_id,
                    "classes": orjson.dumps(classes).decode() if classes else None,
                    "created_at": now,
                },
            )
            bulk_insert(
                conn,
                t.predictions,
                ("pattern_id", "label", "value", "scores", "correct", "loss"),
                list(
                    zip(pattern_ids.tolist(), label_col, values, scores, correct, loss, strict=True)
                ),
                constants={"predictor_id": predictor_id, "created_at": now},
            )
        return self.get(name)

    def _pattern_labels(
        self, dataset_id: int, pattern_ids: np.ndarray, file: str | None
    ) -> dict[int, str]:
        p = t.patterns.c
        found: dict[int, tuple[int, str]] = {}
        wanted = pattern_ids.tolist()
        with read(self._store.engine) as conn:
            for start in range(0, len(wanted), 10_000):
                part = wanted[start : start + 10_000]
                for pid, ds_id, label in conn.execute(
                    select(p.id, p.dataset_id, p.label).where(p.id.in_(part))
                ):
                    found[pid] = (ds_id, label)
        for row, pid in enumerate(wanted, start=1):
            if pid not in found:
                raise InvalidInput(
                    f"there is no pattern {pid}", file=file, row=row, field="pattern_id"
                )
            if found[pid][0] != dataset_id:
                raise InvalidInput(
                    f"pattern {pid} belongs to another dataset",
                    file=file,
                    row=row,
                    field="pattern_id",
                )
        return {pid: label for pid, (_, label) in found.items()}

    def get(self, name: str) -> Baseline:
        b = t.baselines.c
        with read(self._store.engine) as conn:
            row = conn.execute(select(t.baselines).where(b.name == name)).first()
            if row is None:
                raise NotFound(f"no baseline named {name!r}")
            dataset = conn.execute(
                select(t.datasets.c.name).where(t.datasets.c.id == row.dataset_id)
            ).scalar_one()
            count = conn.execute(
                select(func.count())
                .select_from(
                    t.predictions.join(
                        t.predictors, t.predictions.c.predictor_id == t.predictors.c.id
                    )
                )
                .where(t.predictors.c.baseline_id == row.id)
            ).scalar_one()
        return Baseline(
            row.id,
            row.name,
            dataset,
            row.description,
            int(count),
            timestamps.from_us(row.created_at),
        )

    def list(self) -> list[Baseline]:
        with read(self._store.engine) as conn:
            names = list(
                conn.execute(select(t.baselines.c.name).order_by(t.baselines.c.name)).scalars()
            )
        return [self.get(n) for n in names]

    def predictions(self, name: str) -> pd.DataFrame:
        """The baseline's predictions by pattern id: label (or value), correct, loss."""
        baseline = self.get(name)
        pr = t.predictions.c
        with read(self._store.engine) as conn:
            rows = conn.execute(
                select(pr.pattern_id, pr.label, pr.value, pr.correct, pr.loss)
                .join(t.predictors, pr.predictor_id == t.predictors.c.id)
                .where(t.predictors.c.baseline_id == baseline.id)
                .order_by(pr.pattern_id)
            ).all()
        columns: Any = list(zip(*rows, strict=True)) if rows else [()] * 5
        return pd.DataFrame(
            {
                "label": list(columns[1]),
                "value": list(columns[2]),
                "correct": list(columns[3]),
                "loss": list(columns[4]),
            },
            index=pd.Index(np.array(columns[0], dtype=np.int64), name="pattern_id"),
        )
