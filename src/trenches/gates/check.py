"""Checking a model version against its gates: predict what is missing, compute each
gate's figure over its pattern set, and decide pass, fail or skip."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trenches import predictions as store_of
from trenches import verdicts
from trenches.comparison import TEST_NAMES, paired_test
from trenches.db.engine import read
from trenches.errors import NotFound
from trenches.evaluation import evaluate
from trenches.gates import measure
from trenches.gates.measure import Measured
from trenches.gates.replayed import replayed
from trenches.patterns.sets import PatternSet, split
from trenches.predict import predict
from trenches.settings.gates import (
    MEASURED,
    REPLAYED,
    Criteria,
    GateSpec,
    lower_is_better,
    metric_parts,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.baselines import Baselines
    from trenches.config import Location
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Datasets
    from trenches.predictors import Predictors
    from trenches.problems import Problem, Problems
    from trenches.problems.scores import Scorer
    from trenches.settings import Costs
    from trenches.verdicts import Tolerance

STATUSES = ("pass", "fail", "skip")


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict on one version: its figure, the bound it had to meet."""

    gate: str  # what is checked, in words: "accuracy >= 0.95 on cancer:validation"
    kind: str  # metric | relative | problem | no-break
    figure: float | None
    bound: str
    status: str  # pass | fail | skip
    detail: str
    pattern_set: str | None = None
    size: int | None = None
    key: str | None = None  # where in trenches.toml: gates.cancer-clf[2]
    line: int | None = None
    #: Regression: the tolerance within which a value counted as right, as text.
    tolerance: str | None = None

    @property
    def passed(self) -> bool:
        return self.status != "fail"


@dataclass(frozen=True)
class Parts:
    """What a check reads: the prediction store, and the parts that name what it
    predicts and what it is measured on (``store.gates`` is given them)."""

    engine: Engine
    models: Models
    datasets: Datasets
    predictors: Predictors
    problems: Problems
    baselines: Baselines
    #: A new scorer of the problems (it reads each thing it needs once).
    scorer: Callable[[], Scorer]
    #: Where the store is (a measure of peak memory opens it in a process of its own).
    location: Location | None = None


