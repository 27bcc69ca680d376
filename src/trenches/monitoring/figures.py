"""A column's drift figures, and the report made of them: what the comparison of a
whole sample (:func:`trenches.monitoring.drift`) and that of a window's merged
sketches (:mod:`trenches.monitoring.sketches`) both compute, so that the two give the
same verdicts by the same code.

The current side of a numeric comparison is a :class:`NumericSide`: the sorted
sample itself (:class:`Sample`), or a sketch of it. Categorical columns are compared
by their count vectors (:func:`categorical_figures`), however they were counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from trenches.monitoring import stats
from trenches.monitoring.results import ColumnDrift, DriftReport
from trenches.settings.monitor import DriftSettings

if TYPE_CHECKING:
    import pandas as pd

#: The statistic for each kind: (small samples, large samples).
TESTS = {
    "numeric": ("ks", "wasserstein"),
    "categorical": ("chi2", "jensen-shannon"),
    "text": ("ks", "wasserstein"),  # on the number of words of each text
}
P_VALUE_TESTS = frozenset({"ks", "chi2"})
#: What a word of a text column is.
WORDS = r"\w+"


@dataclass
class Figures:
    """A column's figures before the p-values are corrected across columns."""

    name: str
    kind: str
    test: str
    why: str
    statistic: float
    threshold: float
    p_value: float | None
    psi: float | None
    large: bool
    reference_rows: int
    current_rows: int
    missing_reference: float
    missing_current: float
    missing_p: float | None
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_share: float = 0.0
    unseen_expected: float = 0.0
    oov_reference: float | None = None
    oov_current: float | None = None


def floats(series: pd.Series) -> np.ndarray:
    """A column's values as float64 (NaN where a value is missing or no number)."""
    import pandas as pd

    if series.dtype == bool:
        return np.asarray(series.to_numpy(dtype=np.float64))
    values = pd.to_numeric(series, errors="coerce")
    return np.asarray(values, dtype=np.float64)


def choose(kind: str, n_ref: int, n_cur: int, small: int) -> tuple[str, bool, str]:
    """The test for two samples of ``n_ref`` and ``n_cur`` values, whether it is the
    large samples' one, and why."""
    tests = TESTS[kind]
    what = "word counts" if kind == "text" else kind
    if min(n_ref, n_cur) <= small:
        test = tests[0]
        return test, False, f"{what}, {min(n_ref, n_cur):,} values <= {small:,}: {test} test"
    test = tests[1]
    return test, True, f"{what}, both samples > {small:,} values: {test} distance"


def missing_p(
    ref_missing: int, n_ref: int, cur_missing: int, n_cur: int, large: bool
) -> float | None:
    """Fisher's p-value of the change of the missing rate (small samples only)."""
    if large or n_ref == 0 or n_cur == 0:
        return None
    if ref_missing == 0 and cur_missing == 0:
        return None
    return stats.fisher_missing(ref_missing, n_ref, cur_missing, n_cur)


# --- numbers ---------------------------------------------------------------------------


