"""An import's labels are checked and converted a distinct value at a time for text,
integer, boolean and category columns: the stored label of each row is the one the
row-at-a-time path gives for the same values (a Python object column)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trenches
from trenches.errors import InvalidInput
from trenches.patterns.imports import import_labels


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[trenches.Store]:
    with trenches.open(tmp_path_factory.mktemp("labels") / "store") as s:
        yield s


_made = iter(range(10**9))


def _dataset(store: trenches.Store) -> trenches.Dataset:
    return store.datasets.create(f"d{next(_made)}", task="classification", label="y")


WORDS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=6
).filter(lambda s: s.strip() != "")


@settings(max_examples=60, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=40))
def test_text_labels_by_value_equal_row_by_row(store: trenches.Store, words: list[str]) -> None:
    rows = pd.Series(words, dtype=object)
    by_row = import_labels(_dataset(store), rows, "string", None, False)
    for dtype in ("str", "category"):
        by_value = import_labels(_dataset(store), rows.astype(dtype), "string", None, False)
        assert by_value.texts() == by_row.texts() == words


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40))
def test_integer_labels_by_value_equal_row_by_row(store: trenches.Store, values: list[int]) -> None:
    by_row = import_labels(_dataset(store), pd.Series(values, dtype=object), "integer", None, False)
    by_value = import_labels(
        _dataset(store), pd.Series(values, dtype="int64"), "integer", None, False
    )
    assert by_value.texts() == by_row.texts() == [str(v) for v in values]
    assert len(by_value.values) == len(set(values))


def test_a_missing_text_label_names_its_row(store: trenches.Store) -> None:
    labels = pd.Series(["cat", "dog", None, "cat"], dtype="str")
    with pytest.raises(InvalidInput, match="label is missing") as e:
        import_labels(_dataset(store), labels, "string", "f.csv", True)
    assert e.value.row == 3


def test_an_integer_label_that_is_not_one_names_its_row(store: trenches.Store) -> None:
    labels = pd.Series(["1", "2", "two", "1"], dtype="str")
    with pytest.raises(InvalidInput, match="two") as e:
        import_labels(_dataset(store), labels, "integer", "f.csv", True)
    assert e.value.row == 3


def test_distinct_values_that_read_as_one_text_share_a_code(store: trenches.Store) -> None:
    coded = import_labels(_dataset(store), pd.Series([True, False, True]), "boolean", None, False)
    assert coded.texts() == ["true", "false", "true"]
    assert np.array_equal(coded.codes, [0, 1, 0])
