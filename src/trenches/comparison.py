"""Comparing two predictors on exactly the patterns both have predicted: metric deltas,
a paired test, and the patterns that flipped — overall and per problem.

Classification: an exact McNemar test on right/wrong. Regression: a Wilcoxon
signed-rank test on the two absolute errors of each pattern, and right/wrong by the
tolerance of the dataset (or the problem's own), when one is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import predictions as store_of
from trenches import verdicts
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.evaluation import Evaluation, evaluate, labels_of
from trenches.json_form import json_shape
from trenches.patterns.sets import PatternSet
from trenches.predictors import Predictor

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.patterns.datasets import Dataset
    from trenches.patterns.diff import DataChange, SnapshotDiff
    from trenches.predictors import Predictors
    from trenches.problems import Problems
    from trenches.problems.scores import Scorer
    from trenches.settings import Costs
    from trenches.verdicts import Tolerance


def _changes(changes: tuple[DataChange, ...]) -> list[dict[str, Any]]:
    return [{"pattern_id": c.pattern_id, "kind": c.kind, "describe": c.describe()} for c in changes]


@json_shape(
    # The p-value also under its test's name: "mcnemar_p" or "wilcoxon_p".
    computed={
        "{test}_p": lambda f: {f"{f.test}_p": f.p_value},
        "change_note": lambda f: f.change_note(),
    },
    flatten=("{test}_p",),
    encode={"changes": _changes},
    order=(
        *("pattern_set", "size", "fixed", "broken", "test", "p_value", "{test}_p"),
        *("tolerance", "undefined", "changes", "change_note", "trained_a", "trained_b"),
    ),
)
@dataclass(frozen=True)
class Flips:
    """Patterns on which A and B disagree about being right, and a paired test: exact
    McNemar on right/wrong (classification), Wilcoxon signed-rank on the absolute
    errors (regression)."""

    pattern_set: str
    size: int
    fixed: tuple[int, ...]  # A wrong, B right
    broken: tuple[int, ...]  # A right, B wrong
    p_value: float
    test: str = "mcnemar"  # mcnemar | wilcoxon
    #: Regression: the tolerance that decided right and wrong.
    tolerance: Tolerance | None = None
    #: Why fixed and broken are not defined (a regression without a tolerance), or None.
    undefined: str | None = None
    #: The fixed and broken patterns that were added or relabelled (or removed) between
    #: the snapshots the two versions trained on.
    changes: tuple[DataChange, ...] = ()
    #: The fixed and broken patterns that A (B) trained on: a flip of a pattern one side
    #: knows by heart says more about its memory than its skill.
    trained_a: tuple[int, ...] = ()
    trained_b: tuple[int, ...] = ()

    def training_note(self, a: str, b: str) -> str:
        """Which flipped patterns each side trained on, in words: ``4 broken:
        cancer-clf@4 trained on 4 of them, cancer-clf@5 on none``; empty when neither
        trained on any."""
        parts = []
        for word, ids in (("fixed", self.fixed), ("broken", self.broken)):
            on_a = len(set(ids) & set(self.trained_a))
            on_b = len(set(ids) & set(self.trained_b))
            if on_a or on_b:
                parts.append(
                    f"{len(ids)} {word}: {a} trained on {on_a or 'none'} of them, "
                    f"{b} on {on_b or 'none'}"
                )
        return "; ".join(parts)

    def change_note(self) -> str:
        """What the data changes explain, in words: ``3 fixed, 2 of them relabelled by
        dr.house (expert) in import 7``; empty when no flipped pattern changed."""
        parts = []
        for word, ids in (("fixed", self.fixed), ("broken", self.broken)):
            mine = [c for c in self.changes if c.pattern_id in set(ids)]
            if not mine:
                continue
            groups: dict[str, list[int]] = {}
            for c in mine:
                groups.setdefault(_provenance(c), []).append(c.batch_id)
            said = []
            for what, batches in groups.items():
                imports = sorted(set(batches))
                plural = "s" if len(imports) > 1 else ""
                said.append(
                    f"{len(batches)} of them {what} in import{plural} "
                    + ", ".join(map(str, imports))
                )
            parts.append(f"{len(ids)} {word}, " + ", ".join(said))
        return "; ".join(parts)


def _provenance(change: DataChange) -> str:
    """A change without its labels and import, to count alike changes together."""
    who = (
        f"by {change.labelled_by} ({change.source})"
        if change.labelled_by
        else f"from {change.source}"
    )
    return f"{change.kind} {who}"


def _data(diff: SnapshotDiff) -> dict[str, Any]:
    return {"a": diff.a.id, "b": diff.b.id, "summary": diff.summary().to_dict(orient="records")}


@json_shape(
    computed={
        "pattern_set": lambda c: c.overall.pattern_set,
        "size": lambda c: c.overall.size,
        "deltas": lambda c: c.deltas,
    },
    encode={"a_metrics": lambda e: e.metrics, "b_metrics": lambda e: e.metrics, "data": _data},
    order=("a", "b", "pattern_set", "size", "a_metrics", "b_metrics", "deltas"),
)
@dataclass(frozen=True)
class Comparison:
    """A against B over the patterns both predicted."""

    a: str
    b: str
    a_metrics: Evaluation
    b_metrics: Evaluation
    overall: Flips
    problems: dict[str, Flips] = field(default_factory=dict)
    #: What changed in the data from A's training snapshot to B's (both versions with a
    #: snapshot, and different ones), which the flips' ``changes`` come from.
    data: SnapshotDiff | None = None

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


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs."""
    from scipy.stats import binomtest

    n = b + c
    if n == 0:
        return 1.0
    return float(binomtest(b, n, 0.5, alternative="two-sided").pvalue)


