"""Backfill: every model version of a dataset predicts every pattern it is measured on.

What a version is measured on: the active validation and test patterns of its dataset,
and every problem's patterns. A version registered before a pattern arrived (a new
validation pattern, a problem added later) lacks a prediction for it; the backfill
computes exactly those, so every version stands on the same patterns and the charts
and tables cover them all (invariant 3: a prediction is stored once, and the backfill
only fills the gaps).

It goes through :func:`trenches.predict.predict`, which predicts only what is missing
and stores each chunk in its own transaction: a backfill stopped half-way keeps what
it stored, and the next one does the rest. A version that cannot predict (a pickled
model without ``trusted=True``, a corrupted file, an input column the dataset lacks) is
skipped with the reason, and the other versions are done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import select

from trenches import predictions as store_of
from trenches import tables
from trenches.db import schema as t
from trenches.db.engine import id_in, read
from trenches.errors import ArtifactCorrupted, StoreError, TrenchesError
from trenches.json_form import json_shape
from trenches.predict import CHUNK, Elsewhere, on_columns, predict, to_predict
from trenches.tables.arrays import ascending_unique
from trenches.tables.pruning import Bound, among

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from trenches.compute import Cluster, Job
    from trenches.models.registry import Models
    from trenches.patterns.datasets import Dataset, Datasets
    from trenches.predictors import Predictor, Predictors

#: The splits every version is measured on, beside the problem patterns.
MEASURED_SPLITS = ("validation", "test")
_NONE = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class SkippedVersion:
    """A version the backfill could not predict with, and why, in one line."""

    ref: str
    reason: str


@dataclass(frozen=True)
class Gap:
    """What one version lacks: of the ``patterns`` it should have a prediction for
    (their ids in ``wanted``), the ``missing`` ones it has none for yet."""

    ref: str
    dataset: str
    patterns: int
    missing: int
    wanted: np.ndarray = field(repr=False, compare=False, default_factory=lambda: _NONE)


@dataclass(frozen=True)
class VersionBackfill:
    """What the backfill did for one version: it lacked ``missing`` of ``patterns``
    predictions and ``computed`` of them (0 when it was skipped)."""

    ref: str
    dataset: str
    patterns: int
    missing: int
    computed: int
    skipped: bool = False


@json_shape(computed=("missing",), order=("computed", "missing"))
@dataclass(frozen=True)
class BackfillResult:
    """What one backfill did: the predictions it computed, the versions it visited,
    the ones it skipped (with why), and each version's counts."""

    computed: int
    versions: int
    skipped: tuple[SkippedVersion, ...] = ()
    per_version: tuple[VersionBackfill, ...] = ()

    @property
    def missing(self) -> int:
        """The predictions the versions lacked when the backfill started."""
        return sum(v.missing for v in self.per_version)


