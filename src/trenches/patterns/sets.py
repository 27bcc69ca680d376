"""Named sets of patterns: a split's active patterns, a problem's, any ids with a name.
Every figure trenches gives is over one of these, and says which."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from trenches.errors import InvalidInput
from trenches.patterns.frames import Members, ids_and_labels

if TYPE_CHECKING:
    import pandas as pd

    from trenches.patterns.datasets import Dataset

#: The pattern sets a split's name stands for: its active patterns, or all of them.
SPLIT_SETS = ("validation", "test", "train", "all")


@dataclass(frozen=True)
class PatternSet:
    """A named set of pattern ids of one dataset, ascending: ``cancer:validation``,
    ``problem:thin-margins``."""

    name: str
    ids: np.ndarray = field(compare=False, repr=False)
    #: The split the set is (a part) of, when one is: reads of it skip the others.
    split: str | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)


def _one_split(name: str) -> str | None:
    """The split a set's name stands for (None: ``all``); an unknown name refused."""
    if name not in SPLIT_SETS:
        raise InvalidInput(f"split {name!r} must be train, validation, test or all")
    return None if name == "all" else name


def split(dataset: Dataset, name: str) -> PatternSet:
    """The active patterns of one split of ``dataset`` (or ``all``)."""
    one = _one_split(name)
    return PatternSet(f"{dataset.name}:{name}", dataset.pattern_ids(one), one)


def split_and_labels(dataset: Dataset, name: str) -> tuple[PatternSet, pd.Categorical]:
    """:func:`split`, and the stored labels of its patterns (as text, in id order) read
    with its ids: what measuring a classifier on it needs of the dataset."""
    one = _one_split(name)
    ids, labels = ids_and_labels(dataset, Members(), one)
    return PatternSet(f"{dataset.name}:{name}", ids, one), labels
