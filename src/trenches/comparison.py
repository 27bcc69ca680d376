"""Comparing two predictors on exactly the patterns both have predicted: metric deltas,
an exact McNemar test, and the patterns that flipped — overall and per problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import predictions as store_of
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.evaluation import Evaluation, evaluate, resolve_predictor

if TYPE_CHECKING:
    from trenches.store import Store


@dataclass(frozen=True)
class Flips:
    """Patterns on which A and B disagree about being right, and McNemar's exact test."""

    pattern_set: str
    size: int
    fixed: tuple[int, ...]  # A wrong, B right
    broken: tuple[int, ...]  # A right, B wrong
    p_value: float

    def to_json(self) -> dict[str, Any]:
        return {
            "pattern_set": self.pattern_set,
            "size": self.size,
            "fixed": list(self.fixed),
            "broken": list(self.broken),
            "mcnemar_p": self.p_value,
        }


@dataclass(frozen=True)
class Comparison:
    """A against B over the patterns both predicted."""

    a: str
    b: str
    a_metrics: Evaluation
    b_metrics: Evaluation
    overall: Flips
    problems: dict[str, Flips] = field(default_factory=dict)

    @property
    def deltas(self) -> dict[str, float]:
        """B's metric minus A's, for the metrics both have."""
        return {
            k: self.b_metrics.metrics[k] - v
            for k, v in self.a_metrics.metrics.items()
            if k in self.b_metrics.metrics
        }

    @property
    def fixed(self) -> tuple[int, ...]:
        return self.overall.fixed

    @property
    def broken(self) -> tuple[int, ...]:
        return self.overall.broken

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "pattern_set": self.overall.pattern_set,
            "size": self.overall.size,
            "a_metrics": self.a_metrics.metrics,
            "b_metrics": self.b_metrics.metrics,
            "deltas": self.deltas,
            "overall": self.overall.to_json(),
            "problems": {k: v.to_json() for k, v in self.problems.items()},
        }


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs."""
    from scipy.stats import binomtest

    n = b + c
    if n == 0:
        return 1.0
    return float(binomtest(b, n, 0.5, alternative="two-sided").pvalue)


def _flips(name: str, ids: np.ndarray, right_a: np.ndarray, right_b: np.ndarray) -> Flips:
    fixed = ids[~right_a & right_b]
    broken = ids[right_a & ~right_b]
    return Flips(
        name,
        len(ids),
        tuple(int(i) for i in fixed),
        tuple(int(i) for i in broken),
        mcnemar_exact(len(fixed), len(broken)),
    )


def flips(store: Store, a: str, b: str) -> Flips:
    """Only the flips of ``a`` and ``b`` over the patterns both predicted: the quick
    query ("which patterns does A get right and B wrong?"), without metrics."""
    pa, pb = resolve_predictor(store, a), resolve_predictor(store, b)
    with read(store.engine) as conn:
        fa, fb = store_of.read(conn, pa.id), store_of.read(conn, pb.id)
    if fa.correct is None or fb.correct is None:
        raise InvalidInput("flips need classification predictions (right or wrong)")
    ids, ia, ib = np.intersect1d(fa.pattern_ids, fb.pattern_ids, return_indices=True)
    return _flips(
        f"{pa.dataset.name}: patterns both predicted", ids, fa.correct[ia], fb.correct[ib]
    )


def compare(store: Store, a: str, b: str, *, problem: str | None = None) -> Comparison:
    """Compare ``a`` and ``b`` (versions ``name@V`` or baseline names) on the patterns
    both predicted, or on a problem's patterns, which both must have predicted."""
    pa, pb = resolve_predictor(store, a), resolve_predictor(store, b)
    if pa.dataset.id != pb.dataset.id:
        raise InvalidInput(
            f"{pa.ref} predicts for dataset {pa.dataset.name!r} and {pb.ref} for "
            f"{pb.dataset.name!r}: their figures are over different patterns"
        )
    with read(store.engine) as conn:
        fa, fb = store_of.read(conn, pa.id), store_of.read(conn, pb.id)
    if fa.correct is None or fb.correct is None:
        raise InvalidInput("comparison needs classification predictions (right or wrong)")
    problems = store.problems.list(dataset=pa.dataset.name)
    if problem is not None:
        chosen = store.problems.get(problem)
        ids = np.array(sorted(chosen.patterns()), dtype=np.int64)
        name = f"problem:{problem}"
        for ref, found in ((pa.ref, fa), (pb.ref, fb)):
            lacking = np.setdiff1d(ids, found.pattern_ids)
            if len(lacking):
                raise InvalidInput(
                    f"{ref} has no prediction for {len(lacking)} of the {len(ids)} patterns of "
                    f"{name} (e.g. pattern {int(lacking[0])}); comparing over different pattern "
                    "sets is refused: run `trenches backfill`"
                )
        problems = [chosen]
    else:
        ids = np.intersect1d(fa.pattern_ids, fb.pattern_ids)
        name = f"{pa.dataset.name}: patterns both predicted"
        if len(ids) == 0:
            raise InvalidInput(f"{pa.ref} and {pb.ref} have no predicted pattern in common")

    def right(found: store_of.Predictions, which: np.ndarray) -> np.ndarray:
        assert found.correct is not None
        return found.correct[np.searchsorted(found.pattern_ids, which)]

    overall = _flips(name, ids, right(fa, ids), right(fb, ids))
    per_problem = {}
    for p in problems:
        pids = np.array(sorted(p.patterns()), dtype=np.int64)
        both = pids[np.isin(pids, fa.pattern_ids) & np.isin(pids, fb.pattern_ids)]
        if len(both) == len(pids) and len(pids):
            per_problem[p.slug] = _flips(
                f"problem:{p.slug}", pids, right(fa, pids), right(fb, pids)
            )
    return Comparison(
        pa.ref,
        pb.ref,
        evaluate(store, pa.ref, ids, name),
        evaluate(store, pb.ref, ids, name),
        overall,
        per_problem,
    )