class _Context:
    """What a check reads more than once: predictions by predictor, problems, sets."""

    def __init__(
        self,
        parts: Parts,
        version: ModelVersion,
        trusted: bool,
        progress: Callable[[str, int], None] | None,
        costs: Costs | None,
    ) -> None:
        self.parts = parts
        self.version = version
        self.trusted = trusted
        self.progress = progress
        self.costs = costs
        assert version.dataset is not None
        self.dataset = parts.datasets.get(version.dataset)
        self._predictions: dict[str, store_of.Predictions] = {}
        self._predicted: set[tuple[str, bytes]] = set()
        self._truth: dict[bytes, np.ndarray] = {}
        self._scorer = parts.scorer()
        self._entry = self._scorer.entry(version)
        self._measured: dict[bytes, Measured] = {}
        self._peaks: dict[bytes, float] = {}

    def measured(self, spec: GateSpec, ids: np.ndarray) -> float:
        """A measured figure of the version (its speed, cost, size or memory) on up to
        :data:`~trenches.gates.measure.ROWS` of ``ids``, measured once per set."""
        key = ids[: measure.ROWS].tobytes()
        if spec.metric == "peak-memory-mb":
            if key not in self._peaks:
                assert self.parts.location is not None
                self._peaks[key] = measure.peak_memory_mb(
                    self.parts.location, self.version.ref, ids, trusted=self.trusted
                )
            return self._peaks[key]
        if key not in self._measured:
            self._measured[key] = measure.measure(
                self.parts.models, self.version, self.dataset, ids, trusted=self.trusted
            )
        return self._measured[key].figure(spec.metric, spec.raw.get("price-per-cpu-hour"))

    def held_out(
        self,
        spec: GateSpec,
        base: str,
        ids: np.ndarray,
        qualifiers: tuple[str, ...] = (),
        *,
        problem: Problem,
        also: str | None = None,
    ) -> tuple[str, np.ndarray, str]:
        """Problem patterns as the gate measures them: by default only those the checked
        version did not train on, nor ``also`` (the version it is compared with: a
        pattern it knows by heart says nothing of its skill either). Returns (the set's
        name, the ids, a note for the detail)."""
        quals = list(qualifiers)
        if not spec.held_out(problem.trainable):
            return _set_name(base, quals), ids, ""
        seen = np.zeros(len(ids), dtype=bool)
        said = []
        known = False
        for ref in (self.version.ref, also):
            if ref is None or "@" not in ref:  # a baseline is not trained here
                continue
            entry = (
                self._entry
                if ref == self.version.ref
                else self._scorer.entry(self.parts.models.get(ref))
            )
            trained = self._scorer.trained(entry, ids)
            if trained is None:
                said.append(f"{ref} has no snapshot, so none count as trained on by it")
                continue
            known = True
            if trained.any():
                said.append(f"{ref} trained on {int(trained.sum())}")
            seen |= trained
        if known:
            quals.append("held out")
        note = ""
        if seen.any():
            note = f"; {int(seen.sum())} of {len(ids)} left out ({', '.join(said)})"
        elif said:
            note = "; " + "; ".join(said)
        return _set_name(base, quals), ids[~seen], note

    def truth(self, ids: np.ndarray) -> np.ndarray | None:
        """Regression labels of ``ids`` (read once per set)."""
        if self.dataset.task != "regression":
            return None
        key = ids.tobytes()
        if key not in self._truth:
            self._truth[key] = verdicts.labels(self.dataset, ids)
        return self._truth[key]

    def right(self, ref: str, ids: np.ndarray, tolerance: Tolerance | None) -> np.ndarray | None:
        """Right or wrong of ``ref`` on ``ids`` (each predicted); None when undefined."""
        return verdicts.right(
            self.predictions(ref), ids, self.dataset, tolerance, truth=self.truth(ids)
        )

    def ensure(self, ref: str, ids: np.ndarray) -> None:
        """Predict ``ids`` with ``ref`` where it has not (model versions only)."""
        if "@" not in ref or len(ids) == 0:
            return
        key = (ref, ids.tobytes())
        if key in self._predicted:
            return
        parts = self.parts
        predictor = parts.predictors.resolve(ref)
        done = predict(parts.engine, parts.models, predictor, ids, trusted=self.trusted)
        if done.computed:
            self._predictions.pop(ref, None)
            if self.progress is not None:
                self.progress(ref, done.computed)
        self._predicted.add(key)

    def predictions(self, ref: str) -> store_of.Predictions:
        if ref not in self._predictions:
            predictor = self.parts.predictors.resolve(ref)
            with read(self.parts.engine) as conn:
                self._predictions[ref] = store_of.read(conn, predictor.id)
        return self._predictions[ref]

    def pattern_set(self, spec: GateSpec, also: str | None = None) -> tuple[str, np.ndarray]:
        on = spec.on
        if on.startswith("problem:"):
            problem = self.problem(spec, on.split(":", 1)[1], key="on")
            ids = np.array(sorted(problem.patterns()), dtype=np.int64)
            name, ids, _ = self.held_out(
                spec, f"problem:{problem.slug}", ids, problem=problem, also=also
            )
            return name, ids
        chosen = split(self.dataset, on)
        return chosen.name, chosen.ids

    def problem(self, spec: GateSpec, slug: str, *, key: str = "problems") -> Problem:
        try:
            problem = self.parts.problems.get(slug)
        except NotFound:
            raise spec.error(key, f"no problem {slug!r}") from None
        if problem.dataset != self.dataset.name:
            raise spec.error(
                key,
                f"problem {slug!r} is about dataset {problem.dataset!r}, and "
                f"{self.version.ref} about {self.dataset.name!r}",
            )
        return problem

    def problems(self, spec: GateSpec) -> list[Problem]:
        scope = spec.problem_scope
        if scope in ("open", "all"):
            status = "open" if scope == "open" else None
            return self.parts.problems.list(dataset=self.dataset.name, status=status)
        slugs = [scope] if isinstance(scope, str) else scope
        return [self.problem(spec, s) for s in slugs]

    def reference(self, spec: GateSpec) -> str | None:
        """The version or baseline a relative gate compares with; None when it names an
        alias that points at no version yet (the gate is skipped)."""
        vs = spec.vs
        assert vs is not None
        key = "vs" if "vs" in spec.raw else "no-break"
        if "@" in vs:
            ref = vs if not vs.startswith("@") else f"{self.version.model}{vs}"
        else:
            names = {b.name: b for b in self.parts.baselines.list()}
            if vs in names:
                if names[vs].dataset != self.dataset.name:
                    raise spec.error(key, f"baseline {vs!r} predicts dataset {names[vs].dataset!r}")
                return vs
            ref = f"{self.version.model}@{vs}"
        try:
            version = self.parts.models.get(ref)
        except NotFound:
            if ref.startswith(f"{self.version.model}@") and not ref.split("@")[1].isdigit():
                return None
            raise spec.error(key, f"{vs!r} is neither a version nor a baseline") from None
        if version.dataset != self.dataset.name:
            raise spec.error(key, f"{version.ref} predicts dataset {version.dataset!r}")
        return version.ref


