"""The prediction store: each predictor's output on each pattern, stored once.

A predictor is a model version or a baseline. Its predictions are written in blocks
of NumPy arrays (pattern ids, predicted class index or value, class scores,
correctness, loss), one row a block, so that writing 100,000 predictions is one insert
and reading them back is a handful of ``frombuffer`` calls. A prediction is a pure
function of (predictor, pattern): a pattern that has one is never predicted again.

:func:`table` joins a predictor's predictions with the patterns they are about, into
one DataFrame to query or export (:func:`write_file`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from trenches import timestamps, verdicts
from trenches.db import engine as db
from trenches.db import schema as t
from trenches.db.engine import insert_returning_id
from trenches.errors import Conflict, InvalidInput
from trenches.patterns.sets import SPLIT_SETS, PatternSet

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.predictors import Predictor


@dataclass(frozen=True)
class Predictions:
    """A predictor's predictions as columns, by ascending pattern id."""

    classes: tuple[str, ...] | None
    pattern_ids: np.ndarray  # int64
    label_index: np.ndarray | None  # int32 into classes (classification)
    values: np.ndarray | None  # float64 (regression)
    scores: np.ndarray | None  # float64 (n, len(classes)), NaN rows where none were given
    correct: np.ndarray | None  # bool (classification)
    loss: np.ndarray  # float64, NaN where there is none

    def __len__(self) -> int:
        return len(self.pattern_ids)

    @property
    def labels(self) -> np.ndarray | None:
        """Predicted labels as text (classification)."""
        if self.label_index is None or self.classes is None:
            return None
        return np.asarray(np.asarray(self.classes, dtype=object)[self.label_index])


def _bytes(a: np.ndarray | None, dtype: str) -> bytes | None:
    if a is None:
        return None
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def make_predictor(
    conn: Connection,
    *,
    version_id: int | None = None,
    baseline_id: int | None = None,
    classes: Sequence[str] | None = None,
) -> int:
    """Make the predictor row of a version or baseline being registered (in its
    registration's transaction): readers only ever find it."""
    return insert_returning_id(
        conn,
        t.predictors,
        {
            "kind": "version" if version_id is not None else "baseline",
            "version_id": version_id,
            "baseline_id": baseline_id,
            "classes": orjson.dumps(list(classes)).decode() if classes is not None else None,
            "created_at": timestamps.now_us(),
        },
    )


def predicted_ids(conn: Connection, predictor: int) -> np.ndarray:
    """The ids of the patterns the predictor has a prediction for, ascending."""
    b = t.prediction_blocks.c
    blobs = conn.execute(select(b.pattern_ids).where(b.predictor_id == predictor)).scalars()
    parts = [np.frombuffer(x, dtype="<i8") for x in blobs]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Block:
    """One block of predictions to store, each array in the order of ``pattern_ids``:
    class indexes, scores and correctness (classification) or values (regression), and
    the loss (NaN where none is given)."""

    pattern_ids: np.ndarray
    label_index: np.ndarray | None = None
    values: np.ndarray | None = None
    scores: np.ndarray | None = None
    correct: np.ndarray | None = None
    loss: np.ndarray | None = None


