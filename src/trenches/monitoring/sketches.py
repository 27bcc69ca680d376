"""Small summaries of a column of one part of a window, merged into the summary of the
whole: what a drift check over a window too large for one memory (or spread over a
Dask cluster) keeps of each part instead of its rows.

Every figure is made of integers (counts), so merging parts in any grouping gives the
very sketch of the whole, bit for bit. What the figures of :mod:`.figures` get from a
merged sketch, and how close they are to those of the whole sample:

- **exact**: the rows, the missing rate, PSI (counts over the reference's deciles),
  every categorical figure (counts per category: chi-square, Jensen-Shannon, PSI,
  unseen categories), the out-of-vocabulary rate of a text column, and the
  Kolmogorov-Smirnov test (statistic and p-value): it is chosen only when one side
  has at most ``small`` values, and then either the current side is kept whole (a
  sketch keeps its values while it has at most ``small``), or the reference is small
  and the sketch counts the current values below, at and between each of its distinct
  values, which is all the statistic depends on;
- **within a stated bound**: the normalised Wasserstein distance (both sides large).
  The current values are counted in logarithmic buckets around the reference's
  median, in units of its standard deviation, each bucket no wider than
  :data:`ALPHA` of its distance from the median (values nearer than :data:`NEAR`
  deviations are one bucket); the distance is computed with each value at its
  bucket's middle, and differs from the exact one by at most the mean displacement
  of the values, which the sketch knows: the report's ``why`` states it ("within
  0.00041"). With the default ALPHA it is about a thousandth of the distance of the
  values from the median, in deviations: well under the 0.1 a column drifts at.

No sketch library is a dependency of trenches, and none gives all of this: a quantile
sketch (t-digest, KLL) merges only approximately and would make the exact figures
approximate; the buckets are a few NumPy calls (the idea is DDSketch's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches.monitoring import stats

if TYPE_CHECKING:
    import pandas as pd

#: The relative width of a bucket: a value is at most this share of its distance from
#: the reference's median away from its bucket's middle.
ALPHA = 1 / 1024
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
#: Values nearer the reference's median than this many of its standard deviations
#: share one bucket (and are counted as at the median).
NEAR = 2.0**-20
#: The highest bucket: infinite values (no finite double gets near it).
_TOP = 400_000
#: SciPy's Kolmogorov-Smirnov test is exact up to this many values a side.
_KS_EXACT_UP_TO = 10_000


@dataclass(frozen=True)
class Grid:
    """How every part sketches one numeric column, fixed from the reference before
    any part is read: values kept whole while at most ``keep``; the PSI bins
    (``edges``); the reference's distinct values (``points``) when it has at most
    ``keep``, else the buckets' ``centre`` and ``scale``."""

    keep: int
    edges: np.ndarray
    points: np.ndarray | None
    centre: float
    scale: float

    @classmethod
    def of(cls, ref_sorted: np.ndarray, keep: int) -> Grid:
        """The grid of a reference sample (sorted, without missing values)."""
        n = len(ref_sorted)
        edges = stats.decile_edges(ref_sorted)
        if n <= keep:
            return cls(keep, edges, np.unique(ref_sorted), 0.0, 1.0)
        sd = float(np.std(ref_sorted))
        scale = sd if sd > 0 and math.isfinite(sd) else 1.0
        centre = float(ref_sorted[n // 2])
        return cls(keep, edges, None, centre if math.isfinite(centre) else 0.0, scale)


@dataclass(frozen=True)
class NumericSketch:
    """A numeric column of some rows: how many, how many missing, the values while
    few, and counts over the grid's bins, points and buckets."""

    rows: int
    missing: int
    values: np.ndarray | None  # sorted; None: more than the grid keeps
    bins: np.ndarray  # over the PSI bins
    at_points: np.ndarray | None  # below, at, between, ... above the points
    buckets: np.ndarray  # the occupied buckets' signed numbers, ascending
    counts: np.ndarray  # the values in each
    centred: int  # values exactly at the centre

    @property
    def count(self) -> int:
        return self.rows - self.missing


def sketch_numbers(x: np.ndarray, grid: Grid) -> NumericSketch:
    """The sketch of float64 values (NaN: missing)."""
    nan = np.isnan(x)
    v = x[~nan] if nan.any() else x
    values = np.sort(v) if len(v) <= grid.keep else None
    bins = np.bincount(np.searchsorted(grid.edges, v, side="left"), minlength=len(grid.edges) + 1)
    at_points = None
    buckets = counts = np.zeros(0, dtype=np.int64)
    if grid.points is not None:
        k = np.searchsorted(grid.points, v, side="left")
        inside = k < len(grid.points)
        equal = np.zeros(len(v), dtype=np.int64)
        equal[inside] = grid.points[k[inside]] == v[inside]
        at_points = np.bincount(2 * k + equal, minlength=2 * len(grid.points) + 1)
    elif len(v):
        y = (v - grid.centre) / grid.scale
        size = np.abs(y)
        index = np.zeros(len(v), dtype=np.int64)
        far = size >= NEAR
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            steps = np.ceil(np.log(size[far] / NEAR) / _LOG_GAMMA)
        index[far] = np.sign(y[far]).astype(np.int64) * np.clip(steps, 1, _TOP).astype(np.int64)
        low = int(index.min())
        dense = np.bincount(index - low)
        occupied = np.flatnonzero(dense)
        buckets, counts = occupied.astype(np.int64) + low, dense[occupied].astype(np.int64)
    return NumericSketch(
        rows=len(x),
        missing=int(nan.sum()),
        values=values,
        bins=bins.astype(np.int64),
        at_points=None if at_points is None else at_points.astype(np.int64),
        buckets=buckets,
        counts=counts,
        centred=int((v == grid.centre).sum()) if grid.points is None else 0,
    )


def merge_numbers(a: NumericSketch, b: NumericSketch, grid: Grid) -> NumericSketch:
    """The sketch of the rows of ``a`` and ``b`` together."""
    values = None
    if a.values is not None and b.values is not None and a.count + b.count <= grid.keep:
        values = np.sort(np.concatenate([a.values, b.values]))
    at_points = None
    if a.at_points is not None and b.at_points is not None:
        at_points = a.at_points + b.at_points
    both = np.concatenate([a.buckets, b.buckets])
    buckets, where = np.unique(both, return_inverse=True)
    counts = np.zeros(len(buckets), dtype=np.int64)
    np.add.at(counts, where, np.concatenate([a.counts, b.counts]))
    return NumericSketch(
        rows=a.rows + b.rows,
        missing=a.missing + b.missing,
        values=values,
        bins=a.bins + b.bins,
        at_points=at_points,
        buckets=buckets,
        counts=counts,
        centred=a.centred + b.centred,
    )


@dataclass(frozen=True)
class Sketched:
    """The current side of a numeric comparison as a merged sketch
    (a :class:`~trenches.monitoring.figures.NumericSide`)."""

    sketch: NumericSketch
    grid: Grid

    @property
    def rows(self) -> int:
        return self.sketch.rows

    @property
    def missing(self) -> int:
        return self.sketch.missing

    @property
    def count(self) -> int:
        return self.sketch.count

    def wasserstein(self, a: np.ndarray) -> tuple[float, str]:
        s, grid = self.sketch, self.grid
        if s.values is not None:
            return stats.normalised_wasserstein(a, s.values), ""
        sd = float(np.std(a))
        if sd == 0.0:  # a constant reference: exact from the values at it
            return (0.0 if s.centred == s.count else float("inf")), ""
        middles, bound = self.middles()
        distance = _weighted_wasserstein(a, middles, s.counts) / sd
        bound *= grid.scale / sd
        return distance, f"; from the window's sketch: within {_up(bound):.2g}"

    def middles(self) -> tuple[np.ndarray, float]:
        """Each bucket's middle value, and the mean distance of the values from the
        middles of their buckets at most (in units of the grid's scale)."""
        s, grid = self.sketch, self.grid
        steps = np.abs(s.buckets).astype(np.float64)
        with np.errstate(over="ignore"):
            outer = NEAR * np.power(_GAMMA, steps)
        size = np.where(s.buckets == 0, 0.0, outer * 2 / (_GAMMA + 1))
        errors = np.where(s.buckets == 0, NEAR, ALPHA * outer)
        middles = grid.centre + grid.scale * np.sign(s.buckets) * size
        return middles, float(np.dot(errors, s.counts) / max(s.count, 1))

    def ks(self, a: np.ndarray) -> tuple[float, float]:
        s, grid = self.sketch, self.grid
        if s.values is not None:
            return stats.ks(a, s.values)
        assert s.at_points is not None and grid.points is not None
        return _ks_at_points(a, grid.points, s.at_points)

    def proportions(self, edges: np.ndarray) -> np.ndarray:
        # The bins were counted over the grid's edges: the reference's deciles.
        assert len(edges) + 1 == len(self.sketch.bins)
        return self.sketch.bins / max(self.count, 1)


def _up(x: float) -> float:
    """``x`` rounded up to two significant digits (a bound stated is never less)."""
    if not math.isfinite(x) or x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step) * step


def _weighted_wasserstein(a: np.ndarray, where: np.ndarray, counts: np.ndarray) -> float:
    """W1 between the sample ``a`` (sorted) and counts of values at ``where``
    (ascending): the area between the two distribution functions."""
    order = np.argsort(where, kind="stable")
    where, counts = where[order], counts[order]
    points = np.sort(np.concatenate([a, where]))
    below_a = np.searchsorted(a, points[:-1], side="right") / len(a)
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    below_b = cumulative[np.searchsorted(where, points[:-1], side="right")] / cumulative[-1]
    with np.errstate(invalid="ignore"):
        return float(np.sum(np.abs(below_a - below_b) * np.diff(points)))


def _ks_at_points(a: np.ndarray, points: np.ndarray, at_points: np.ndarray) -> tuple[float, float]:
    """The Kolmogorov-Smirnov test of ``a`` (sorted; ``points`` its distinct values)
    against a sample known by its counts below, at and between the points: between
    two reference values the reference's distribution is flat, so the largest gap is
    at a point or just below one, where the counts give both functions exactly."""
    from scipy.stats import kstwo

    n, m = len(a), int(at_points.sum())
    if max(n, m) <= _KS_EXACT_UP_TO:
        # SciPy's exact p-value: on a sample of m values with the same counts.
        return stats.ks(a, _stand_ins(points, at_points))
    cumulative = np.cumsum(at_points)
    cur_below, cur_upto = cumulative[0::2][:-1], cumulative[1::2]
    ref_below = np.searchsorted(a, points, side="left")
    ref_upto = np.searchsorted(a, points, side="right")
    gaps = np.concatenate([ref_below / n - cur_below / m, ref_upto / n - cur_upto / m])
    d = float(np.max(np.abs(gaps), initial=0.0))
    # As scipy.stats.ks_2samp computes it for samples this large.
    big, small = sorted([float(n), float(m)], reverse=True)
    p = float(np.clip(kstwo.sf(d, np.round(big * small / (big + small))), 0, 1))
    return d, p


def _stand_ins(points: np.ndarray, at_points: np.ndarray) -> np.ndarray:
    """Values with the counts ``at_points``: at each point, strictly between two, or
    beyond the ends (where the values were is all a KS test of them depends on)."""
    between = points[:-1] / 2 + points[1:] / 2
    places = np.empty(2 * len(points) + 1)
    places[0], places[-1] = -np.inf, np.inf
    places[1::2] = points
    places[2:-1:2] = between
    return np.repeat(places, at_points)


# --- categories and texts --------------------------------------------------------------


@dataclass(frozen=True)
class CountSketch:
    """A categorical column of some rows: how many, how many missing, and each value
    met with how often, in the order first met."""

    rows: int
    missing: int
    values: tuple[Any, ...]
    counts: np.ndarray


def sketch_categories(series: pd.Series) -> CountSketch:
    """The counts of a column's values (missing as pandas finds them)."""
    import pandas as pd

    codes, uniques = pd.factorize(series.astype(object), use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques)).astype(np.int64)
    return CountSketch(len(series), int((codes < 0).sum()), tuple(uniques), counts)


