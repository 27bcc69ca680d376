"""Right or wrong for regression: a tolerance, absolute, relative or both."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from trenches.errors import InvalidInput
from trenches.verdicts import Tolerance


@pytest.mark.parametrize(
    ("text", "absolute", "relative"),
    [
        ("0.5", 0.5, None),
        ("10%", None, 0.1),
        ("0.5 or 10%", 0.5, 0.1),
        ("10%, 0.5", 0.5, 0.1),
        ("±25", 25.0, None),
        ("+/- 2.5 or ±7.5%", 2.5, 0.075),
        ("1e-3", 0.001, None),
    ],
)
def test_a_tolerance_is_read_from_its_text(
    text: str, absolute: float | None, relative: float | None
) -> None:
    t = Tolerance.parse(text)
    assert t.absolute == pytest.approx(absolute)
    assert t.relative == pytest.approx(relative)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "give an absolute bound"),
        ("abc", "'abc' is not a number"),
        ("5% or 10%", "two relative bounds"),
        ("1 or 2", "two absolute bounds"),
        ("-1", "not a number or a percentage"),
        ("1 or 2 or 3%", "give an absolute bound"),
    ],
)
def test_a_bad_tolerance_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        Tolerance.parse(text)


def test_a_tolerance_needs_a_bound_and_no_negative_one() -> None:
    with pytest.raises(InvalidInput, match="needs an absolute or a relative bound"):
        Tolerance()
    with pytest.raises(InvalidInput, match=">= 0"):
        Tolerance(absolute=-0.1)
    with pytest.raises(InvalidInput, match=">= 0"):
        Tolerance(relative=float("nan"))


def test_the_looser_bound_decides() -> None:
    t = Tolerance(absolute=2.0, relative=0.1)
    truth = np.array([5.0, 100.0, -100.0, 0.0])
    assert t.bound(truth).tolist() == [2.0, 10.0, 10.0, 2.0]
    predicted = np.array([6.9, 109.0, -111.0, np.nan])
    assert t.right(predicted, truth).tolist() == [True, True, False, False]


finite = st.floats(-1e6, 1e6, allow_nan=False)
tolerances = st.builds(
    Tolerance,
    absolute=st.none() | st.floats(0, 1e3, allow_nan=False),
    relative=st.floats(0, 2, allow_nan=False),
) | st.builds(Tolerance, absolute=st.floats(0, 1e3, allow_nan=False))


@given(
    tolerances,
    hnp.arrays(np.float64, st.integers(0, 30), elements=finite),
    st.data(),
)
def test_right_is_within_the_looser_of_the_two_bounds(
    t: Tolerance, truth: np.ndarray, data: st.DataObject
) -> None:
    predicted = data.draw(hnp.arrays(np.float64, truth.shape, elements=finite))
    expected = [
        abs(p - y) <= max(t.absolute or 0.0, (t.relative or 0.0) * abs(y))
        for p, y in zip(predicted.tolist(), truth.tolist(), strict=True)
    ]
    assert t.right(predicted, truth).tolist() == expected


@given(tolerances)
def test_a_tolerance_reads_back_from_its_text(t: Tolerance) -> None:
    again = Tolerance.parse(str(t))
    for mine, read in ((t.absolute, again.absolute), (t.relative, again.relative)):
        # str() shows six significant digits, as people write tolerances.
        assert (read is None) == (mine is None)
        if mine is not None:
            assert read == pytest.approx(mine, rel=1e-5, abs=1e-9)
