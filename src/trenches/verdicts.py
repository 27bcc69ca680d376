"""Right or wrong: whether a stored prediction counts as right.

Classification: the predicted class is the label; the verdict is stored with each
prediction. Regression: the value is within a :class:`Tolerance` of the label, set per
dataset and overridable per problem. That verdict is worked out when it is read, so a
changed tolerance applies to every version alike, and every figure built on it says
which tolerance it used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

# Tolerance lives with the datasets that store it; it is named here too, where it is used.
from trenches.patterns.tolerance import Tolerance as Tolerance
from trenches.patterns.tolerance import tolerance_for as tolerance_for

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset
    from trenches.predictions import Predictions


def labels(dataset: Dataset, ids: np.ndarray) -> np.ndarray:
    """The labels of the patterns ``ids`` (ascending), as floats (regression)."""
    from trenches.patterns.frames import read_patterns

    frame, _ = read_patterns(dataset, ids=ids.tolist(), full_info=False, with_inputs=False)
    return np.asarray(frame[dataset.label_column].to_numpy(dtype=np.float64))


def right(
    found: Predictions,
    ids: np.ndarray,
    dataset: Dataset,
    tolerance: Tolerance | None,
    *,
    truth: np.ndarray | None = None,
) -> np.ndarray | None:
    """Right (True) or wrong for ``found``'s predictions on ``ids`` (ascending, each
    predicted); None where right and wrong are not defined: a regression without a
    tolerance. ``truth`` spares reading the labels again (regression)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=bool)
    rows = np.searchsorted(found.pattern_ids, ids)
    if found.correct is not None:
        return found.correct[rows]
    if found.values is None or tolerance is None:
        return None
    if truth is None:
        truth = labels(dataset, ids)
    return tolerance.right(found.values[rows], truth)


def undefined_reason(dataset: Dataset) -> str:
    """Why right and wrong are undefined for a regression dataset, and what to do."""
    return (
        f"{dataset.name} is a regression dataset without a tolerance, so no prediction "
        f"is right or wrong; set one: trenches data tolerance {dataset.name} 0.5 (or 10%)"
    )