def merge_categories(a: CountSketch, b: CountSketch) -> CountSketch:
    """The counts of the rows of ``a`` and ``b`` together (``a``'s first met first)."""
    values = list(a.values)
    where = _place(values, b.values)
    counts = np.zeros(len(values), dtype=np.int64)
    counts[: len(a.counts)] = a.counts
    np.add.at(counts, where, b.counts)
    return CountSketch(a.rows + b.rows, a.missing + b.missing, tuple(values), counts)


def against(reference: pd.Series, cur: CountSketch) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The categories of the reference then the sketch's new ones (as a comparison of
    the two samples whole orders them), and both sides' counts over them."""
    import pandas as pd

    codes, uniques = pd.factorize(reference.astype(object), use_na_sentinel=True)
    values = list(uniques)
    where = _place(values, cur.values)
    ref_counts = np.bincount(codes[codes >= 0], minlength=len(values))
    cur_counts = np.zeros(len(values), dtype=np.int64)
    np.add.at(cur_counts, where, cur.counts)
    return [str(v) for v in values], ref_counts, cur_counts


def _place(values: list[Any], more: tuple[Any, ...]) -> np.ndarray:
    """Where each of ``more`` is in ``values``, those not there added at the end (a
    loop over the distinct values, not the rows). Values are told apart as a
    dictionary does, as ``pandas.factorize`` does: 1 and 1.0 are one category."""
    at = {value: k for k, value in enumerate(values)}
    where = np.empty(len(more), dtype=np.int64)
    for k, value in enumerate(more):
        found = at.get(value)
        if found is None:
            found = at[value] = len(values)
            values.append(value)
        where[k] = found
    return where


@dataclass(frozen=True)
class TextSketch:
    """A text column of some rows: its word counts, and how many of its words there
    are and how many of them are not in the reference's vocabulary."""

    lengths: NumericSketch
    words: int
    unknown: int

    def out_of_vocabulary(self) -> float | None:
        return self.unknown / self.words if self.words else None
