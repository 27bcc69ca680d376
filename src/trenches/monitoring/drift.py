"""Column-by-column drift of a current sample against a reference.

``drift(reference, current)`` takes two DataFrames and returns a :class:`DriftReport`:
for each column the statistic chosen by its kind and the sample sizes (and why),
PSI, the change in the missing rate, categories never seen in the reference, and
for text the length of the texts and their out-of-vocabulary rate. The p-value tests
are corrected together for the number of columns (Benjamini-Hochberg).

Every heavy step (sorting, binary search, counting) is one NumPy call over a whole
column.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from trenches.errors import InvalidInput
from trenches.monitoring.figures import (
    WORDS,
    Compared,
    Counts,
    Figures,
    Sample,
    absent,
    categorical_figures,
    floats,
    numeric_figures,
    report,
)
from trenches.monitoring.results import ColumnDrift, DriftReport
from trenches.settings.monitor import KINDS, ColumnSettings, DriftSettings

if TYPE_CHECKING:
    import pandas as pd

#: Rows of the larger sample from which :func:`drift` works on columns in parallel.
PARALLEL_FROM = 2_000_000


def _missing(values: Any) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _numeric(
    name: str, kind: str, ref: np.ndarray, cur: np.ndarray, settings: DriftSettings
) -> Figures:
    return numeric_figures(name, kind, Sample.of(ref), Sample.of(cur), settings)


def _codes(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Integer codes of both samples over one set of categories (-1: missing)."""
    import pandas as pd

    if (
        isinstance(ref.dtype, pd.CategoricalDtype)
        and isinstance(cur.dtype, pd.CategoricalDtype)
        and list(ref.cat.categories) == list(cur.cat.categories)
    ):
        names = [str(c) for c in ref.cat.categories]
        return (
            np.asarray(ref.cat.codes, dtype=np.int64),
            np.asarray(cur.cat.codes, dtype=np.int64),
            names,
        )
    both = pd.concat([ref.astype(object), cur.astype(object)], ignore_index=True)
    codes, uniques = pd.factorize(both, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    return codes[: len(ref)], codes[len(ref) :], [str(u) for u in uniques]


def _categorical(name: str, ref: pd.Series, cur: pd.Series, settings: DriftSettings) -> Figures:
    ref_codes, cur_codes, names = _codes(ref, cur)
    k = len(names)
    ref_counts = np.bincount(ref_codes[ref_codes >= 0], minlength=k)
    cur_counts = np.bincount(cur_codes[cur_codes >= 0], minlength=k)
    return categorical_figures(
        name,
        names,
        Counts(ref_counts, len(ref), int((ref_codes < 0).sum())),
        Counts(cur_counts, len(cur), int((cur_codes < 0).sum())),
        settings,
    )


def words(series: pd.Series) -> pd.Series:
    """Each text's words, lower-cased (missing where the text is)."""
    return series.astype("string").str.lower().str.findall(WORDS)


def word_counts(words_of: pd.Series) -> np.ndarray:
    """The number of words of each text (NaN where it is missing)."""
    return np.asarray(words_of.str.len().to_numpy(dtype=np.float64, na_value=np.nan))


@dataclass(frozen=True)
class TextReference:
    """What a text column's current sample is compared with: the number of words of
    each reference text, the vocabulary of half of them, and the other half's rate of
    words out of it (None: too few texts to split)."""

    lengths: np.ndarray
    vocabulary: pd.Index
    oov: float | None
    #: Whether there were texts enough to split (else no rate is compared).
    split: bool

    @classmethod
    def of(cls, ref: pd.Series) -> TextReference:
        import pandas as pd

        ref_words = words(ref)
        ok = ref_words.dropna()
        half = len(ok) // 2
        vocabulary = pd.Index(ok.iloc[:half].explode().dropna().unique())
        found = cls(word_counts(ref_words), vocabulary, None, half > 0)
        oov = found.out_of_vocabulary(ok.iloc[half:]) if half else None
        return cls(found.lengths, vocabulary, oov, half > 0)

    def out_of_vocabulary(self, words_of: pd.Series) -> float | None:
        tokens = words_of.dropna().explode().dropna()
        if not len(tokens):
            return None
        return float((~tokens.isin(self.vocabulary)).mean())


def _text(name: str, ref: pd.Series, cur: pd.Series, settings: DriftSettings) -> Figures:
    """Text: the distribution of the number of words, and the out-of-vocabulary rate
    against the reference's vocabulary, next to the reference's own rate (half of it
    against the vocabulary of the other half, so both rates are measured alike)."""
    reference = TextReference.of(ref)
    cur_words = words(cur)
    raw = _numeric(name, "text", reference.lengths, word_counts(cur_words), settings)
    raw.oov_reference = reference.oov
    raw.oov_current = reference.out_of_vocabulary(cur_words) if reference.split else None
    return raw


def infer_kind(series: pd.Series, categorical_below: int = 5) -> str:
    """numeric, categorical or text, from a column's values (the reference's)."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        # A few thousand values settle it for almost every real column; only a column
        # that looks like a code there is counted in full.
        if series.iloc[:5000].nunique(dropna=True) > categorical_below:
            return "numeric"
        return "categorical" if series.nunique(dropna=True) <= categorical_below else "numeric"
    sample = series.dropna().iloc[:1000]
    if len(sample) and sample.map(lambda v: isinstance(v, str)).all():
        words = sample.str.count(WORDS).mean()
        return "text" if words >= 5 else "categorical"
    return "categorical"


# --- the report ------------------------------------------------------------------------


def _one(
    name: str,
    kind: str,
    ref: pd.Series | None,
    cur: pd.Series | _Apart | None,
    settings: DriftSettings,
) -> Figures:
    assert ref is not None
    if isinstance(cur, _Apart):
        if kind == "numeric":
            return numeric_figures(name, "numeric", Sample.of(floats(ref)), cur.sample(), settings)
        cur = cur.series()
    if cur is None:  # the column is absent from the current sample: all missing
        return absent(name, kind, len(ref), float(_missing(ref).mean()) if len(ref) else 0.0)
    if kind == "numeric":
        return _numeric(name, "numeric", floats(ref), floats(cur), settings)
    if kind == "text":
        return _text(name, ref, cur, settings)
    return _categorical(name, ref, cur, settings)


class ColumnReader(Protocol):
    """Numeric columns of a current sample read one at a time (a window of the
    request log: ``RequestWindow.numbers``)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def rows(self) -> int: ...

    def read(self, name: str, out: np.ndarray | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class _Apart:
    """A current column held by a :class:`ColumnReader`, read when its job runs."""

    name: str
    reader: ColumnReader
    buffers: threading.local

    def sample(self) -> Sample:
        """The column as a numeric sample, sorted in the memory it was read into: one
        buffer per thread, reused by its next column (fresh memory is what a column
        of ten million rows costs most)."""
        buffer = getattr(self.buffers, "values", None)
        if buffer is None or len(buffer) < self.reader.rows:
            buffer = np.empty(self.reader.rows, dtype=np.float64)
            self.buffers.values = buffer
        values = self.reader.read(self.name, buffer)
        nan = np.isnan(values)
        missing = int(nan.sum())
        kept = values[~nan] if missing else values
        kept.sort()
        return Sample(kept, len(values), missing)

    def series(self) -> pd.Series:
        import pandas as pd

        return pd.Series(self.reader.read(self.name).copy())


def _series(values: np.ndarray) -> pd.Series:
    import pandas as pd

    return pd.Series(values, dtype=object if values.dtype == object else None)


def drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    settings: DriftSettings | None = None,
    kinds: Mapping[str, str] | None = None,
    prediction: tuple[Sequence[Any] | np.ndarray, Sequence[Any] | np.ndarray] | None = None,
    prediction_kind: str | None = None,
    threads: int | None = None,
    apart: ColumnReader | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` column by column.

    ``kinds`` names a column's kind (numeric, categorical, text) where inferring it from
    the reference's values is not wanted; ``prediction`` is (reference predictions,
    current predictions), compared like a column named ``prediction`` (of
    ``prediction_kind``, by default inferred). Columns of ``current`` that the reference
    lacks are listed in ``extra`` and not compared.

    ``apart``: numeric columns of the current sample kept out of ``current`` and read
    one at a time when compared, each sorted where it was read (a window of the request
    log too large to hold whole); the figures are the same as with them in ``current``.

    ``threads`` > 1 works on columns in parallel. By default (None) a sample of
    :data:`PARALLEL_FROM` rows or more gets one thread per core (up to 4), a smaller
    one a single thread: on a 2-core machine one million rows by 25 columns took 0.9 s
    in one thread and 1.1 s in two, while ten million rows by 20 columns took 3.6 s in
    one and 2.0 s in two.
    """

    s = settings or DriftSettings()
    jobs: list[tuple[str, str, pd.Series | None, pd.Series | _Apart | None]] = []
    if prediction is not None:
        # First, so that other columns are worked on beside it. Answers kept as objects
        # (pandas would make labels strings of its own, at a cost).
        ref_pred, cur_pred = (_series(np.asarray(p)) for p in prediction)
        kind = prediction_kind or infer_kind(ref_pred, s.categorical_below)
        jobs.append(("prediction", kind, ref_pred, cur_pred))
    buffers = threading.local()
    held_apart = set(apart.names) if apart is not None else set()
    compared, ignored = columns_compared(reference, s, kinds)
    for column, name, kind in compared:
        cur: pd.Series | _Apart | None = None
        if name in held_apart:
            assert apart is not None
            cur = _Apart(name, apart, buffers)
        elif column in current.columns:
            cur = current[column]
        jobs.append((name, kind, reference[column], cur))
    current_rows = apart.rows if apart is not None else len(current)
    if threads is None:
        rows = max(len(reference), current_rows)
        threads = min(os.cpu_count() or 1, 4) if rows >= PARALLEL_FROM else 1
    workers = min(max(threads, 1), len(jobs))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            raws = list(pool.map(lambda j: _one(j[0], j[1], j[2], j[3], s), jobs))
    else:
        raws = [_one(*j, s) for j in jobs]
    names = [*(str(c) for c in current.columns), *sorted(held_apart)]
    extra = tuple(c for c in names if c not in reference.columns)
    return report(
        raws,
        prediction is not None,
        Compared(len(reference), current_rows, tuple(ignored), extra),
        s,
    )


def columns_compared(
    reference: pd.DataFrame, s: DriftSettings, kinds: Mapping[str, str] | None
) -> tuple[list[tuple[Any, str, str]], list[str]]:
    """The reference's columns to compare, each with its name and kind (``[monitor.columns]``'s,
    else ``kinds``', else inferred from its values), and those ignored."""
    kinds = dict(kinds or {})
    for column, kind in kinds.items():
        if kind not in KINDS:
            raise InvalidInput(
                f"column {column!r}: kind {kind!r} must be one of {', '.join(KINDS)}"
            )
    compared: list[tuple[Any, str, str]] = []
    ignored = []
    for column in reference.columns:
        name = str(column)
        own = s.columns.get(name)
        if own is not None and own.ignore:
            ignored.append(name)
            continue
        kind = (
            (own.kind if own is not None else None)
            or kinds.get(name)
            or infer_kind(reference[column], s.categorical_below)
        )
        compared.append((column, name, kind))
    return compared, ignored


__all__ = [
    "ColumnDrift",
    "ColumnSettings",
    "DriftReport",
    "DriftSettings",
    "drift",
    "infer_kind",
]
