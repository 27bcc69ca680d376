"""The prediction store: blocks of arrays, each (predictor, pattern) stored once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trenches
from trenches import predictions
from trenches.db.engine import read, write
from trenches.errors import Conflict
from trenches.patterns import inputs as inp
from trenches.predict import class_positions

from conftest import make_frame


@pytest.fixture
def predictor(store: trenches.Store) -> int:
    ds = store.datasets.create("d", task="classification", label="label")
    ds.add(make_frame(20), source="expert")  # pattern ids 1..20
    with write(store.engine) as conn:
        from trenches.db import schema as t
        from trenches.db.engine import insert_returning_id

        baseline = insert_returning_id(
            conn, t.baselines, {"name": "b", "dataset_id": ds.id, "created_at": 0}
        )
        return predictions.make_predictor(conn, baseline_id=baseline, classes=["no", "yes"])


def test_blocks_read_back_as_arrays_by_pattern_id(store: trenches.Store, predictor: int) -> None:
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                np.array([5, 2, 9]),
                label_index=np.array([1, 0, 1]),
                scores=np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]),
                correct=np.array([True, False, True]),
                loss=np.array([0.22, 0.51, 0.1]),
            ),
        )
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(np.array([1]), label_index=np.array([0]), correct=np.array([True])),
        )
    with read(store.engine) as conn:
        found = predictions.read(conn, predictor)
        ids = predictions.predicted_ids(conn, predictor)
    assert list(found.pattern_ids) == [1, 2, 5, 9] == list(ids)
    assert list(found.labels) == ["no", "no", "yes", "yes"]  # type: ignore[arg-type]
    assert list(found.correct) == [True, False, True, True]  # type: ignore[arg-type]
    assert np.isnan(found.scores[0]).all()  # type: ignore[index]
    assert np.allclose(found.scores[1:], [[0.6, 0.4], [0.2, 0.8], [0.1, 0.9]])  # type: ignore[index]
    assert np.isnan(found.loss[0]) and np.allclose(found.loss[1:], [0.51, 0.22, 0.1])


def test_a_prediction_is_stored_once(store: trenches.Store, predictor: int) -> None:
    with write(store.engine) as conn:
        predictions.write_block(
            conn, predictor, predictions.Block(np.array([3, 4]), label_index=np.array([0, 1]))
        )
    with pytest.raises(Conflict, match="pattern 4 has a prediction"), write(store.engine) as conn:
        predictions.write_block(
            conn, predictor, predictions.Block(np.array([4, 5]), label_index=np.array([0, 1]))
        )
    with read(store.engine) as conn:
        assert list(predictions.predicted_ids(conn, predictor)) == [3, 4]


def test_an_empty_predictor_reads_as_empty(store: trenches.Store, predictor: int) -> None:
    with read(store.engine) as conn:
        found = predictions.read(conn, predictor)
    assert len(found) == 0 and found.classes == ("no", "yes")


def test_some_predictions_read_only_what_is_asked(store: trenches.Store, predictor: int) -> None:
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                np.array([5, 2, 9, 12]),
                label_index=np.array([1, 0, 1, 0]),
                scores=np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]]),
                correct=np.array([True, False, True, False]),
                loss=np.array([0.22, 0.51, 0.1, 0.3]),
            ),
        )
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(np.array([1, 20]), label_index=np.array([0, 1])),
        )
    with read(store.engine) as conn:
        every = predictions.read(conn, predictor)
        some = predictions.read_some(conn, predictor, [20, 9, 3, 2, 1])
        none = predictions.read_some(conn, predictor, [3, 4])
    assert list(some.pattern_ids) == [1, 2, 9, 20]
    rows = np.searchsorted(every.pattern_ids, some.pattern_ids)
    assert list(some.labels) == list(every.labels[rows])  # type: ignore[index,arg-type]
    assert list(some.correct) == list(every.correct[rows])  # type: ignore[index,arg-type]
    assert np.allclose(some.scores[1:3], every.scores[rows][1:3])  # type: ignore[index]
    assert np.isnan(some.scores[0]).all()  # type: ignore[index]
    assert len(none) == 0 and none.classes == ("no", "yes")


def test_some_predictions_of_large_blocks_are_found_through_their_skeleton(
    store: trenches.Store, predictor: int
) -> None:
    # Ids need not exist as patterns here: the blocks alone are read.
    rng = np.random.default_rng(3)
    ids = np.sort(rng.choice(np.arange(1, 10**6), 30_000, replace=False))
    labels = rng.integers(0, 2, len(ids))
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                ids,
                label_index=labels,
                scores=np.stack([1 - labels * 0.9, labels * 0.9 + 0.05], axis=1),
                correct=labels == 1,
            ),
        )
    wanted = np.concatenate(
        [ids[[0, 1, 2, 5000, 5001, 29_999]], [ids[100] + 1 if ids[100] + 1 not in ids else 0]]
    )
    with read(store.engine) as conn:
        some = predictions.read_some(conn, predictor, wanted)
    expected = ids[[0, 1, 2, 5000, 5001, 29_999]]
    assert list(some.pattern_ids) == list(expected)
    rows = np.searchsorted(ids, expected)
    assert list(some.label_index) == list(labels[rows])  # type: ignore[arg-type]
    assert list(some.correct) == list(labels[rows] == 1)  # type: ignore[arg-type]
    assert np.allclose(some.scores[:, 1], labels[rows] * 0.9 + 0.05)  # type: ignore[index]


def test_reading_some_columns_leaves_the_others_out(store: trenches.Store, predictor: int) -> None:
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                np.array([4, 3]),
                label_index=np.array([1, 0]),
                correct=np.array([True, False]),
                loss=np.array([0.1, 0.2]),
            ),
        )
    with read(store.engine) as conn:
        found = predictions.read(conn, predictor, columns=("correct",))
        some = predictions.read_some(conn, predictor, [3], columns=("label_index",))
    assert list(found.pattern_ids) == [3, 4] and list(found.correct) == [False, True]  # type: ignore[arg-type]
    assert found.label_index is None and np.isnan(found.loss).all()
    assert list(some.label_index) == [0] and some.correct is None  # type: ignore[arg-type]


LABELS = {
    "string": st.lists(st.sampled_from(["a", "b", "c", "d", ""]), max_size=30).map(
        lambda xs: np.array(xs, dtype=object)
    ),
    "integer": st.lists(st.integers(-3, 3), max_size=30).map(lambda xs: np.array(xs, np.int64)),
    "number": st.lists(
        st.sampled_from([0.0, -0.0, 1.0, 2.5, float("nan"), 1e300]), max_size=30
    ).map(lambda xs: np.array(xs, dtype=np.float64)),
    "boolean": st.lists(st.booleans(), max_size=30).map(lambda xs: np.array(xs, dtype=bool)),
    # Several kinds in one array: 1, 1.0 and True are one value to a hash, not as text.
    "mixed": st.lists(st.sampled_from([1, 1.0, True, "1", "a", None]), max_size=30).map(
        lambda xs: np.array(xs, dtype=object)
    ),
}


@settings(max_examples=150, deadline=None)
@given(
    case=st.sampled_from(sorted(LABELS)).flatmap(lambda k: st.tuples(st.just(k), LABELS[k])),
    classes=st.lists(
        st.sampled_from(["a", "b", "", "1", "1.0", "True", "true", "0", "2.5", "nan"]),
        unique=True,
        max_size=6,
    ),
)
def test_class_positions_are_the_texts_positions_among_the_classes(
    case: tuple[str, np.ndarray], classes: list[str]
) -> None:
    """Worked out once per distinct label, each label's position among the classes and
    its text are what the label's own text gives, row by row."""
    kind, values = case
    label_type = "string" if kind == "mixed" else kind
    positions, texts = class_positions(values, label_type, pd.Index(classes, dtype=object))
    want = inp.label_to_text(values, label_type)
    assert texts.tolist() == want
    assert positions.tolist() == [classes.index(t) if t in classes else -1 for t in want]