class Backfill:
    """``store.backfill``: every model version predicts every pattern it is measured on.

    ``store.backfill(dataset=...)`` runs it; :meth:`gaps` says first what it will do."""

    def __init__(
        self,
        engine: Engine,
        models: Models,
        datasets: Datasets,
        predictors: Predictors,
        cluster: Callable[[], AbstractContextManager[Cluster | None]] = nullcontext,
    ) -> None:
        """``cluster``: opens where the predictions are made for one backfill (a Dask
        cluster; None in it: this process)."""
        self._engine = engine
        self._models = models
        self._datasets = datasets
        self._predictors = predictors
        self._cluster = cluster

    def gaps(self, *, dataset: str | None = None) -> tuple[Gap, ...]:
        """What each version of every dataset (or of ``dataset``) lacks of its
        validation, test and problem patterns, oldest version first; the total is what
        the backfill will compute, and it can be given to it as its ``plan``."""
        return _plan(self._engine, _measured_on(self._engine, self._datasets, dataset))

    def __call__(
        self,
        *,
        dataset: str | None = None,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
        plan: Sequence[Gap] | None = None,
    ) -> BackfillResult:
        """Predict, with every model version of every dataset (or of ``dataset``), each
        active validation and test pattern and each problem pattern it has no
        prediction for. ``progress`` is called with the number of patterns dealt with,
        which add up to the total of :meth:`gaps`; ``plan``, what :meth:`gaps` gave
        (for a progress bar that knows its total), spares working it out again.

        A version that cannot predict is skipped (``result.skipped`` says why) and the
        others are done; ``trusted=True`` lets models that can run code load.
        """
        if plan is None:
            plan = self.gaps(dataset=dataset)
        return self._fill(plan, trusted, progress)

    def patterns(
        self,
        patterns: Mapping[str, Sequence[int] | np.ndarray],
        *,
        trusted: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> BackfillResult:
        """Predict the given patterns (by dataset name) with every version of their
        dataset that lacks them: what adding patterns to a problem does. Skips as the
        backfill does."""
        wanted = [
            (self._datasets.get(name), np.unique(np.asarray(ids, dtype=np.int64)))
            for name, ids in patterns.items()
        ]
        return self._fill(_plan(self._engine, wanted), trusted, progress)

    def _fill(
        self,
        plan: Sequence[Gap],
        trusted: bool,
        progress: Callable[[int], None] | None,
    ) -> BackfillResult:
        done: list[VersionBackfill] = []
        skipped: list[SkippedVersion] = []
        with self._cluster() as cluster:
            if cluster is None:
                for gap in plan:
                    self._fill_gap(gap, trusted, progress, None, done, skipped)
            else:
                self._fill_on(cluster, plan, trusted, progress, done, skipped)
        return BackfillResult(
            computed=sum(d.computed for d in done),
            versions=len(done),
            skipped=tuple(skipped),
            per_version=tuple(done),
        )

    def _fill_on(
        self,
        cluster: Cluster,
        plan: Sequence[Gap],
        trusted: bool,
        progress: Callable[[int], None] | None,
        done: list[VersionBackfill],
        skipped: list[SkippedVersion],
    ) -> None:
        """:meth:`_fill` on a cluster: the parts of every version's gap are sent at once,
        so that the workers are kept busy across versions; each is stored as it comes."""
        sent: list[tuple[Gap, Job]] = []
        made: dict[str, VersionBackfill] = {}
        from trenches import compute

        small: list[tuple[Gap, tuple[Predictor, np.ndarray]]] = []
        for gap, todo in zip(plan, self._todo(plan), strict=True):
            if todo is None:
                before = len(done)
                self._fill_gap(gap, trusted, progress, cluster, done, skipped)
                made[gap.ref] = done.pop(before)
            elif len(todo[1]) < compute.LEAST_PART:
                small.append((gap, todo))  # a few versions a task
            else:
                job = cluster.submit(*todo, trusted=trusted, chunk=CHUNK, split=None)
                sent.append((gap, job))
        jobs = cluster.submit_small([todo for _, todo in small], trusted=trusted)
        sent += [(gap, job) for (gap, _), job in zip(small, jobs, strict=True)]
        counted = [0] * len(sent)
        position = {id(job): k for k, (_, job) in enumerate(sent)}

        def heard(job: Job) -> Callable[[int], None]:
            k = position[id(job)]

            def advance(n: int) -> None:
                counted[k] += n
                if progress is not None:
                    progress(n)

            return advance

        results = cluster.gather([job for _, job in sent], engine=self._engine, progress=heard)
        for k, ((gap, _), got) in enumerate(zip(sent, results, strict=True)):
            if isinstance(got, TrenchesError):
                skipped.append(SkippedVersion(gap.ref, _why_skipped(got)))
            if progress is not None and counted[k] < gap.missing:
                progress(gap.missing - counted[k])  # a skipped version's share of the total
            if isinstance(got, Exception) and not isinstance(got, TrenchesError):
                raise got
            computed = 0 if isinstance(got, Exception) else got
            made[gap.ref] = VersionBackfill(
                gap.ref,
                gap.dataset,
                gap.patterns,
                gap.missing,
                computed,
                isinstance(got, Exception),
            )
        done.extend(made[gap.ref] for gap in plan)

    def _todo(self, plan: Sequence[Gap]) -> list[tuple[Predictor, np.ndarray] | None]:
        """Per gap of ``plan``, its version and what it has yet to predict of a
        columnar dataset, for a cluster (what each has predicted read at once for the
        versions that share their patterns); None for a gap filled otherwise: nothing
        left, an earlier release's dataset, or a version that cannot predict (its own
        fill skips it, saying why)."""
        resolved: list[Predictor | None] = []
        for gap in plan:
            try:
                resolved.append(self._predictors.resolve(gap.ref) if gap.missing else None)
            except TrenchesError:
                resolved.append(None)
        shared: dict[int, tuple[np.ndarray, list[int]]] = {}
        for gap, predictor in zip(plan, resolved, strict=True):
            if predictor is not None:
                shared.setdefault(id(gap.wanted), (gap.wanted, []))[1].append(predictor.id)
        had: dict[int, np.ndarray] = {}
        with read(self._engine) as conn:
            for ids, predictors in shared.values():
                had.update(_predicted_of(conn, predictors, ascending_unique(ids)))
        out: list[tuple[Predictor, np.ndarray] | None] = []
        for gap, predictor in zip(plan, resolved, strict=True):
            todo = None
            if predictor is not None and on_columns(predictor):
                with suppress(TrenchesError):
                    todo = to_predict(self._engine, predictor, gap.wanted, had[predictor.id])[1]
            out.append(
                (predictor, todo)
                if predictor is not None and todo is not None and len(todo)
                else None
            )
        return out

    def _fill_gap(
        self,
        gap: Gap,
        trusted: bool,
        progress: Callable[[int], None] | None,
        cluster: Elsewhere | None,
        done: list[VersionBackfill],
        skipped: list[SkippedVersion],
    ) -> None:
        """Fill one version's gap (in ``cluster`` when there is one), adding what it
        did to ``done`` and, when it cannot predict, why to ``skipped``."""
        counted = 0

        def advance(n: int) -> None:
            nonlocal counted
            counted += n
            if progress is not None:
                progress(n)

        computed, why = 0, None
        if gap.missing:
            try:
                predictor = self._predictors.resolve(gap.ref)
                computed = predict(
                    self._engine,
                    self._models,
                    predictor,
                    gap.wanted,
                    trusted=trusted,
                    progress=advance,
                    cluster=cluster,
                ).computed
            except TrenchesError as e:
                why = _why_skipped(e)
                skipped.append(SkippedVersion(gap.ref, why))
            if progress is not None and counted < gap.missing:
                progress(gap.missing - counted)  # a skipped version's share of the total
        done.append(
            VersionBackfill(
                gap.ref,
                gap.dataset,
                gap.patterns,
                gap.missing,
                computed,
                why is not None,
            )
        )


def _why_skipped(e: TrenchesError) -> str:
    """Why a version is skipped, from what it raised; the store's own trouble is
    raised again (no use going on to the next version)."""
    if isinstance(e, StoreError) and not isinstance(e, ArtifactCorrupted):
        raise e
    return " ".join(str(e).split())


def _measured_on(
    engine: Engine, datasets: Datasets, dataset: str | None
) -> list[tuple[Dataset, np.ndarray]]:
    """Each dataset's patterns every version is measured on: the active validation and
    test patterns, and the patterns of its problems (open or closed)."""
    chosen = [datasets.get(dataset)] if dataset is not None else datasets.list()
    out = []
    for ds in chosen:
        splits = np.concatenate([ds.pattern_ids(split) for split in MEASURED_SPLITS])
        pp, pr = t.problem_patterns.c, t.problems.c
        with read(engine) as conn:
            problem_ids = np.fromiter(
                conn.execute(
                    select(pp.pattern_id)
                    .join(t.problems, pp.problem_id == pr.id)
                    .where(pr.dataset_id == ds.id)
                ).scalars(),
                dtype=np.int64,
            )
        out.append((ds, np.union1d(splits, problem_ids)))
    return out


def _plan(engine: Engine, wanted: Iterable[tuple[Dataset, np.ndarray]]) -> tuple[Gap, ...]:
    """Every version of each dataset, oldest first, with what it lacks of ``wanted``."""
    v, m, p = t.model_versions.c, t.models.c, t.predictors.c
    out = []
    with read(engine) as conn:
        for ds, ids in wanted:
            rows = conn.execute(
                select(m.name, v.version, p.id)
                .join(t.models, v.model_id == m.id)
                .outerjoin(t.predictors, p.version_id == v.id)
                .where(v.dataset_id == ds.id)
                .order_by(v.created_at, v.id)
            ).all()
            had = _predicted_of(conn, [p for _, _, p in rows if p is not None], ids)
            for name, version, predictor in rows:
                have = had.get(predictor, np.zeros(0, dtype=np.int64))
                missing = len(np.setdiff1d(ids, have, assume_unique=True))
                out.append(Gap(f"{name}@{version}", ds.name, len(ids), missing, ids))
    return tuple(out)


def _predicted_of(
    conn: Connection, predictors: Sequence[int], among_ids: np.ndarray
) -> dict[int, np.ndarray]:
    """:func:`~trenches.predictions.predicted_ids` of each of ``predictors`` among the
    same ``among_ids`` (ascending), from one query and one read of the table: what a
    backfill asks of every version."""
    from pyiceberg.expressions import And, In

    from trenches.tables.filters import between

    found: dict[int, list[np.ndarray]] = {int(p): [] for p in predictors}
    if found and len(among_ids):
        b = t.prediction_blocks.c
        chosen = id_in(conn.dialect.name, b.predictor_id, list(found))
        for predictor, blob in conn.execute(select(b.predictor_id, b.pattern_ids).where(chosen)):
            ids = np.frombuffer(blob, dtype="<i8")
            found[int(predictor)].append(ids[among(ids, among_ids)])
        store = tables.of(conn)
        span = between("pattern_id", int(among_ids[0]), int(among_ids[-1]))
        chosen_ones = cast(Any, In)("predictor_id", set(found))
        files = store.files(conn, store_of.TABLE, And(chosen_ones, span))
        if files:
            rows = store.read(
                files,
                columns=["predictor_id", "pattern_id"],
                bounds=[Bound("pattern_id", among=among_ids)],
            )
            by, ids = (rows.column(c).to_numpy() for c in ("predictor_id", "pattern_id"))
            for predictor in np.intersect1d(np.unique(by), list(found)):
                found[int(predictor)].append(ids[by == predictor])
    return {
        p: ascending_unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        for p, parts in found.items()
    }
