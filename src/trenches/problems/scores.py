"""Every predictor's score on every problem: the share of the problem's patterns it gets
right, over all of them and over those it did not train on (held out).

A version trained on a problem's patterns can score well by memory alone; the held-out
score is over the patterns it never saw (not in its snapshot's train split, nor any
copy of their inputs), which is its skill. A baseline was not trained here, so all its
patterns are held out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import select

from trenches import predictions as store_of
from trenches import timestamps
from trenches import verdicts as verdict
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.json_form import json_shape

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.baselines import Baselines
    from trenches.models.versions import ModelVersion
    from trenches.patterns.datasets import Dataset
    from trenches.patterns.snapshots import Snapshots
    from trenches.predictors import Predictors
    from trenches.problems import Problem, Problems
    from trenches.verdicts import Tolerance


@json_shape(
    rename={"trained_ids": "trained_on", "right_ids": "right", "wrong_ids": "wrong"},
    omit=("problem", "positive_right", "positive_total", "negative_right", "negative_total"),
    computed={
        "score": lambda s: s.score,
        "held_out_score": lambda s: s.held_out_score,
        "positive": lambda s: [s.positive_right, s.positive_total],
        "negative": lambda s: [s.negative_right, s.negative_total],
        "held_out": lambda s: [s.held_out_right, s.held_out_total],
    },
    order=(
        *("predictor", "created_at", "score", "held_out_score", "positive", "negative"),
        *("held_out", "trained_on", "right", "wrong", "missing"),
    ),
)
@dataclass(frozen=True)
class ProblemScore:
    """How one predictor does on one problem: the share of its patterns it gets right,
    for positive and negative patterns apart, and over the patterns it did not train on.
    """

    problem: str
    predictor: str
    created_at: datetime
    positive_right: int
    positive_total: int
    negative_right: int
    negative_total: int
    #: Patterns of the problem that the predictor has no prediction for (baselines).
    missing: int
    right_ids: tuple[int, ...] = ()
    wrong_ids: tuple[int, ...] = ()
    #: Patterns of the problem the version trained on (they, or a copy of their inputs,
    #: were in its snapshot's train split); None when unknown (a baseline, or a version
    #: registered without a snapshot): then every pattern counts as held out.
    trained_ids: tuple[int, ...] | None = None
    #: Regression: the tolerance within which a value counted as right.
    tolerance: Tolerance | None = None
    #: Why right and wrong are not defined (a regression without a tolerance), or None.
    undefined: str | None = None

    @property
    def right(self) -> int:
        return self.positive_right + self.negative_right

    @property
    def total(self) -> int:
        return self.positive_total + self.negative_total

    @property
    def score(self) -> float:
        return _share(self.right, self.total, self.undefined)

    @property
    def positive_score(self) -> float:
        return _share(self.positive_right, self.positive_total, self.undefined)

    @property
    def negative_score(self) -> float:
        return _share(self.negative_right, self.negative_total, self.undefined)

    @property
    def trained_on(self) -> int | None:
        """How many of the problem's patterns the version trained on (None: unknown)."""
        return None if self.trained_ids is None else len(self.trained_ids)

    @property
    def held_out_right(self) -> int:
        seen = set(self.trained_ids or ())
        return sum(1 for i in self.right_ids if i not in seen)

    @property
    def held_out_total(self) -> int:
        seen = set(self.trained_ids or ())
        return sum(1 for i in (*self.right_ids, *self.wrong_ids) if i not in seen)

    @property
    def held_out_score(self) -> float:
        """The share right of the predicted patterns it did not train on."""
        return _share(self.held_out_right, self.held_out_total, self.undefined)


def _share(right: int, total: int, undefined: str | None) -> float:
    return right / total if total and undefined is None else math.nan


@dataclass(frozen=True)
class Entry:
    """A predictor that can be scored: a model version (with its snapshot) or a baseline."""

    ref: str
    created_at: datetime
    version_id: int | None
    snapshot_id: int | None