class NumericSide(Protocol):
    """The current side of a numeric comparison: its rows, the missing among them,
    and the statistics against the reference's sorted values."""

    @property
    def rows(self) -> int: ...

    @property
    def missing(self) -> int: ...

    @property
    def count(self) -> int: ...

    def wasserstein(self, a: np.ndarray) -> tuple[float, str]:
        """The normalised Wasserstein distance to ``a`` and a note on its accuracy
        (empty: exact)."""
        ...

    def ks(self, a: np.ndarray) -> tuple[float, float]: ...

    def proportions(self, edges: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Sample:
    """One side of a numeric comparison held whole: its values sorted, the missing
    left out, and how many rows it had and how many of them were missing."""

    values: np.ndarray
    rows: int
    missing: int

    @classmethod
    def of(cls, x: np.ndarray) -> Sample:
        nan = np.isnan(x)
        values = np.sort(x[~nan]) if nan.any() else np.sort(x)
        return cls(values, len(x), int(nan.sum()))

    @property
    def count(self) -> int:
        return len(self.values)

    def wasserstein(self, a: np.ndarray) -> tuple[float, str]:
        return stats.normalised_wasserstein(a, self.values), ""

    def ks(self, a: np.ndarray) -> tuple[float, float]:
        return stats.ks(a, self.values)

    def proportions(self, edges: np.ndarray) -> np.ndarray:
        return stats.binned_proportions(self.values, edges)


def numeric_figures(
    name: str, kind: str, ref: Sample, cur: NumericSide, settings: DriftSettings
) -> Figures:
    """The figures of a numeric column (or a text column's word counts)."""
    a = ref.values
    test, large, why = choose(kind, len(a), cur.count, settings.small)
    p_value = None
    statistic = float("nan")
    psi = None
    threshold = settings.threshold(name, "wasserstein") if large else settings.alpha
    if len(a) and cur.count:
        if large:
            statistic, note = cur.wasserstein(a)
            why += note
        else:
            statistic, p_value = cur.ks(a)
        edges = stats.decile_edges(a)
        psi = stats.psi(stats.binned_proportions(a, edges), cur.proportions(edges))
    else:
        test, why = "none", "no values on one side: only the missing rate is compared"
    return Figures(
        name,
        kind,
        test,
        why,
        statistic,
        threshold,
        p_value,
        psi,
        large,
        ref.rows,
        cur.rows,
        ref.missing / max(ref.rows, 1),
        cur.missing / max(cur.rows, 1),
        missing_p(ref.missing, ref.rows, cur.missing, cur.rows, large),
    )


# --- categories ------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """One side of a categorical comparison: its count per category (over the
    categories both sides share, in one order), its rows and how many were missing."""

    counts: np.ndarray
    rows: int
    missing: int


def categorical_figures(
    name: str, names: list[str], ref: Counts, cur: Counts, settings: DriftSettings
) -> Figures:
    """The figures of a categorical column from the two sides' counts over the
    categories ``names``."""
    ref_counts, cur_counts = ref.counts, cur.counts
    n_ref_ok, n_cur_ok = int(ref_counts.sum()), int(cur_counts.sum())
    test, large, why = choose("categorical", n_ref_ok, n_cur_ok, settings.small)
    p_value = None
    statistic = float("nan")
    psi = None
    threshold = settings.threshold(name, "jensen_shannon") if large else settings.alpha
    if n_ref_ok and n_cur_ok:
        if large:
            statistic = stats.jensen_shannon(ref_counts, cur_counts)
        else:
            statistic, p_value = stats.chi2(ref_counts, cur_counts)
        psi = stats.categorical_psi(ref_counts, cur_counts)
    else:
        test, why = "none", "no values on one side: only the missing rate is compared"
    new = (ref_counts == 0) & (cur_counts > 0)
    unseen_rows = int(cur_counts[new].sum())
    top = np.argsort(-cur_counts[new], kind="stable")[:10]
    new_names = np.asarray(names, dtype=object)[new][top]
    unseen = {str(n): int(c) for n, c in zip(new_names, cur_counts[new][top], strict=True)}
    # Good-Turing: the chance that the next value is of a category not seen yet is
    # about the share of values whose category was seen exactly once.
    expected = float((ref_counts == 1).sum() / n_ref_ok) if n_ref_ok else 0.0
    return Figures(
        name,
        "categorical",
        test,
        why,
        statistic,
        threshold,
        p_value,
        psi,
        large,
        ref.rows,
        cur.rows,
        ref.missing / max(ref.rows, 1),
        cur.missing / max(cur.rows, 1),
        missing_p(ref.missing, ref.rows, cur.missing, cur.rows, large),
        unseen,
        unseen_rows / n_cur_ok if n_cur_ok else 0.0,
        expected,
    )


def absent(name: str, kind: str, ref_rows: int, ref_missing: float) -> Figures:
    """The figures of a column the current sample lacks: all missing."""
    return Figures(
        name,
        kind,
        "none",
        "the column is absent from the current sample",
        float("nan"),
        0.0,
        None,
        None,
        True,
        ref_rows,
        0,
        ref_missing,
        1.0,
        None,
    )


# --- the report ------------------------------------------------------------------------


def verdicts(
    raw: Figures, p_adjusted: float | None, missing_adjusted: float | None, s: DriftSettings
) -> tuple[str, ...]:
    """What crossed a threshold in one column's figures."""
    reasons = []
    name = raw.name
    if raw.test in P_VALUE_TESTS and p_adjusted is not None and p_adjusted < s.alpha:
        reasons.append(
            f"{raw.test} p = {raw.p_value:.3g} (adjusted for the columns {p_adjusted:.3g}) "
            f"< {s.alpha:g}"
        )
    elif raw.test == "wasserstein" and raw.statistic >= raw.threshold:
        reasons.append(f"normalised Wasserstein distance {raw.statistic:.3g} >= {raw.threshold:g}")
    elif raw.test == "jensen-shannon" and raw.statistic >= raw.threshold:
        reasons.append(f"Jensen-Shannon distance {raw.statistic:.3g} >= {raw.threshold:g}")
    psi_bound = s.threshold(name, "psi")
    if raw.large and raw.psi is not None and raw.psi >= psi_bound:
        reasons.append(f"PSI {raw.psi:.3g} >= {psi_bound:g}")
    change = raw.missing_current - raw.missing_reference
    missing_bound = s.threshold(name, "missing")
    if abs(change) >= missing_bound and (
        raw.missing_p is None or (missing_adjusted is not None and missing_adjusted < s.alpha)
    ):
        reasons.append(
            f"missing {raw.missing_reference:.1%} -> {raw.missing_current:.1%} "
            f"(change {change:+.1%}, bound {missing_bound:g})"
        )
    unseen_bound = s.threshold(name, "unseen")
    if raw.unseen and raw.unseen_share - raw.unseen_expected >= unseen_bound:
        shown = ", ".join(list(raw.unseen)[:3])
        reasons.append(
            f"{raw.unseen_share:.1%} of values in categories never seen in the reference "
            f"({shown}{', ...' if len(raw.unseen) > 3 else ''}), "
            f"{raw.unseen_expected:.1%} expected"
        )
    oov_bound = s.threshold(name, "oov")
    if (
        raw.oov_current is not None
        and raw.oov_reference is not None
        and raw.oov_current - raw.oov_reference >= oov_bound
    ):
        reasons.append(f"out-of-vocabulary words {raw.oov_reference:.1%} -> {raw.oov_current:.1%}")
    return tuple(reasons)


