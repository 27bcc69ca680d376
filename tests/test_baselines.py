"""Baselines: predictions from outside, imported for given patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import trenches
from trenches.errors import Conflict, InvalidInput, NotFound

from conftest import make_frame


@pytest.fixture
def tumours(store: trenches.Store) -> trenches.Dataset:
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(make_frame(50), source="expert")
    return ds


def test_a_baseline_is_imported_with_correctness_per_pattern(
    store: trenches.Store, tumours: trenches.Dataset, tmp_path: Path
) -> None:
    truth = tumours.patterns()["label"]
    guesses = ["benign"] * 20  # a lazy rule: always benign
    ids = list(truth.index[:20])
    path = tmp_path / "reads.csv"
    pd.DataFrame({"pattern_id": ids, "prediction": guesses}).to_csv(path, index=False)
    baseline = store.baselines.add("always-benign", dataset="tumours", predictions=path)
    assert baseline.predictions == 20 and baseline.dataset == "tumours"
    table = store.baselines.predictions("always-benign")
    assert list(table.index) == ids
    assert list(table["correct"]) == [truth[i] == "benign" for i in ids]


def test_probabilities_give_a_log_loss(store: trenches.Store, tumours: trenches.Dataset) -> None:
    truth = tumours.patterns()["label"]
    ids = list(truth.index[:10])
    p_benign = np.linspace(0.1, 0.9, 10)
    frame = pd.DataFrame(
        {
            "pattern_id": ids,
            "prediction": np.where(p_benign >= 0.5, "benign", "malignant"),
            "proba_benign": p_benign,
            "proba_malignant": 1 - p_benign,
        }
    )
    store.baselines.add("scored", dataset="tumours", predictions=frame)
    table = store.baselines.predictions("scored")
    expected = [
        -np.log(p if truth[i] == "benign" else 1 - p) for i, p in zip(ids, p_benign, strict=True)
    ]
    assert np.allclose(table["loss"], expected)


def test_regression_baselines_store_values_and_squared_errors(store: trenches.Store) -> None:
    ds = store.datasets.create("prices", task="regression", label="y")
    ds.add(pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [10.0, 20.0, 30.0]}), source="expert")
    frame = pd.DataFrame({"pattern_id": [1, 2, 3], "prediction": [11.0, 18.0, 30.0]})
    store.baselines.add("legacy", dataset="prices", predictions=frame)
    table = store.baselines.predictions("legacy")
    assert list(table["value"]) == [11.0, 18.0, 30.0]
    assert list(table["loss"]) == [1.0, 4.0, 0.0]


@pytest.mark.parametrize(
    ("rows", "row", "field", "message"),
    [
        ([(1, "benign"), (999, "benign")], 2, "pattern_id", "no pattern 999"),
        ([(1, "benign"), (1, "malignant")], 2, "pattern_id", "twice"),
        ([(1, "benign"), (2, None)], 2, "prediction", "missing"),
    ],
)
def test_bad_rows_are_refused_and_nothing_is_stored(
    store: trenches.Store,
    tumours: trenches.Dataset,
    rows: list[tuple[int, str | None]],
    row: int,
    field: str,
    message: str,
) -> None:
    frame = pd.DataFrame(rows, columns=["pattern_id", "prediction"])
    with pytest.raises(InvalidInput, match=message) as err:
        store.baselines.add("bad", dataset="tumours", predictions=frame)
    assert (err.value.row, err.value.field) == (row, field)
    with pytest.raises(NotFound):
        store.baselines.get("bad")


def test_patterns_of_another_dataset_and_reused_names_are_refused(
    store: trenches.Store, tumours: trenches.Dataset
) -> None:
    other = store.datasets.create("other", task="classification", label="label")
    other.add(make_frame(5, seed=1), source="expert")
    foreign = int(other.patterns().index[0])
    frame = pd.DataFrame({"pattern_id": [foreign], "prediction": ["benign"]})
    with pytest.raises(InvalidInput, match="another dataset"):
        store.baselines.add("x", dataset="tumours", predictions=frame)
    ok = pd.DataFrame({"pattern_id": [1], "prediction": ["benign"]})
    store.baselines.add("x", dataset="tumours", predictions=ok)
    with pytest.raises(Conflict, match="exists"):
        store.baselines.add("x", dataset="tumours", predictions=ok)
