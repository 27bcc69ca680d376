"""Batch prediction of a model version over patterns, into the prediction store.

The model is loaded once and asked for a whole chunk at a time; each chunk is stored
in its own transaction. Only patterns without a prediction of that version are
predicted, so a prediction job can be run again, stopped and resumed, or run by two
processes at once, and it never computes a prediction twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np
import pandas as pd

from trenches import predictions as store_of
from trenches.db.engine import read, write
from trenches.errors import InvalidInput
from trenches.patterns import inputs as inp
from trenches.patterns.feeds import feeds
from trenches.patterns.frames import read_patterns, splits_of
from trenches.tables.arrays import ascending_unique

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.predictors import Predictor

T = TypeVar("T")


class Elsewhere(Protocol):
    """Where a prediction job can run instead of this process (a Dask cluster:
    :class:`trenches.compute.Cluster`)."""

    def predict(
        self,
        predictor: Predictor,
        todo: np.ndarray,
        *,
        engine: Engine,
        trusted: bool,
        progress: Callable[[int], None] | None,
        chunk: int,
        split: str | None,
    ) -> int:
        """Predict and store ``todo``; the number stored."""
        ...


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


def predict(  # noqa: PLR0913 (a prediction job's options)
    engine: Engine,
    models: Models,
    predictor: Predictor,
    pattern_ids: Sequence[int] | np.ndarray,
    *,
    trusted: bool = False,
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    split: str | None = None,
    cluster: Elsewhere | None = None,
) -> PredictResult:
    """Predict the patterns ``pattern_ids`` with the version ``predictor`` where it has
    not, loading it from ``models``. ``split``: the split most of them are of, when the
    caller knows it (a split's evaluation): the rows of other splits are then read
    only for the ids it did not hold. ``cluster``: a Dask cluster that predicts the
    patterns of a columnar dataset instead of this process (see :mod:`trenches.compute`).

    A version with an ONNX form predicts through ONNX Runtime (verified at registration
    to give the native model's labels and probabilities to 1e-5, and far quicker to
    load); otherwise through its native form.
    """
    version = predictor.version
    dataset = predictor.dataset
    wanted, todo = to_predict(engine, predictor, pattern_ids)
    if version is None or len(todo) == 0:
        return PredictResult(predictor.ref, predictor.id, len(wanted), 0)
    columnar = on_columns(predictor)
    if cluster is not None and columnar:
        computed = cluster.predict(
            predictor,
            todo,
            engine=engine,
            trusted=trusted,
            progress=progress,
            chunk=chunk,
            split=split,
        )
        return PredictResult(version.ref, predictor.id, len(wanted), computed)
    model = load_model(models, version, trusted)
    computed = 0
    for batch in _chunks(todo, chunk) if columnar else _batches(dataset, todo, chunk):
        if isinstance(batch, np.ndarray):
            block = predicted_block(model, predictor, batch, split)
            size = len(batch)
        else:
            block = _read_and_predict(model, predictor, batch)
            size = sum(len(ids) for _, ids in batch)
        with write(engine) as conn:
            computed += store_of.write_block(conn, predictor.id, block, skip_existing=True)
        if progress is not None:
            progress(size)
    return PredictResult(version.ref, predictor.id, len(wanted), computed)


def to_predict(
    engine: Engine,
    predictor: Predictor,
    pattern_ids: Sequence[int] | np.ndarray,
    have: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Of ``pattern_ids``: all of them (ascending, unique), and those the version
    ``predictor`` has no prediction for (``have``: its predictions among them, when
    already read); a baseline, or a version that takes an input its dataset lacks, is
    an error."""
    version = predictor.version
    if version is None:
        raise InvalidInput(
            f"{predictor.ref} is a baseline: its predictions were given, it cannot predict"
        )
    wanted = ascending_unique(pattern_ids)
    if have is None:
        with read(engine) as conn:
            have = store_of.predicted_ids(conn, predictor.id, wanted)
    todo = np.setdiff1d(wanted, have, assume_unique=True)
    dataset = predictor.dataset
    if len(todo) and on_columns(predictor):
        _check_columns(version, dataset, dataset.schema.names if dataset.schema else [])
    return wanted, todo


def on_columns(predictor: Predictor) -> bool:
    """Whether the predictor's dataset keeps its patterns in its table (columnar): what
    a cluster predicts from."""
    dataset = predictor.dataset
    return bool(dataset.columnar and dataset.schema is not None)


def load_model(
    models: Models, version: ModelVersion, trusted: bool, threads: int | None = None
) -> Any:
    """The version's model as prediction runs it: its ONNX form when it has one (with
    ``threads`` of ONNX Runtime's own; None: as many as the machine has cores)."""
    fmt = "onnx" if "onnx" in version.formats else "native"
    return models.load(version, format=fmt, trusted=trusted, threads=threads)


def predicted_block(
    model: Any,
    predictor: Predictor,
    ids: np.ndarray,
    split: str | None = None,
    *,
    ahead: bool = True,
) -> store_of.Block:
    """The predictions of ``model`` (``predictor``'s) on the patterns ``ids`` of its
    columnar dataset, read a few row groups at a time: with ``ahead``, the next on a
    thread while it predicts (a second core's work); without, one after the other."""
    version, dataset = predictor.version, predictor.dataset
    assert version is not None
    classes, label_type = _classes(predictor)
    dtype = getattr(model, "input_dtype", np.float64)  # an ONNX model's
    blocks = []
    read = feeds(dataset, ids, version.signature.columns, split=split, dtype=dtype)
    for feed in _ahead(read) if ahead else read:
        truth = _Truth.of_codes(feed.codes, feed.labels, label_type, classes)
        blocks.append(_predict_block(model, feed.inputs, feed.ids, truth, classes, label_type))
    return store_of.joined_blocks(blocks)


def _read_and_predict(
    model: Any, predictor: Predictor, batch: list[tuple[str | None, np.ndarray]]
) -> store_of.Block:
    """The predictions on a batch of an earlier release's dataset (its rows in SQL)."""
    version, dataset = predictor.version, predictor.dataset
    assert version is not None
    classes, label_type = _classes(predictor)
    blocks = []
    for part_split, ids in batch:
        frame, _ = read_patterns(dataset, split=part_split, ids=ids, full_info=False)
        X = model_inputs(version, dataset, frame)
        values = frame[dataset.label_column].to_numpy()
        truth = _Truth.of_values(values, label_type, classes)
        found = frame.index.to_numpy()
        blocks.append(_predict_block(model, X, found, truth, classes, label_type))
    return store_of.joined_blocks(blocks)


def _classes(predictor: Predictor) -> tuple[pd.Index | None, str]:
    """The classes the predictor's labels are positions among (None: a regression's
    values), and the type of its dataset's labels."""
    dataset = predictor.dataset
    classes = (
        None
        if dataset.task == "regression" or predictor.classes is None
        else pd.Index(list(predictor.classes), dtype=object)
    )
    return classes, dataset.label_type or "string"


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, each next one made on a thread while the caller works on the last:
    reading the next patterns (pyarrow, which lets go of the interpreter) goes on
    while the model predicts."""
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="trenches-read") as reader:
        coming = reader.submit(next, items, done)
        while (item := coming.result()) is not done:
            coming = reader.submit(next, items, done)
            yield cast(T, item)


def _chunks(ids: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """``ids`` in stored batches of up to ``size``."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


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
    _check_columns(version, dataset, frame.columns)
    return frame[list(version.signature.columns)]


def _check_columns(version: ModelVersion, dataset: Dataset, held: Sequence[str]) -> None:
    """That ``dataset`` (whose columns are ``held``) has every input ``version`` takes."""
    missing = [c for c in version.signature.columns if c not in held]
    if missing:
        raise InvalidInput(
            f"{version.ref} takes the input {missing[0]!r}, which dataset "
            f"{dataset.name!r} does not have",
            field=missing[0],
        )


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


@dataclass(frozen=True)
class _Truth:
    """The labels of a block of patterns: as numbers (a regression's, or those of a
    predictor without classes), or as each one's position among the classes (-1: none)
    and its text as stored."""

    y: np.ndarray | None = None
    index: np.ndarray | None = None
    text: np.ndarray | None = None

    @classmethod
    def of_values(cls, values: np.ndarray, label_type: str, classes: pd.Index | None) -> _Truth:
        """From the labels as their type's values."""
        if classes is None:
            return cls(y=np.asarray(values).astype(np.float64))
        index, text = class_positions(np.asarray(values), label_type, classes)
        return cls(index=index, text=text)

    @classmethod
    def of_codes(
        cls, codes: np.ndarray, texts: np.ndarray, label_type: str, classes: pd.Index | None
    ) -> _Truth:
        """From the labels as stored: codes into their distinct ``texts`` (-1: none)."""
        if (codes < 0).any():  # never stored, but not taken for the last text either
            raise RuntimeError("a stored pattern has no label")
        if classes is None:
            y = np.asarray(inp.labels_from_text(list(texts), label_type)).astype(np.float64)
            return cls(y=y[codes])
        return cls(index=classes.get_indexer(texts).astype(np.int64)[codes], text=texts[codes])


def _predict_block(
    model: Any,
    X: Any,
    pattern_ids: np.ndarray,
    truth: _Truth,
    classes: pd.Index | None,
    label_type: str,
) -> store_of.Block:
    """The block of ``model``'s predictions on the patterns ``pattern_ids`` (inputs
    ``X``, labels ``truth``). A model that gives labels and probabilities from one run
    (ONNX Runtime's, or one call of a service) is run once."""
    scores = None
    both = hasattr(model, "predict_with_proba")  # its scores None: it has none to give
    if both:
        predicted, scores = model.predict_with_proba(X)
    else:
        predicted = model.predict(X)
    predicted = np.asarray(predicted)
    if classes is None:
        assert truth.y is not None
        values = predicted.astype(np.float64).ravel()
        return store_of.Block(pattern_ids, values=values, loss=(values - truth.y) ** 2)
    assert truth.index is not None and truth.text is not None
    label_index, predicted_text = class_positions(predicted, label_type, classes)
    label_index = label_index.astype(np.int32)
    true_index = truth.index
    correct = (label_index == true_index) & (label_index >= 0)
    neither = (label_index < 0) & (true_index < 0)
    if neither.any():  # two labels outside the classes: right when they are the same
        correct[neither] = predicted_text[neither] == truth.text[neither]
    loss = np.full(len(pattern_ids), np.nan)
    if scores is None and not both and hasattr(model, "predict_proba"):
        scores = model.predict_proba(X)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        p_true = np.where(
            true_index >= 0, scores[np.arange(len(scores)), np.maximum(true_index, 0)], 0.0
        )
        loss = -np.log(np.maximum(p_true, _EPS))
    return store_of.Block(
        pattern_ids, label_index=label_index, scores=scores, correct=correct, loss=loss
    )