@dataclass(frozen=True)
class Compared:
    """What a report says besides the columns' figures."""

    reference_rows: int
    current_rows: int
    ignored: tuple[str, ...]
    extra: tuple[str, ...]


def report(
    raws: list[Figures], prediction: bool, compared: Compared, s: DriftSettings
) -> DriftReport:
    """The report of the columns' figures (the prediction's first, when
    ``prediction``): p-values corrected across them, and each column's verdict."""
    # One family of p-values over every column: distribution tests and missing rates.
    p_values = np.array(
        [r.p_value if r.p_value is not None else np.nan for r in raws]
        + [r.missing_p if r.missing_p is not None else np.nan for r in raws]
    )
    adjusted = stats.benjamini_hochberg(p_values)
    results = []
    for k, raw in enumerate(raws):
        p_adj = None if np.isnan(adjusted[k]) else float(adjusted[k])
        miss_adj = None if np.isnan(adjusted[len(raws) + k]) else float(adjusted[len(raws) + k])
        reasons = verdicts(raw, p_adj, miss_adj, s)
        if raw.current_rows == 0 and raw.why.startswith("the column is absent"):
            reasons = ("the column is absent from the current sample",)
        results.append(
            ColumnDrift(
                name=raw.name,
                kind=raw.kind,
                test=raw.test,
                why=raw.why,
                statistic=raw.statistic,
                threshold=raw.threshold,
                p_value=raw.p_value,
                p_adjusted=p_adj,
                psi=raw.psi,
                reference_rows=raw.reference_rows,
                current_rows=raw.current_rows,
                missing_reference=raw.missing_reference,
                missing_current=raw.missing_current,
                missing_p=raw.missing_p,
                unseen=raw.unseen,
                unseen_share=raw.unseen_share,
                unseen_expected=raw.unseen_expected,
                oov_reference=raw.oov_reference,
                oov_current=raw.oov_current,
                reasons=reasons,
            )
        )
    pred = results.pop(0) if prediction else None
    return DriftReport(
        columns=tuple(results),
        prediction=pred,
        reference_rows=compared.reference_rows,
        current_rows=compared.current_rows,
        settings=s,
        ignored=compared.ignored,
        extra=compared.extra,
    )