def run_gate(ctx: _Context, spec: GateSpec) -> list[GateResult]:
    """The results of one gate: one, or one per problem for a problem gate."""
    if spec.kind == "metric":
        return [_metric_gate(ctx, spec)]
    if spec.kind == "relative":
        return [_relative_gate(ctx, spec)]
    return [_problem_gate(ctx, spec, p) for p in ctx.problems(spec)] or [
        GateResult(
            _label(spec, f"problems {spec.problem_scope}"),
            spec.kind,
            None,
            "-",
            "skip",
            f"no {spec.problem_scope} problem on dataset {ctx.dataset.name}",
            key=spec.key,
            line=spec.line,
        )
    ]


def _set_name(base: str, qualifiers: list[str]) -> str:
    """``problem:slug`` with what narrows it: ``problem:slug (positive, held out)``."""
    return f"{base} ({', '.join(qualifiers)})" if qualifiers else base


def _label(spec: GateSpec, default: str) -> str:
    return f"{spec.name}: {default}" if spec.name else default


def _figure(ctx: _Context, spec: GateSpec, ref: str, ids: np.ndarray, name: str) -> float:
    result = evaluate(
        ctx.parts.engine,
        ctx.parts.predictors.resolve(ref),
        PatternSet(name, ids),
        costs=ctx.costs,
    )
    base, cls = metric_parts(spec.metric)
    if cls is None:
        if base not in result.metrics:
            raise _Undefined(
                f"{base} is not defined for {ref} on {name} ({len(ids)} patterns)"
                + (": it needs class scores and both classes present" if base == "roc_auc" else "")
                + (": give [evaluation.cost] in trenches.toml" if base.startswith("cost") else "")
            )
        return float(result.metrics[base])
    if result.per_class is None or cls not in result.per_class.index:
        known = [] if result.per_class is None else [str(c) for c in result.per_class.index]
        raise _Undefined(f"class {cls!r} does not occur in {name}; classes: {', '.join(known)}")
    return float(result.per_class.loc[cls, base])


class _Undefined(Exception):
    """A figure that cannot be computed on this set: the gate fails and says why."""


def _compare(figure: float, bound: float, metric: str) -> bool:
    return figure <= bound if lower_is_better(metric) else figure >= bound


def _metric_gate(ctx: _Context, spec: GateSpec) -> GateResult:
    bounds = []
    if "min" in spec.raw:
        bounds.append(f">= {spec.raw['min']:g}")
    if "max" in spec.raw:
        bounds.append(f"<= {spec.raw['max']:g}")
    bound = " and ".join(bounds)
    if spec.metric in REPLAYED:
        found, said = replayed(ctx.parts.engine, ctx.version.id, spec.metric)
        label = _label(spec, f"{spec.metric} {bound} on the request log")
        held = found is not None and _within(found, spec)
        return GateResult(label, "metric", found, bound, "pass" if held else "fail", said)
    name, ids = ctx.pattern_set(spec)
    label = _label(spec, f"{spec.metric} {bound} on {name}")
    common: dict[str, Any] = {
        "pattern_set": name,
        "size": len(ids),
        "key": spec.key,
        "line": spec.line,
    }
    if len(ids) == 0:
        return GateResult(label, "metric", None, bound, "fail", f"{name} is empty", **common)
    if spec.metric in MEASURED:
        figure = ctx.measured(spec, ids)
        detail = (
            f"{spec.metric} = {figure:.4g}, measured on "
            f"{min(len(ids), measure.ROWS)} patterns of {name}"
        )
    else:
        ctx.ensure(ctx.version.ref, ids)
        try:
            figure = _figure(ctx, spec, ctx.version.ref, ids, name)
        except _Undefined as e:
            return GateResult(label, "metric", None, bound, "fail", str(e), **common)
        detail = f"{spec.metric} = {figure:.4f} over {name} ({len(ids)} patterns)"
    ok = _within(figure, spec)
    return GateResult(label, "metric", figure, bound, "pass" if ok else "fail", detail, **common)


