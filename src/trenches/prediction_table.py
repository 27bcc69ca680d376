"""Predictions beside the patterns they are about: one DataFrame per predictor and set
of patterns (``store.predictions``), and its export to a file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select

from trenches import verdicts
from trenches.db import engine as db
from trenches.db import schema as t
from trenches.errors import InvalidInput
from trenches.patterns.lookup import owners
from trenches.patterns.sets import SPLIT_SETS, PatternSet
from trenches.predictions import Predictions, read

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from trenches.predictors import Predictor

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
        owner, _ = owners(conn, [first])
        other = conn.execute(
            select(t.datasets.c.name).where(t.datasets.c.id == int(owner[0]))
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
    renames = clear_of(list(map(str, inputs.columns)), set(ours.columns))
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


def clear_of(theirs: list[str], ours: set[str]) -> dict[str, str]:
    """Renames that keep the dataset's (or an input file's) columns ``theirs`` clear of
    the names the table adds (``ours``): ``name`` becomes ``data_name`` (and
    ``data_data_name`` when that is taken too)."""
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
