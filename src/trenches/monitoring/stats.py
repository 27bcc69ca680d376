"""The drift statistics, on NumPy arrays: no Python loop over rows anywhere.

Numeric samples are sorted once; every figure then comes from the two sorted arrays
by binary search (``np.searchsorted``), which is what makes a million rows cheap:

- the normalised Wasserstein distance ``W1(ref, cur) / std(ref)``, exact, from the
  two quantile functions (the same figure as ``scipy.stats.wasserstein_distance``);
- the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``, small samples);
- the population stability index over the reference's deciles.

Categorical samples are counted once (codes and ``np.bincount``); chi-square
(``scipy.stats.chi2_contingency``), the Jensen-Shannon distance (as
``scipy.spatial.distance.jensenshannon`` computes it) and PSI come from the two count
vectors. SciPy is imported only for the p-value tests of small samples.
"""

from __future__ import annotations

import numpy as np

#: Proportions below this are floored before PSI's logarithm: an empty bin on one side
#: would otherwise make PSI infinite. 1e-4 is the usual choice.
PSI_FLOOR = 1e-4
PSI_BINS = 10


def wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """The 1-Wasserstein distance between the empirical distributions of two sorted,
    non-empty samples: the area between their quantile functions,
    ``integral over u of |Qa(u) - Qb(u)|``.

    Both quantile functions are steps, at ``i/n`` and ``j/m``. With ``n <= m`` (the
    samples swapped if need be), each of the larger sample's steps holds at most one
    step of the smaller: the area is first taken as if the smaller sample's value at
    the start of each of them held throughout (one pass over the larger sample, its
    partner values made by ``np.repeat``), then corrected on the at most ``n`` steps
    where the smaller sample steps inside, in integer units of ``1/(n*m)``. Only the
    two arrays are read, never sorted again: a million-row window costs a few passes.
    """
    n, m = len(a), len(b)
    if n == m:
        return float(np.mean(np.abs(a - b)))
    if n > m:
        a, b, n, m = b, a, m, n
    # b's step j starts at j/m; a's value there is a[(j*n)//m]: the j with (j*n)//m
    # == i run from ceil(i*m/n) to ceil((i+1)*m/n).
    i = np.arange(n + 1, dtype=np.int64)
    first = -((-i * m) // n)
    partner = np.repeat(a, np.diff(first))
    np.subtract(b, partner, out=partner)
    np.abs(partner, out=partner)
    area = float(partner.sum()) * n  # in units of 1/(n*m)
    # a's step i (1 <= i < n) inside b's step j = (i*m)//n, when i*m is no multiple of
    # n: from i/n to (j+1)/m, a's value is a[i], not a[i-1].
    inner = i[1:n]
    j = (inner * m) // n
    inside = inner * m % n != 0
    inner, j = inner[inside], j[inside]
    widths = (j + 1) * n - inner * m
    change = np.abs(b[j] - a[inner]) - np.abs(b[j] - a[inner - 1])
    area += float(np.dot(change, widths))
    return area / (float(n) * m)


def normalised_wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """``W1(a, b) / std(a)`` of two sorted samples, as Evidently defines it; a constant
    reference gives 0 when the samples agree and infinity when they do not."""
    w = wasserstein_sorted(a, b)
    sd = float(np.std(a))
    if sd == 0.0:
        return 0.0 if w == 0.0 else float("inf")
    return w / sd


def ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov-Smirnov statistic and p-value (SciPy's ``ks_2samp``,
    exact for small samples)."""
    from scipy.stats import ks_2samp

    result = ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


def decile_edges(a_sorted: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (ties merged), for PSI."""
    n = len(a_sorted)
    if n == 0:
        return np.empty(0)
    picks = (np.arange(1, bins) * n) // bins
    return np.unique(a_sorted[picks])


def binned_proportions(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Proportions of a sorted sample in the bins ``(-inf, e0], (e0, e1], ... (ek, inf)``."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    counts = np.diff(np.concatenate(([0], cuts, [len(sorted_values)])))
    return counts / max(len(sorted_values), 1)


def psi(p_ref: np.ndarray, p_cur: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """The population stability index ``sum((c - r) * ln(c / r))`` of two proportion
    vectors over the same bins, each floored at ``floor``."""
    r = np.maximum(p_ref, floor)
    c = np.maximum(p_cur, floor)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_psi(a_sorted: np.ndarray, b_sorted: np.ndarray, bins: int = PSI_BINS) -> float:
    edges = decile_edges(a_sorted, bins)
    return psi(binned_proportions(a_sorted, edges), binned_proportions(b_sorted, edges))


def chi2(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors over the same categories
    (``scipy.stats.chi2_contingency`` without continuity correction); categories
    empty on both sides are left out."""
    from scipy.stats import chi2_contingency

    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def jensen_shannon(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """The Jensen-Shannon distance (natural logarithm, so at most sqrt(ln 2)) between
    two count vectors over the same categories: the same figure as
    ``scipy.spatial.distance.jensenshannon``, in NumPy (importing SciPy's spatial
    module costs half a second, more than the whole computation)."""
    p = ref_counts.astype(np.float64)
    q = cur_counts.astype(np.float64)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        some = a > 0
        return float(np.sum(a[some] * np.log(a[some] / m[some])))

    return float(np.sqrt(max((kl(p) + kl(q)) / 2, 0.0)))


def categorical_psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    return psi(ref_counts / max(ref_counts.sum(), 1), cur_counts / max(cur_counts.sum(), 1))


def fisher_missing(ref_missing: int, ref_n: int, cur_missing: int, cur_n: int) -> float:
    """Two-sided p-value that two samples have the same missing rate (Fisher's exact
    test of the 2x2 table)."""
    from scipy.stats import fisher_exact

    if ref_missing + cur_missing == 0 or ref_missing + cur_missing == ref_n + cur_n:
        return 1.0
    table = [[ref_missing, ref_n - ref_missing], [cur_missing, cur_n - cur_missing]]
    return float(fisher_exact(table).pvalue)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the false discovery rate over many columns):
    equal to ``scipy.stats.false_discovery_control(p)``; NaNs are left out and kept."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q)
    ranked = q[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    back = np.empty(m)
    back[order] = np.minimum(adjusted, 1.0)
    out[ok] = back
    return out