def write_block(
    conn: Connection, predictor: int, block: Block, *, skip_existing: bool = False
) -> int:
    """Store one block of predictions; returns how many were stored.

    A pattern the predictor has a prediction for already is refused, or with
    ``skip_existing`` left out (another process got there first)."""
    ids = np.asarray(block.pattern_ids, dtype=np.int64)
    if len(ids) == 0:
        return 0
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if (np.diff(ids) == 0).any():
        raise Conflict("a block of predictions names a pattern twice")
    have = predicted_ids(conn, predictor)
    fresh = ~np.isin(ids, have)
    if not fresh.all():
        if not skip_existing:
            raise Conflict(
                f"pattern {int(ids[~fresh][0])} has a prediction of this predictor already; "
                "a prediction is stored once"
            )
        order, ids = order[fresh], ids[fresh]
        if len(ids) == 0:
            return 0
    n = len(ids)

    def sort(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[order]

    conn.execute(
        insert(t.prediction_blocks).values(
            predictor_id=predictor,
            n=n,
            pattern_ids=_bytes(ids, "<i8"),
            label_index=_bytes(sort(block.label_index), "<i4"),
            value=_bytes(sort(block.values), "<f8"),
            scores=_bytes(sort(block.scores), "<f8"),
            correct=_bytes(sort(block.correct), "u1"),
            loss=_bytes(sort(block.loss) if block.loss is not None else np.full(n, np.nan), "<f8"),
            created_at=timestamps.now_us(),
        )
    )
    return n


def read(conn: Connection, predictor: int) -> Predictions:
    """All of a predictor's predictions, by ascending pattern id."""
    classes_json = conn.execute(
        select(t.predictors.c.classes).where(t.predictors.c.id == predictor)
    ).scalar()
    classes = tuple(orjson.loads(classes_json)) if classes_json else None
    b = t.prediction_blocks.c
    rows = conn.execute(
        select(b.n, b.pattern_ids, b.label_index, b.value, b.scores, b.correct, b.loss)
        .where(b.predictor_id == predictor)
        .order_by(b.id)
    ).all()

    def column(i: int, dtype: str, width: int = 1) -> np.ndarray | None:
        if all(r[i] is None for r in rows):
            return None
        parts = []
        for r in rows:
            if r[i] is None:  # a block without this column: NaN (or 0) for its rows
                parts.append(np.full(r[0] * width, np.nan if dtype == "<f8" else 0, dtype=dtype))
            else:
                parts.append(np.frombuffer(r[i], dtype=dtype))
        out = np.concatenate(parts)
        return out.reshape(-1, width) if width > 1 else out

    ids = column(1, "<i8")
    if ids is None:
        empty = np.zeros(0)
        return Predictions(classes, np.zeros(0, dtype=np.int64), None, None, None, None, empty)
    k = len(classes) if classes else 1
    label_index = column(2, "<i4")
    values = column(3, "<f8")
    scores = column(4, "<f8", k)
    correct = column(5, "u1")
    loss = column(6, "<f8")
    assert loss is not None
    order = np.argsort(ids, kind="stable")
    return Predictions(
        classes,
        ids[order],
        None if label_index is None else label_index[order],
        None if values is None else values[order],
        None if scores is None else scores[order],
        None if correct is None else correct[order].astype(bool),
        loss[order],
    )


# --- the predictions table ---------------------------------------------------------


#: Rows of a JSON lines file encoded at a time: bounds the memory of a big export.
_JSON_ROWS = 50_000


def table(
    engine: Engine,
    predictor: Predictor,
    patterns: Sequence[int] | np.ndarray | str | PatternSet | None = None,
) -> pd.DataFrame:
    """A predictor's predictions with the patterns they are about, by ``pattern_id``.

    ``patterns``: None (every pattern it has a prediction for), pattern ids, a split
    (``validation``, ``test``, ``train``, ``all``: the active patterns) or a
    :class:`~trenches.PatternSet` (``Store.predictions`` makes one of ``problem:SLUG``).
    Columns: the inputs and the label, ``split``, ``source``, ``predicted``,
    ``prediction`` (the class as text, or the value), ``p_<class>`` when class scores
    were stored, ``right`` (null where undefined: a regression without a tolerance),
    ``loss`` and, for regression, ``error`` (prediction - label). A pattern of the set
    without a prediction is kept, with ``predicted`` False and nulls. A dataset column
    named like one of these is renamed ``data_<name>``. ``attrs`` holds the
    ``predictor`` and the ``pattern_set``.
    """
    from trenches.patterns.datasets import read_patterns

    ds = predictor.dataset
    with db.read(engine) as conn:
        found = read(conn, predictor.id)
    if isinstance(patterns, str) and patterns in SPLIT_SETS:
        # The active patterns of the split, the set predictors.split names, read with their
        # inputs at once rather than listed first and read again.
        name = f"{ds.name}:{patterns}"
        split = None if patterns == "all" else patterns
        inputs, info = read_patterns(ds, split=split, full_info=False)
    else:
        name, given = _pattern_set(predictor, found, patterns)
        inputs, info = read_patterns(ds, ids=np.unique(given).tolist(), full_info=False)
        _refuse_strangers(engine, predictor, given, inputs.index.to_numpy())
    frame = _join(predictor, found, inputs, info)
    frame.attrs.update(predictor=predictor.ref, pattern_set=name)
    return frame


def _pattern_set(
    predictor: Predictor,
    found: Predictions,
    patterns: Sequence[int] | np.ndarray | str | PatternSet | None,
) -> tuple[str, np.ndarray]:
    """The named set of pattern ids ``patterns`` stands for (ids in the caller's order)."""
    ds = predictor.dataset
    if patterns is None:
        return f"{ds.name}:predicted", found.pattern_ids
    if isinstance(patterns, str):
        raise InvalidInput(
            f"patterns {patterns!r} must be {', '.join(SPLIT_SETS)}, problem:SLUG or pattern ids"
        )
    if isinstance(patterns, PatternSet):
        return patterns.name, np.asarray(patterns.ids, dtype=np.int64)
    ids = np.asarray(patterns)
    if ids.size and (ids.ndim != 1 or ids.dtype.kind not in "iu"):
        raise InvalidInput("patterns must be a sequence of pattern ids (integers)")
    return f"{ds.name}:ids", ids.astype(np.int64).ravel()


def _refuse_strangers(
    engine: Engine, predictor: Predictor, given: np.ndarray, have: np.ndarray
) -> None:
    """Name the first of ``given`` that is not a pattern of the predictor's dataset."""
    strangers = given[~np.isin(given, have)]
    if len(strangers) == 0:
        return
    first = int(strangers[0])
    with db.read(engine) as conn:
        other = conn.execute(
            select(t.datasets.c.name)
            .select_from(t.patterns.join(t.datasets, t.patterns.c.dataset_id == t.datasets.c.id))
            .where(t.patterns.c.id == first)
        ).scalar()
    if other is None:
        raise InvalidInput(f"there is no pattern {first}")
    raise InvalidInput(
        f"pattern {first} belongs to dataset {other!r}, and {predictor.ref} predicts "
        f"{predictor.dataset.name!r}"
    )


def _join(
    predictor: Predictor, found: Predictions, inputs: pd.DataFrame, info: pd.DataFrame
) -> pd.DataFrame:
    """Patterns (their inputs and label; their split and source) beside their predictions."""
    import pandas as pd

    ds = predictor.dataset
    ids = inputs.index.to_numpy()
    at = np.searchsorted(found.pattern_ids, ids)
    has = np.zeros(len(ids), dtype=bool)
    inside = at < len(found)
    has[inside] = found.pattern_ids[at[inside]] == ids[inside]
    rows = at[has]
    regression = ds.task == "regression"
    truth = inputs[ds.label_column].to_numpy(dtype=np.float64) if regression else None
    columns: dict[str, Any] = {
        "split": info["split"],
        "source": info["source"],
        "predicted": has,
        "prediction": _spread(has, _predicted(found, rows, regression)),
    }
    if found.scores is not None and found.classes is not None:
        scores = _spread(has, found.scores[rows])
        columns.update({f"p_{c}": scores[:, j] for j, c in enumerate(found.classes)})
    verdict = verdicts.right(
        found, ids[has], ds, ds.tolerance, truth=None if truth is None else truth[has]
    )
    right = np.zeros(len(ids), dtype=bool)
    undefined = np.ones(len(ids), dtype=bool)
    if verdict is not None:
        right[has], undefined = verdict, ~has
    columns["right"] = pd.arrays.BooleanArray(right, undefined)
    columns["loss"] = _spread(has, found.loss[rows])
    if truth is not None:
        columns["error"] = columns["prediction"] - truth
    ours = pd.DataFrame(columns, index=inputs.index)
    renames = _clear_of(list(map(str, inputs.columns)), set(ours.columns))
    return pd.concat([inputs.rename(columns=renames), ours], axis=1)


def _predicted(found: Predictions, rows: np.ndarray, regression: bool) -> np.ndarray:
    """The prediction of each of ``rows``: the value, or the class as text (None for a
    class the predictor does not list)."""
    if regression:
        return found.values[rows] if found.values is not None else np.full(len(rows), np.nan)
    if found.label_index is None or found.classes is None:
        return np.full(len(rows), None, dtype=object)
    index = found.label_index[rows]
    out = np.asarray(found.classes, dtype=object)[np.maximum(index, 0)]
    out[index < 0] = None
    return np.asarray(out)


def _spread(has: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (one per True of ``has``) at their places; null at the others."""
    float_like = values.dtype.kind == "f"
    out = np.full((len(has), *values.shape[1:]), np.nan if float_like else None, values.dtype)
    out[has] = values
    return out


def _clear_of(theirs: list[str], ours: set[str]) -> dict[str, str]:
    """Renames that keep the dataset's columns clear of the names the table adds."""
    renames = {}
    for name in set(theirs) & ours:
        new = f"data_{name}"
        while new in ours or new in theirs:
            new = f"data_{new}"
        renames[name] = new
    return renames


def write_file(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a predictions table to Parquet, CSV or JSON lines, as the file's suffix
    says (``.parquet``, ``.csv``, ``.jsonl``), ``pattern_id`` first. The file appears
    whole or not at all."""
    from trenches.patterns.ingest import file_format

    out = Path(path)
    fmt = file_format(out)
    if not out.parent.is_dir():
        raise InvalidInput(f"there is no folder {str(out.parent)!r} to write to", file=str(out))
    part = out.with_name(f".{out.name}.part")
    try:
        if fmt == "parquet":
            frame.to_parquet(part)
        elif fmt == "csv":
            frame.to_csv(part)
        else:
            _write_json_lines(frame, part)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def _write_json_lines(frame: pd.DataFrame, path: Path) -> None:
    # orjson writes every float exactly (pandas' to_json keeps 15 decimals at most, so
    # a loss of 3e-9 would come out as 0.000000003); NaN and NA become null.
    with path.open("wb") as f:
        for start in range(0, len(frame), _JSON_ROWS):
            records = frame.iloc[start : start + _JSON_ROWS].reset_index().to_dict("records")
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
