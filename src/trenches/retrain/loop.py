"""One pass of the loop, step by step: snapshot, train, register, predict, backfill,
check, compare, decide; a step that fails leaves the pass ``failed``."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import update

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import write
from trenches.errors import InvalidInput, TrenchesError
from trenches.json_form import to_json
from trenches.predict import predict
from trenches.retrain.record import (
    Figures,
    ProblemTally,
    Progress,
    RetrainFailed,
    RetrainStep,
    insert_pass,
    read_passes,
)
from trenches.settings.gates import lower_is_better, metric_parts
from trenches.settings.retrain import RetrainSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.backfill import Backfill
    from trenches.evaluation import Evaluation
    from trenches.gates import Check, GateResult, Gates
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.monitoring.monitor import Monitoring
    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.patterns.snapshots import Snapshot, TrainingData
    from trenches.predictors import Predictors
    from trenches.problems import Problem, Problems
    from trenches.problems.scores import Scorer
    from trenches.runs.tracking import Run
    from trenches.settings import Settings


#: Starts a tracked run, as :meth:`trenches.Store.run` does.
RunStarter = Callable[..., "Run"]


@dataclass(frozen=True)
class Parts:
    """What a pass uses: the registry and the data, the predictions and the problems,
    the backfill and the gates, and a way to start a tracked run (``store.retrains`` is
    given them)."""

    engine: Engine
    models: Models
    datasets: Datasets
    predictors: Predictors
    problems: Problems
    backfill: Backfill
    gates: Gates
    monitoring: Monitoring
    run: RunStarter
    #: A new scorer of the problems (it reads each thing it needs once).
    scorer: Callable[[], Scorer]


@dataclass(frozen=True)
class Asked:
    """How a pass was asked for: the drift report that set it off (None: by hand),
    whether models that can run code may load, and who hears of each step."""

    report_id: int | None = None
    trusted: bool = False
    progress: Progress | None = None


class Pass:
    """The state of one pass while it runs, and its steps."""

    def __init__(
        self,
        parts: Parts,
        settings: RetrainSettings,
        function: Callable[[TrainingData], Any],
        dataset: Dataset,
        production: ModelVersion | None,
        asked: Asked,
        project: Settings,
    ) -> None:
        self.parts = parts
        self.settings = settings
        #: The whole trenches.toml the pass read: its gates and error costs.
        self.project = project
        self.function = function
        self.dataset = dataset
        self.production = production
        self.report_id = asked.report_id
        self.trusted = asked.trusted
        self.progress = asked.progress
        self.metric = settings.metric_for(dataset.task)
        self.body: dict[str, Any] = {"settings": to_json(settings), "metric": self.metric}
        self.id = 0

    def say(
        self, name: str, message: str, done: int | None = None, total: int | None = None
    ) -> None:
        if self.progress is not None:
            self.progress(RetrainStep(name, message, done, total))

    def record(self, **values: Any) -> None:
        with write(self.parts.engine) as conn:
            conn.execute(update(t.retrains).where(t.retrains.c.id == self.id).values(**values))

    def start(self) -> None:
        self.id = insert_pass(
            self.parts.engine, self.settings.model, self.report_id, self.production
        )
        self.say(
            "start",
            f"retrain #{self.id} of {self.settings.model} ("
            + (f"after drift report #{self.report_id}" if self.report_id else "by hand")
            + ")",
        )

    def snapshot(self) -> Snapshot:
        note = f"retrain #{self.id} of {self.settings.model}"
        if self.report_id is not None:
            note += f", after drift report #{self.report_id}"
        snap = self.dataset.snapshot(sources=self.settings.sources, note=note)
        self.record(snapshot_id=snap.id)
        self.body["snapshot"] = {
            "id": snap.id,
            "digest": snap.digest,
            "patterns": snap.patterns,
            "held_out": len(snap.held_out),
        }
        self.say(
            "snapshot",
            f"snapshot {snap.id} of {self.dataset.name}: {snap.patterns} patterns"
            + (f" from {', '.join(snap.sources)}" if snap.sources else "")
            + (
                f", {len(snap.held_out)} of open problems held out of training"
                if snap.held_out
                else ""
            )
            + f" (digest {snap.digest[:12]})",
        )
        return snap

    def train(self, snap: Snapshot) -> ModelVersion:
        s = self.settings
        data = snap.training_data(
            "train",
            weighting=s.weighting,
            half_life_days=s.half_life_days,
            age_offset_days=s.age_offset_days,
        )
        if len(data.y) == 0:
            raise InvalidInput(
                f"snapshot {snap.id} of {self.dataset.name} has no train patterns to fit on"
            )
        params: dict[str, Any] = {"train": s.train, "weighting": s.weighting}
        if s.weighting == "exponential":
            params["half_life_days"] = s.half_life_days
        elif s.weighting == "inverse-age":
            params["age_offset_days"] = s.age_offset_days
        if s.sources:
            params["sources"] = ",".join(s.sources)
        params["train_patterns"] = len(data.y)
        tags: dict[str, Any] = {"trenches.retrain": self.id}
        if self.report_id is not None:
            tags["trenches.drift_report"] = self.report_id
        weights = _weights_text(s)
        with self.parts.run(
            f"retrain-{s.model}"[:200], snapshot=snap, params=params, tags=tags
        ) as run:
            self.record(run_id=run.id)
            self.body["training"] = {
                "patterns": len(data.y),
                "weight_min": float(data.sample_weight.min()),
                "weight_max": float(data.sample_weight.max()),
            }
            self.say(
                "train",
                f"run {run.id} {run.name!r}: {s.train} on {len(data.y)} train patterns, {weights}",
            )
            fitted = _call(s, self.function, data)
            version = run.log_model(fitted, s.model)
        self.record(version_id=version.id)
        self.parts.models.promote(
            version.ref,
            "candidate",
            reason=f"retrain #{self.id}: trained by run {run.id} on snapshot {snap.id}",
        )
        self.say("candidate", f"candidate {version.ref} (alias candidate)")
        return version

    def predict(self, candidate: ModelVersion) -> tuple[str, np.ndarray, list[Problem]]:
        """Predict the validation split and every problem's patterns with the candidate
        and production (only what is not stored yet)."""
        from trenches.patterns.sets import split

        validation = split(self.dataset, "validation")
        name, ids = validation.name, validation.ids
        problems = self.parts.problems.list(dataset=self.dataset.name)
        problem_ids = np.asarray(sorted({i for p in problems for i in p.patterns()}), np.int64)
        wanted = np.union1d(ids, problem_ids)
        what = f"{name} and {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        made: dict[str, int] = {}
        for ref in self.refs(candidate):
            done = 0

            def advance(n: int, ref: str = ref) -> None:
                nonlocal done
                done += n
                self.say("predict", f"predicting {what} with {ref}", done, len(wanted))

            self.say("predict", f"predicting {what} with {ref}", 0, len(wanted))
            result = predict(
                self.parts.engine,
                self.parts.models,
                self.parts.predictors.resolve(ref),
                wanted,
                trusted=self.trusted,
                progress=advance,
            )
            made[ref] = result.computed
            self.say(
                "predicted",
                f"{ref}: {result.computed} new predictions of {what}, "
                f"{result.already} stored already",
            )
        self.body["predicted"] = made
        return name, ids, problems

    def backfill(self) -> None:
        """Predict, with every version of the dataset, the validation, test and problem
        patterns it lacks, so that charts and tables cover every version. A version that
        cannot predict is recorded with why, and the pass goes on."""
        name = self.dataset.name
        plan = self.parts.backfill.gaps(dataset=name)
        total = sum(g.missing for g in plan)
        what = f"backfilling every version of {name}"
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            self.say("predict", what, done, total)

        if total:
            self.say("predict", what, 0, total)
        result = self.parts.backfill(trusted=self.trusted, progress=advance, plan=plan)
        self.body["backfill"] = to_json(result)
        n = result.versions
        self.say(
            "backfill",
            f"backfill of {name}: "
            + (
                f"{result.computed} new predictions of validation, test and problem "
                f"patterns over {n} version{'s' if n != 1 else ''}"
                if result.missing
                else f"nothing missing, {n} version{'s' if n != 1 else ''} complete"
            )
            + (f", {len(result.skipped)} skipped" if result.skipped else ""),
        )
        for skipped in result.skipped:
            self.say("backfill", f"skipped {skipped.ref}: {skipped.reason}")

    def refs(self, candidate: ModelVersion) -> list[str]:
        """The candidate, and production when it predicts the same dataset."""
        if self.production is not None and self.production.dataset == self.dataset.name:
            return [candidate.ref, self.production.ref]
        return [candidate.ref]

    def check(self, candidate: ModelVersion) -> Check | None:
        if not self.settings.has_gates:
            self.say("check", f"no gates for {self.settings.model}: nothing is checked")
            return None

        def told(ref: str, n: int) -> None:
            self.say("predicted", f"{ref}: {n} new predictions the gates need")

        check = self.parts.gates.check(
            candidate.ref, settings=self.project, trusted=self.trusted, progress=told
        )
        self.record(check_id=check.id)
        self.body["gates"] = {
            "check_id": check.id,
            "passed": check.passed,
            "results": to_json(check.results),
        }
        n, failed = len(check.results), len(check.failed)
        self.say(
            "check",
            f"check #{check.id}: {candidate.ref} "
            + (
                f"passes {n - failed} of {n} gates"
                if check.passed
                else f"fails {failed} of {n} gates"
            ),
        )
        return check

    def compare(self, candidate: ModelVersion, name: str, ids: np.ndarray) -> Figures:
        from trenches.evaluation import evaluate
        from trenches.patterns.sets import PatternSet

        metric, lower = self.metric, lower_is_better(self.metric)
        gain = self.settings.min_improvement
        prod_ref = self.production.ref if self.production is not None else None

        def figures(c: float | None, p: float | None, better: bool, why: str) -> Figures:
            return Figures(metric, name, len(ids), c, p, prod_ref, lower, gain, better, why)

        if len(ids) == 0:
            return figures(
                None,
                None,
                False,
                f"the validation split of {self.dataset.name} is empty: the candidate cannot "
                "be judged better",
            )
        costs = self.project.costs
        c = _figure(
            evaluate(
                self.parts.engine,
                self.parts.predictors.resolve(candidate),
                PatternSet(name, ids),
                costs=costs,
            ),
            metric,
        )
        if self.production is None:
            why = (
                f"there is no production version of {self.settings.model} yet, so the "
                "candidate is better by default"
            )
            return figures(
                c,
                None,
                True,
                why
                + (
                    f" ({metric} {c:.4f} on {len(ids)} validation patterns)"
                    if c is not None
                    else ""
                ),
            )
        if self.production.dataset != self.dataset.name:
            return figures(
                c,
                None,
                False,
                f"production ({self.production.ref}) predicts dataset "
                f"{self.production.dataset!r}, the candidate {self.dataset.name!r}: their "
                "figures are over different patterns",
            )
        assert prod_ref is not None
        p = _figure(
            evaluate(
                self.parts.engine,
                self.parts.predictors.resolve(prod_ref),
                PatternSet(name, ids),
                costs=costs,
            ),
            metric,
        )
        if c is None or p is None:
            whose = "the candidate" if c is None else f"production ({prod_ref})"
            return figures(
                c,
                p,
                False,
                f"{metric} is not defined for {whose} on {name} ({len(ids)} patterns): the "
                "candidate cannot be judged better",
            )
        gained = (p - c) if lower else (c - p)
        better = gained > gain
        over = f"on {len(ids)} validation patterns ({name})"
        if better:
            why = f"{metric} {c:.4f} beats production's {p:.4f} ({prod_ref}) {over}"
        else:
            why = f"{metric} {c:.4f} is not better than production's {p:.4f} ({prod_ref}) {over}"
            if gain > 0:
                why += f": it must beat it by more than {gain:g}"
            if lower:
                why += f" (lower is better for {metric})"
        return figures(c, p, better, why)

    def tallies(self, candidate: ModelVersion, problems: list[Problem]) -> list[ProblemTally]:
        if not problems:
            return []
        scorer = self.parts.scorer()
        entries = [scorer.entry(self.parts.models.get(ref)) for ref in self.refs(candidate)]
        out = []
        for problem in problems:
            scores = [scorer.score(problem, self.dataset, entry) for entry in entries]
            if scores[0].undefined:  # regression without a tolerance: no right or wrong
                return []
            out.append(
                ProblemTally(
                    problem.slug,
                    problem.status,
                    len(problem.patterns()),
                    scores[0].right,
                    scores[1].right if len(scores) > 1 else None,
                )
            )
        return out


def _weights_text(s: RetrainSettings) -> str:
    def days(n: float) -> str:
        return f"{n:g} day" + ("" if n == 1 else "s")

    if s.weighting == "exponential":
        return f"exponential recency weights (half-life {days(s.half_life_days)})"
    if s.weighting == "inverse-age":
        return f"inverse-age recency weights (age offset {days(s.age_offset_days)})"
    return "equal weights"


def _call(s: RetrainSettings, function: Callable[[TrainingData], Any], data: TrainingData) -> Any:
    """The user's function on the training data, checked to return a fitted model."""
    try:
        fitted = function(data)
    except Exception as e:
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        raise RetrainFailed(f"the training function {s.train} raised {text}") from e
    if fitted is None or not callable(getattr(fitted, "predict", None)):
        raise RetrainFailed(
            f"the training function {s.train} returned "
            + ("None" if fitted is None else f"a {type(fitted).__name__}")
            + ", not a fitted model (an object with predict); return the model it fitted"
        )
    from trenches.models import formats

    if formats.is_sklearn(fitted):
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(fitted)
        except NotFittedError:
            raise RetrainFailed(
                f"the training function {s.train} returned a {type(fitted).__name__} that "
                "is not fitted; call fit(...) before returning it"
            ) from None
        except TypeError:  # not an estimator check_is_fitted knows
            pass
    return fitted