def wilcoxon_p(errors_a: np.ndarray, errors_b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired absolute errors (SciPy's
    defaults); 1.0 when no pair differs."""
    from scipy.stats import wilcoxon

    a = np.asarray(errors_a, dtype=np.float64)
    b = np.asarray(errors_b, dtype=np.float64)
    if len(a) == 0 or not np.any(a != b):
        return 1.0
    return float(wilcoxon(a, b).pvalue)


#: How each paired test is named in words.
TEST_NAMES = {"mcnemar": "McNemar", "wilcoxon": "Wilcoxon"}


def paired_test(
    a: store_of.Predictions, b: store_of.Predictions, ids: np.ndarray, truth: np.ndarray | None
) -> tuple[str, float]:
    """A against B on ``ids`` (both predicted): Wilcoxon signed-rank on the absolute
    errors when ``truth`` (the regression labels of ``ids``) is given, else exact
    McNemar on right and wrong. Returns the test's name and its p-value."""
    if truth is not None:
        assert a.values is not None and b.values is not None
        err_a = np.abs(a.values[np.searchsorted(a.pattern_ids, ids)] - truth)
        err_b = np.abs(b.values[np.searchsorted(b.pattern_ids, ids)] - truth)
        return "wilcoxon", wilcoxon_p(err_a, err_b)
    assert a.correct is not None and b.correct is not None
    right_a = a.correct[np.searchsorted(a.pattern_ids, ids)]
    right_b = b.correct[np.searchsorted(b.pattern_ids, ids)]
    return "mcnemar", mcnemar_exact(
        int((~right_a & right_b).sum()), int((right_a & ~right_b).sum())
    )


@dataclass
class _Pair:
    """Two predictors' predictions on one dataset, with the labels read once."""

    dataset: Dataset
    a: store_of.Predictions
    b: store_of.Predictions
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truth: np.ndarray | None = None  # regression labels of ``ids``

    def flips(self, name: str, which: np.ndarray, tolerance: Tolerance | None) -> Flips:
        """Flips over ``which`` (a subset of ``ids``), right and wrong by ``tolerance``
        (regression)."""
        truth = None
        if self.truth is not None:
            truth = self.truth[np.searchsorted(self.ids, which)]
        test, p = paired_test(self.a, self.b, which, truth)
        right_a = verdicts.right(self.a, which, self.dataset, tolerance, truth=truth)
        right_b = verdicts.right(self.b, which, self.dataset, tolerance, truth=truth)
        if right_a is None or right_b is None:
            undefined = verdicts.undefined_reason(self.dataset)
            return Flips(name, len(which), (), (), p, test, None, undefined)
        return Flips(
            name,
            len(which),
            tuple(int(i) for i in which[~right_a & right_b]),
            tuple(int(i) for i in which[right_a & ~right_b]),
            p,
            test,
            tolerance if truth is not None else None,
        )


def _pair(
    dataset: Dataset,
    a: store_of.Predictions,
    b: store_of.Predictions,
    ids: np.ndarray,
    labels: np.ndarray | None = None,
) -> _Pair:
    """The two sides over ``ids``; ``labels`` (of ``ids``, as stored) spares reading them."""
    truth = None
    if dataset.task == "regression":
        truth = verdicts.labels(dataset, ids) if labels is None else labels.astype(np.float64)
    return _Pair(dataset, a, b, ids, truth)


class Comparisons:
    """Compares predictors (``store.compare``, ``store.flips``): given the prediction
    store, the references, the problems and the snapshots, and the error costs of the
    project's settings (asked for each comparison)."""

    def __init__(
        self,
        engine: Engine,
        predictors: Predictors,
        problems: Problems,
        scorer: Callable[[], Scorer],
        costs: Callable[[], Costs | None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._predictors = predictors
        self._problems = problems
        self._scorer = scorer
        self._costs = costs

    def _read(self, a: str | Predictor, b: str | Predictor) -> tuple[_Side, _Side]:
        pa, pb = self._predictors.resolve(a), self._predictors.resolve(b)
        with read(self._engine) as conn:
            return (pa, store_of.read(conn, pa.id)), (pb, store_of.read(conn, pb.id))

    def flips(self, a: str | Predictor, b: str | Predictor) -> Flips:
        """Only the flips of ``a`` and ``b`` over the patterns both predicted: the quick
        query ("which patterns does A get right and B wrong?"), without metrics."""
        (pa, fa), (_, fb) = self._read(a, b)
        ids = np.intersect1d(fa.pattern_ids, fb.pattern_ids, assume_unique=True)
        pair = _pair(pa.dataset, fa, fb, ids)
        return pair.flips(f"{pa.dataset.name}: patterns both predicted", ids, pa.dataset.tolerance)

    def compare(
        self, a: str | Predictor, b: str | Predictor, *, problem: str | None = None
    ) -> Comparison:
        """Compare ``a`` and ``b`` (versions ``name@V`` or baseline names) on the patterns
        both predicted, or on a problem's patterns, which both must have predicted."""
        (pa, fa), (pb, fb) = self._read(a, b)
        if pa.dataset.id != pb.dataset.id:
            raise InvalidInput(
                f"{pa.ref} predicts for dataset {pa.dataset.name!r} and {pb.ref} for "
                f"{pb.dataset.name!r}: their figures are over different patterns"
            )
        ds = pa.dataset
        problems = self._problems.list(dataset=ds.name)
        tolerance = ds.tolerance
        if problem is not None:
            chosen = self._problems.get(problem)
            if chosen.dataset != ds.name:
                raise InvalidInput(
                    f"problem {problem!r} is about dataset {chosen.dataset!r}, and {pa.ref} "
                    f"about {ds.name!r}"
                )
            ids = np.array(sorted(chosen.patterns()), dtype=np.int64)
            name = f"problem:{problem}"
            _refuse_lacking(name, ids, ((pa.ref, fa), (pb.ref, fb)))
            problems = [chosen]
            tolerance = chosen.tolerance or ds.tolerance
        else:
            ids = np.intersect1d(fa.pattern_ids, fb.pattern_ids, assume_unique=True)
            name = f"{ds.name}: patterns both predicted"
            if len(ids) == 0:
                raise InvalidInput(f"{pa.ref} and {pb.ref} have no predicted pattern in common")
        # The labels are read once, for the flips and both sides' metrics.
        labels = labels_of(ds, ids)
        pair = _pair(ds, fa, fb, ids, labels)
        overall = pair.flips(name, ids, tolerance)
        per_problem = {}
        for p in problems:
            pids = np.array(sorted(p.patterns()), dtype=np.int64)
            if len(pids) and np.isin(pids, ids).all():
                per_problem[p.slug] = pair.flips(
                    f"problem:{p.slug}", pids, p.tolerance or ds.tolerance
                )
        trained = _Trained(self._scorer(), pa, pb)
        data = trained.data_between()
        if data is not None:
            overall = _with_changes(overall, data)
            per_problem = {k: _with_changes(v, data) for k, v in per_problem.items()}
        overall = trained.mark(overall)
        per_problem = {k: trained.mark(v) for k, v in per_problem.items()}
        costs = self._costs()
        return Comparison(
            pa.ref,
            pb.ref,
            evaluate(self._engine, pa, PatternSet(name, ids), costs=costs, found=fa, truth=labels),
            evaluate(self._engine, pb, PatternSet(name, ids), costs=costs, found=fb, truth=labels),
            overall,
            per_problem,
            data,
        )


_Side = tuple[Predictor, store_of.Predictions]


def _refuse_lacking(
    name: str, ids: np.ndarray, sides: tuple[tuple[str, store_of.Predictions], ...]
) -> None:
    """Refuse to compare over a set one side has not wholly predicted."""
    for ref, found in sides:
        lacking = np.setdiff1d(ids, found.pattern_ids, assume_unique=True)
        if len(lacking):
            raise InvalidInput(
                f"{ref} has no prediction for {len(lacking)} of the {len(ids)} patterns of "
                f"{name} (e.g. pattern {int(lacking[0])}); comparing over different pattern "
                "sets is refused: run `trenches backfill`"
            )


class _Trained:
    """What each side trained on (versions with a snapshot): which flipped patterns,
    and how their snapshots differ."""

    def __init__(self, scorer: Scorer, a: Predictor, b: Predictor) -> None:
        self.scorer = scorer
        self.entries = [
            None if side.version is None else scorer.entry(side.version) for side in (a, b)
        ]

    def data_between(self) -> SnapshotDiff | None:
        """The diff of the snapshots the two versions trained on; None for a baseline,
        a version without a snapshot, or two versions of one snapshot."""
        a, b = (None if e is None else e.snapshot_id for e in self.entries)
        if a is None or b is None or a == b:
            return None
        return self.scorer.snapshots.diff(a, b)

    def mark(self, flips: Flips) -> Flips:
        ids = np.asarray(sorted((*flips.fixed, *flips.broken)), dtype=np.int64)
        if len(ids) == 0:
            return flips
        sides: list[tuple[int, ...]] = []
        for entry in self.entries:
            mask = None if entry is None else self.scorer.trained(entry, ids)
            sides.append(() if mask is None else tuple(int(i) for i in ids[mask]))
        return replace(flips, trained_a=sides[0], trained_b=sides[1])


def _with_changes(flips: Flips, data: SnapshotDiff) -> Flips:
    found = [data.change(i) for i in (*flips.fixed, *flips.broken)]
    return replace(flips, changes=tuple(c for c in found if c is not None))