def _within(figure: float, spec: GateSpec) -> bool:
    raw = spec.raw
    return ("min" not in raw or figure >= raw["min"]) and ("max" not in raw or figure <= raw["max"])


def _relative_gate(ctx: _Context, spec: GateSpec) -> GateResult:
    ref = ctx.reference(spec)
    name, ids = ctx.pattern_set(spec, also=ref)
    vs = spec.vs
    assert vs is not None
    lower = lower_is_better(spec.metric)
    if "tolerance" in spec.raw:
        tol = float(spec.raw["tolerance"])
        shape = f"{'<=' if lower else '>='} {vs} {'+' if lower else '-'} {tol:g}"
    else:
        ratio = float(spec.raw["ratio"])
        shape = f"{'<=' if lower else '>='} {ratio:g} x {vs}"
    if "significance" in spec.raw:
        test = TEST_NAMES["wilcoxon" if ctx.dataset.task == "regression" else "mcnemar"]
        shape += f", {test} p <= {spec.raw['significance']:g}"
    label = _label(spec, f"{spec.metric} {shape} on {name}")
    common: dict[str, Any] = {"key": spec.key, "line": spec.line}
    if ref is None:
        return GateResult(
            label,
            "relative",
            None,
            shape,
            "skip",
            f"{ctx.version.model} has no {vs} version yet: nothing to compare with",
            pattern_set=name,
            size=len(ids),
            **common,
        )
    ctx.ensure(ctx.version.ref, ids)
    ctx.ensure(ref, ids)
    if "@" not in ref:  # a baseline: only the patterns it has predicted
        have = ids[np.isin(ids, ctx.predictions(ref).pattern_ids)]
        if len(have) < len(ids):
            name = f"{name} predicted by {ref}"
        ids = have
    if len(ids) == 0:
        return GateResult(
            label, "relative", None, shape, "fail", f"{ref} has no prediction on {name}", **common
        )
    try:
        figure = _figure(ctx, spec, ctx.version.ref, ids, name)
        reference = _figure(ctx, spec, ref, ids, name)
    except _Undefined as e:
        return GateResult(
            label,
            "relative",
            None,
            shape,
            "fail",
            str(e),
            pattern_set=name,
            size=len(ids),
            **common,
        )
    if "tolerance" in spec.raw:
        limit = reference + tol if lower else reference - tol
    else:
        limit = reference * ratio
    ok = _compare(figure, limit, spec.metric)
    detail = (
        f"{spec.metric} {figure:.4f} vs {ref} {reference:.4f} (bound {limit:.4f}) over "
        f"{name} ({len(ids)} patterns)"
    )
    if "significance" in spec.raw:
        test, p = _paired_test(ctx, ref, ids)
        significant = p <= float(spec.raw["significance"])
        detail += f"; {test} p = {p:.4g}" + ("" if significant else " (not significant)")
        ok = ok and significant
    bound = f"{'<=' if lower else '>='} {limit:.4f}"
    if "significance" in spec.raw:
        bound += f", p <= {spec.raw['significance']:g}"
    return GateResult(
        label,
        "relative",
        figure,
        bound,
        "pass" if ok else "fail",
        detail,
        pattern_set=name,
        size=len(ids),
        **common,
    )


def _paired_test(ctx: _Context, ref: str, ids: np.ndarray) -> tuple[str, float]:
    """The checked version against ``ref`` on ``ids``: McNemar or Wilcoxon, by task."""
    test, p = paired_test(
        ctx.predictions(ref), ctx.predictions(ctx.version.ref), ids, ctx.truth(ids)
    )
    return TEST_NAMES[test], p


def _problem_gate(ctx: _Context, spec: GateSpec, problem: Problem) -> GateResult:
    polarity = spec.polarity
    ids = np.array(
        sorted(problem.patterns(None if polarity == "all" else polarity)), dtype=np.int64
    )
    every = len(ids)
    also = ctx.reference(spec) if spec.kind == "no-break" else None
    name, ids, note = ctx.held_out(
        spec,
        f"problem:{problem.slug}",
        ids,
        () if polarity == "all" else (polarity,),
        problem=problem,
        also=also,
    )
    tolerance = problem.tolerance or ctx.dataset.tolerance
    measured = _ProblemSet(
        name,
        ids,
        every,
        note,
        tolerance if ctx.dataset.task == "regression" else None,
        {"pattern_set": name, "size": len(ids), "key": spec.key, "line": spec.line},
    )
    if spec.kind == "problem":
        return _score_gate(ctx, spec, measured)
    return _no_break_gate(ctx, spec, measured)