def _figure(result: Evaluation, metric: str) -> float | None:
    base, cls = metric_parts(metric)
    if cls is None:
        value = result.metrics.get(base)
    elif result.per_class is not None and cls in result.per_class.index:
        value = result.per_class.loc[cls, base]
    else:
        value = None
    if value is None or value != value:
        return None
    return float(value)


def _gate_text(r: GateResult) -> str:
    from trenches.gates.outputs import figure_text

    figure = f" ({figure_text(r)})" if r.figure is not None and r.figure == r.figure else ""
    return f"{r.gate}{figure}"


def decide(p: Pass, check: Check | None, figures: Figures) -> tuple[bool, str]:
    """Promote or not, and why, in words."""
    model = p.settings.model
    after = f"; after drift report #{p.report_id}" if p.report_id is not None else ""
    if check is not None and check.passed and figures.better:
        n = len(check.results)
        return True, (
            f"retrain #{p.id}: passed {n - len(check.skipped)} of {n} gates (check "
            f"#{check.id}); {figures.why}{after}"
        )
    why = []
    if check is None:
        why.append(
            f"no gates for {model} in {p.settings.file}: a candidate needs gates in "
            f"trenches.toml ([[gates.{model}]]) to be promoted automatically"
        )
    elif not check.passed:
        failed = check.failed
        why.append(
            f"failed {len(failed)} of {len(check.results)} gates (check #{check.id}): "
            + "; ".join(_gate_text(r) for r in failed)
        )
    if not figures.better or check is None:
        why.append(figures.why)
    return False, f"retrain #{p.id}: " + "; ".join(why) + after


@contextlib.contextmanager
def failing(p: Pass) -> Iterator[None]:
    """Record the pass as failed when a step raises, and raise a RetrainFailed."""
    try:
        yield
    except BaseException as e:
        if not isinstance(e, Exception):
            message = f"interrupted ({type(e).__name__})"
        elif isinstance(e, TrenchesError):
            message = str(e)
        else:
            message = "".join(traceback.format_exception_only(type(e), e)).strip()
        p.body["error"] = message
        p.record(
            status="failed",
            reason=message[:10_000],
            body=orjson.dumps(p.body).decode(),
            ended_at=timestamps.now_us(),
        )
        if not isinstance(e, Exception):
            raise
        [recorded] = read_passes(p.parts.engine, t.retrains.c.id == p.id)
        raise RetrainFailed(
            f"retrain #{p.id} of {p.settings.model} failed: {message}; nothing was promoted",
            recorded,
        ) from e