class Scorer:
    """Scores problems for many predictors, reading each predictor's predictions, each
    problem's labels and each snapshot's training set once."""

    def __init__(
        self,
        engine: Engine,
        problems: Problems,
        predictors: Predictors,
        baselines: Baselines,
        snapshots: Snapshots,
    ) -> None:
        self.engine = engine
        self.snapshots = snapshots
        self._problems = problems
        self._predictors = predictors
        self._baselines = baselines
        self._found: dict[str, store_of.Predictions] = {}
        self._asked: dict[str, np.ndarray] = {}
        self._truth: dict[str, np.ndarray] = {}
        self._every: dict[str, np.ndarray] = {}

    def entries(self, dataset: Dataset, *, baselines: bool = True) -> list[Entry]:
        """The versions of ``dataset``'s models in the order they were made, then its
        baselines."""
        v, m, r = t.model_versions.c, t.models.c, t.runs.c
        with read(self.engine) as conn:
            rows = conn.execute(
                select(m.name, v.version, v.created_at, v.id, r.snapshot_id)
                .select_from(
                    t.model_versions.join(t.models, v.model_id == m.id).outerjoin(
                        t.runs, v.run_id == r.id
                    )
                )
                .where(v.dataset_id == dataset.id)
                .order_by(v.created_at, v.id)
            ).all()
        out = [
            Entry(f"{name}@{version}", timestamps.from_us(at), int(vid), snap)
            for name, version, at, vid, snap in rows
        ]
        if baselines:
            for b in self._baselines.list():
                if b.dataset == dataset.name:
                    out.append(Entry(b.name, b.created_at, None, None))
        return out

    def predictions(self, ref: str, dataset: str, ids: np.ndarray) -> store_of.Predictions:
        """``ref``'s predictions on the problem patterns of ``dataset`` (and ``ids``):
        only those are read, not the whole prediction set."""
        asked = self._asked.get(ref)
        if asked is None or not np.isin(ids, asked).all():
            wanted = np.union1d(self._problem_patterns(dataset), ids)
            predictor = self._predictors.resolve(ref)
            with read(self.engine) as conn:
                self._found[ref] = store_of.read_some(
                    conn, predictor.id, wanted, columns=("correct", "value")
                )
            self._asked[ref] = wanted
        return self._found[ref]

    def score(self, problem: Problem, dataset: Dataset, entry: Entry) -> ProblemScore:
        """``entry``'s score on ``problem`` (a problem of ``dataset``)."""
        ids = np.asarray(sorted(problem.patterns()), dtype=np.int64)
        found = self.predictions(entry.ref, problem.dataset, ids)
        have = ids[np.isin(ids, found.pattern_ids)]
        tolerance = problem.tolerance or dataset.tolerance
        undefined = None
        truth = self._labels(problem, dataset, have)
        right = verdict.right(found, have, dataset, tolerance, truth=truth)
        if right is None:
            undefined = verdict.undefined_reason(dataset)
            right = np.zeros(len(have), dtype=bool)
        positive = np.isin(have, problem.positive)
        trained = self._trained_ids(entry, problem, ids)
        return ProblemScore(
            problem=problem.slug,
            predictor=entry.ref,
            created_at=entry.created_at,
            positive_right=int((right & positive).sum()),
            positive_total=int(positive.sum()),
            negative_right=int((right & ~positive).sum()),
            negative_total=int((~positive).sum()),
            missing=len(ids) - len(have),
            right_ids=() if undefined else tuple(int(i) for i in have[right]),
            wrong_ids=() if undefined else tuple(int(i) for i in have[~right]),
            trained_ids=trained,
            tolerance=tolerance if dataset.task == "regression" else None,
            undefined=undefined,
        )

    def _labels(self, problem: Problem, dataset: Dataset, ids: np.ndarray) -> np.ndarray | None:
        """The labels of a regression problem's patterns ``ids`` (read once)."""
        if dataset.task != "regression":
            return None
        every = np.asarray(sorted(problem.patterns()), dtype=np.int64)
        if problem.slug not in self._truth:
            self._truth[problem.slug] = verdict.labels(dataset, every)
        return self._truth[problem.slug][np.searchsorted(every, ids)]

    def _trained_ids(
        self, entry: Entry, problem: Problem, ids: np.ndarray
    ) -> tuple[int, ...] | None:
        # One look at the snapshot for every problem pattern of the dataset, not one per
        # problem: a report asks for every (version, problem).
        every = self._problem_patterns(problem.dataset)
        mask = self.trained(entry, every)
        if mask is None:
            return None
        seen = set(every[mask].tolist())
        return tuple(int(i) for i in ids if int(i) in seen)

    def _problem_patterns(self, dataset: str) -> np.ndarray:
        if dataset not in self._every:
            ids = {i for p in self._problems.list(dataset=dataset) for i in p.patterns()}
            self._every[dataset] = np.asarray(sorted(ids), dtype=np.int64)
        return self._every[dataset]

    def trained(self, entry: Entry, ids: np.ndarray) -> np.ndarray | None:
        """For each of ``ids``, whether ``entry`` trained on it; None when unknown (a
        baseline, or a version registered without a snapshot)."""
        if entry.snapshot_id is None:
            return None
        return self.snapshots.trained_on(entry.snapshot_id, ids)

    def entry(self, version: ModelVersion) -> Entry:
        """A model version as an :class:`Entry`, with the snapshot its run trained on."""
        snapshot_id = None
        if version.run_id is not None:
            with read(self.engine) as conn:
                snapshot_id = conn.execute(
                    select(t.runs.c.snapshot_id).where(t.runs.c.id == version.run_id)
                ).scalar()
        return Entry(version.ref, version.created_at, version.id, snapshot_id)