@dataclass(frozen=True)
class _ProblemSet:
    """A problem's patterns as a gate measures them."""

    name: str
    ids: np.ndarray
    every: int  # how many before what was trained on was left out
    note: str  # what was left out, for the detail
    tolerance: Tolerance | None  # regression: right within it
    common: dict[str, Any]  # the result's fields that every outcome shares

    @property
    def fields(self) -> dict[str, Any]:
        return {**self.common, "tolerance": str(self.tolerance) if self.tolerance else None}

    @property
    def within(self) -> str:
        return f" within {self.tolerance}" if self.tolerance else ""

    def nothing_to_measure(self) -> str:
        if self.every == 0:
            return f"{self.name} has no patterns"
        return (
            f"all {self.every} patterns of {self.name.split(' (')[0]} were trained on"
            f"{self.note}: none is held out to measure on (held-out = false measures them all)"
        )


def _score_gate(ctx: _Context, spec: GateSpec, measured: _ProblemSet) -> GateResult:
    minimum = float(spec.raw["min-score"])
    bound = f">= {minimum:g}"
    label = _label(spec, f"{measured.name} score {bound}")
    ids, fields = measured.ids, measured.fields
    if len(ids) == 0:
        detail = measured.nothing_to_measure()
        return GateResult(label, "problem", None, bound, "skip", detail, **fields)
    ctx.ensure(ctx.version.ref, ids)
    right = ctx.right(ctx.version.ref, ids, measured.tolerance)
    if right is None:
        detail = verdicts.undefined_reason(ctx.dataset)
        return GateResult(label, "problem", None, bound, "fail", detail, **fields)
    score = float(right.mean())
    wrong = ids[~right]
    detail = f"{int(right.sum())} of {len(ids)} right{measured.within}{measured.note}" + (
        f"; wrong: {_ids(wrong)}" if len(wrong) else ""
    )
    status = "pass" if score >= minimum else "fail"
    return GateResult(label, "problem", score, bound, status, detail, **fields)


def _no_break_gate(ctx: _Context, spec: GateSpec, measured: _ProblemSet) -> GateResult:
    vs = spec.vs
    label = _label(spec, f"{measured.name}: nothing {vs} gets right breaks")
    bound = "0 broken"
    ids, fields = measured.ids, measured.fields
    ref = ctx.reference(spec)
    if ref is None:
        detail = f"{ctx.version.model} has no {vs} version yet: nothing can break"
        return GateResult(label, "no-break", None, bound, "skip", detail, **fields)
    if len(ids) == 0:
        detail = measured.nothing_to_measure()
        return GateResult(label, "no-break", None, bound, "skip", detail, **fields)
    ctx.ensure(ctx.version.ref, ids)
    ctx.ensure(ref, ids)
    have = ids[np.isin(ids, ctx.predictions(ref).pattern_ids)]
    right_ref = ctx.right(ref, have, measured.tolerance)
    right_new = ctx.right(ctx.version.ref, have, measured.tolerance)
    if right_ref is None or right_new is None:
        detail = verdicts.undefined_reason(ctx.dataset)
        return GateResult(label, "no-break", None, bound, "fail", detail, **fields)
    broken = have[right_ref & ~right_new]
    detail = (
        f"{int(right_ref.sum())} of {len(have)} right by {ref}{measured.within}; "
        + (f"broken: {_ids(broken)}" if len(broken) else "none broken")
        + measured.note
        + (f"; {len(ids) - len(have)} not predicted by {ref}" if len(have) < len(ids) else "")
    )
    status = "fail" if len(broken) else "pass"
    return GateResult(label, "no-break", float(len(broken)), bound, status, detail, **fields)


def _ids(ids: np.ndarray, limit: int = 20) -> str:
    shown = " ".join(str(int(i)) for i in ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def check_version(
    parts: Parts,
    version: ModelVersion,
    criteria: Criteria,
    *,
    costs: Costs | None = None,
    trusted: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> list[GateResult]:
    """The results of every gate of ``criteria`` on ``version``; ``costs`` are the
    error costs the metrics ``cost`` and ``cost_per_pattern`` need."""
    ctx = _Context(parts, version, trusted, progress, costs)
    results: list[GateResult] = []
    for spec in criteria.gates:
        results.extend(run_gate(ctx, spec))
    return results
