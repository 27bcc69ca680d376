"""The Store: one object that binds the database and the artifact store."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine

from trenches import config, tables, timestamps
from trenches.artifacts import ArtifactStore
from trenches.db import migrate
from trenches.db.engine import make_engine
from trenches.errors import NotFound
from trenches.settings import Settings, Source

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trenches.backfill import Backfill
    from trenches.baselines import Baselines
    from trenches.compaction import Compaction, Migration
    from trenches.comparison import Comparison, Comparisons, Flips
    from trenches.compute import Cluster
    from trenches.evaluation import EvaluateResult
    from trenches.explain import Explanations
    from trenches.gates import Gates
    from trenches.lineage import Lineage
    from trenches.models import Models
    from trenches.models.versions import ModelVersion
    from trenches.monitoring.monitor import Monitoring
    from trenches.patterns.datasets import Datasets
    from trenches.patterns.history import Patterns
    from trenches.patterns.sets import PatternSet
    from trenches.patterns.snapshots import Snapshot, Snapshots
    from trenches.predict import PredictResult
    from trenches.predictors import Predictor, Predictors
    from trenches.problems import Problems
    from trenches.problems.scores import Scorer
    from trenches.requests.log import Requests
    from trenches.requests.reviews import Reviews
    from trenches.retrain import Retrains
    from trenches.runs import Run, Runs
    from trenches.scoring import Scoring
    from trenches.team.accounts import Accounts
    from trenches.team.audit import Audit
    from trenches.team.roles import Grants
    from trenches.team.sessions import Sessions
    from trenches.team.tokens import Tokens
    from trenches.traffic.policies import Traffic
    from trenches.traffic.replay import Replays


class Store:
    """A trenches store: ``store.datasets``, ``store.patterns``, ``store.snapshots``.

    Open one with :func:`trenches.open`.
    """

    def __init__(
        self, location: config.Location, engine: Engine, settings: Source | None = None
    ) -> None:
        self.location = location
        self.engine = engine
        #: Content-addressed files (model files, diffs, environments) by SHA-256.
        self.artifacts = ArtifactStore(location.artifacts)
        #: Bulk facts (predictions) in Iceberg tables, beside the artifacts.
        tables.bind(engine, location.artifacts)
        self._settings = settings or Source(Settings())

    @property
    def settings(self) -> Settings:
        """The project's ``trenches.toml``, checked (see :func:`trenches.open`): read on
        first use, and again only when the file changes."""
        return self._settings.current()

    # Each part of the store loads its code on first use: a server or a short command
    # pays only for what it touches.

    @cached_property
    def datasets(self) -> Datasets:
        from trenches.patterns.datasets import Datasets

        return Datasets(self.engine, elsewhere=self._cluster)

    @cached_property
    def patterns(self) -> Patterns:
        from trenches.patterns.history import Patterns

        return Patterns(self.engine)

    @cached_property
    def snapshots(self) -> Snapshots:
        from trenches.patterns.snapshots import Snapshots

        return Snapshots(self.engine)

    @cached_property
    def runs(self) -> Runs:
        from trenches.runs import Runs

        return Runs(self.engine)

    @cached_property
    def models(self) -> Models:
        from trenches.models import Models

        # Promotion policy lives with the gates; the registry is told it, not reaching
        # for it (the gates load only when an alias moves).
        return Models(
            self.engine,
            self.artifacts,
            lambda: self.datasets,
            guard=lambda ref, alias, force: self.gates.guard_promotion(ref, alias, force),
        )

    @cached_property
    def baselines(self) -> Baselines:
        from trenches.baselines import Baselines

        return Baselines(self.engine, self.datasets)

    @cached_property
    def predictors(self) -> Predictors:
        from trenches.predictors import Predictors

        return Predictors(self.engine, self.models, self.baselines, self.datasets)

    @cached_property
    def backfill(self) -> Backfill:
        """Every version predicts every pattern it is measured on: ``store.backfill(...)``
        (``trenches backfill``); ``store.backfill.gaps()`` says first what it will do.
        See :class:`trenches.backfill.Backfill`."""
        from trenches.backfill import Backfill

        return Backfill(
            self.engine, self.models, self.datasets, self.predictors, cluster=self._cluster
        )

    @cached_property
    def score(self) -> Scoring:
        """Predict files' rows into a file: ``trenches predict``; see :mod:`trenches.scoring`."""
        from trenches.scoring import Scoring

        return Scoring(self.models, cluster=self._cluster)

    @cached_property
    def problems(self) -> Problems:
        from trenches.problems import Problems

        parts = (self.datasets, self.predictors, self.baselines, self.snapshots, self.backfill)
        return Problems(self.engine, *parts)

    @cached_property
    def gates(self) -> Gates:
        from trenches.gates import Gates, Parts

        parts = (self.models, self.datasets, self.predictors, self.problems, self.baselines)
        return Gates(Parts(self.engine, *parts, self._scorer, self.location), lambda: self.settings)

    @cached_property
    def explanations(self) -> Explanations:
        from trenches.explain import Explanations

        return Explanations(self.engine, self.models, self.datasets, self.runs, self.snapshots)

    @cached_property
    def requests(self) -> Requests:
        from trenches.requests.log import Requests

        return Requests(self.engine, self.models, self.datasets, lambda: self.problems)

    @cached_property
    def reviews(self) -> Reviews:
        """The labelling queue's reviews: what was kept, relabelled or sent."""
        from trenches.requests.reviews import Reviews

        return Reviews(self.engine)

    @cached_property
    def monitoring(self) -> Monitoring:
        from trenches.monitoring.monitor import Monitoring, Parts

        parts = (self.models, self.datasets, self.runs, self.snapshots, self.predictors)
        return Monitoring(
            Parts(self.engine, *parts, self.requests, self._cluster), lambda: self.settings
        )

    @cached_property
    def retrains(self) -> Retrains:
        from trenches.retrain import Retrains
        from trenches.retrain.loop import Parts

        parts = Parts(
            self.engine,
            self.models,
            self.datasets,
            self.predictors,
            self.problems,
            self.backfill,
            self.gates,
            self.monitoring,
            self.run,
            self._scorer,
        )
        return Retrains(parts, lambda: self.settings)

    # The team: who may sign in, with what, to do what; and who did what.

    @cached_property
    def accounts(self) -> Accounts:
        """User accounts: ``store.accounts.create("ada", password=...)``."""
        from trenches.team.accounts import Accounts

        return Accounts(self.engine)

    @cached_property
    def tokens(self) -> Tokens:
        """API tokens, each shown once and stored as SHA-256."""
        from trenches.team.tokens import Tokens

        return Tokens(self.engine)

    @cached_property
    def sessions(self) -> Sessions:
        """Browser sessions of the team server: sign in with a password, a cookie after."""
        from trenches.team.sessions import Sessions

        return Sessions(self.engine, self.accounts)

    @cached_property
    def grants(self) -> Grants:
        """Roles per namespace, and what each allows (``store.grants.allowed``)."""
        from trenches.team.roles import Grants

        return Grants(self.engine)

    @cached_property
    def traffic(self) -> Traffic:
        """Traffic policies: shadow, canary, A/B, bandit (``trenches traffic``)."""
        from trenches.traffic.policies import Traffic

        return Traffic(self.engine, self.models)

    @cached_property
    def replays(self) -> Replays:
        """A candidate replayed on the request log (``trenches replay``)."""
        from trenches.predict import load_model
        from trenches.traffic.replay import Replays

        load = lambda v, trusted: load_model(self.models, v, trusted)  # noqa: E731
        return Replays(self.engine, self.models, self.requests, load)

    @cached_property
    def audit(self) -> Audit:
        """The audit log: every marked change, who made it, when and from where."""
        from trenches.team.audit import Audit

        return Audit(self.engine)

    @cached_property
    def _comparisons(self) -> Comparisons:
        from trenches.comparison import Comparisons

        costs = lambda: self.settings.costs  # noqa: E731
        return Comparisons(self.engine, self.predictors, self.problems, self._scorer, costs)

    def _scorer(self) -> Scorer:
        """A new scorer of the problems, for a check, a comparison or a pass."""
        from trenches.problems.scores import Scorer

        return Scorer(self.engine, self.problems, self.predictors, self.baselines, self.snapshots)

    @property
    def url(self) -> str:
        """The database URL, with any password hidden."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_embedded(self) -> bool:
        return self.location.sqlite_path is not None

    def run(
        self,
        name: str,
        *,
        snapshot: Snapshot | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        capture_code: bool = True,
    ) -> Run:
        """Start a run: ``with store.run("train", snapshot=snap, params={...}) as run:``.

        The run records the git commit, branch, dirty diff and environment it started
        with (``capture_code=False`` skips git), and ends as finished, or failed when
        the block raises.
        """
        from trenches.runs import Run

        return Run(
            self.engine,
            self.artifacts,
            self.models,
            name,
            snapshot=snapshot,
            params=params,
            tags=tags,
            capture_code=capture_code,
            # Asked only in a git repository, as the run starts.
            git_tag=lambda: self.settings.git_tag,
        )

    def lineage(self, ref: str, *, data: bool = True) -> Lineage:
        """What made the model version ``ref``: run, code, snapshot, data, environment.
        ``data=False`` leaves out the snapshot's patterns counted by source and split
        (``Lineage.data`` None): a count over the whole snapshot, which a page shown
        often does without."""
        from trenches.lineage import lineage

        return lineage(self.models.get(ref), engine=self.engine, runs=self.runs, data=data)

    def predict(
        self,
        ref: str | ModelVersion | Predictor,
        patterns: Sequence[int] | np.ndarray | PatternSet,
        *,
        trusted: bool = False,
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PredictResult:
        """Predict ``patterns`` (ids, or a :class:`~trenches.PatternSet`) with the version
        ``ref`` where it has no prediction yet; each batch is stored in its own
        transaction. ``progress(n)`` hears of each batch. On the Dask cluster of
        ``[compute] scheduler`` when one is set (see :mod:`trenches.compute`)."""
        from trenches.patterns.sets import PatternSet

        ids = patterns.ids if isinstance(patterns, PatternSet) else patterns
        return self._predict(
            self.predictors.resolve(ref),
            ids,
            trusted=trusted,
            batch_size=batch_size,
            progress=progress,
        )

    def _predict(
        self,
        predictor: Predictor,
        ids: Sequence[int] | np.ndarray,
        *,
        trusted: bool,
        batch_size: int | None,
        progress: Callable[[int], None] | None,
        split: str | None = None,
    ) -> PredictResult:
        from trenches.predict import CHUNK, predict

        with self._cluster() as cluster:
            return predict(
                self.engine,
                self.models,
                predictor,
                ids,
                trusted=trusted,
                progress=progress,
                chunk=batch_size or CHUNK,
                split=split,
                cluster=cluster,
            )

    @contextmanager
    def _cluster(self) -> Iterator[Cluster | None]:
        """The Dask cluster heavy work goes to (None: this process), for one job."""
        from trenches import compute

        chosen = compute.scheduler(self.settings)
        with compute.cluster(chosen, self.location, opened_once) as cluster:
            yield cluster

    def evaluate(
        self,
        ref: str | ModelVersion | Predictor,
        patterns: str | PatternSet = "validation",
        *,
        predict: bool = True,
        with_problems: bool = True,
        trusted: bool = False,
        batch_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> EvaluateResult:
        """Measure the version (or baseline) ``ref`` over ``patterns``: a split
        (``validation``, ``test``, ``train``, ``all``) or a :class:`~trenches.PatternSet`.

        First, unless ``predict=False``, it predicts what it has not yet predicted of the
        set and, ``with_problems``, of every problem's patterns, so the problem table
        stays complete; each prediction is stored once, each batch in its own
        transaction, so a killed run loses at most one batch. ``progress(done, total)``
        hears of each batch. The reference is resolved once. A predictor without a
        prediction for every pattern of the set is refused, never measured on part."""
        from trenches.evaluation import measure

        costs = self.settings.costs  # a mistake in trenches.toml stops it before predicting
        predictor = self.predictors.resolve(ref)

        def problem_ids() -> list[int]:
            return [
                i for p in self.problems.list(dataset=predictor.dataset.name) for i in p.patterns()
            ]

        def predicting(
            ids: np.ndarray, split: str | None, heard: Callable[[int], None] | None
        ) -> PredictResult:
            return self._predict(
                predictor,
                ids,
                trusted=trusted,
                batch_size=batch_size,
                progress=heard,
                split=split,
            )

        return measure(
            self.engine,
            predictor,
            patterns,
            costs=costs,
            predict=predicting if predict else None,
            problem_ids=problem_ids if with_problems else None,
            progress=progress,
        )

    def predictions(
        self,
        ref: str | Predictor,
        patterns: Sequence[int] | np.ndarray | str | PatternSet | None = None,
    ) -> pd.DataFrame:
        """The predictions of a version (``name@3``) or a baseline, with the patterns
        they are about, indexed by ``pattern_id``: inputs, label, split, source,
        prediction, class scores, right, loss (and error, for regression).

        ``patterns``: None (every pattern it predicted), pattern ids, ``validation``,
        ``test``, ``train``, ``all``, ``problem:SLUG`` or a
        :class:`~trenches.PatternSet`; patterns of the set it has no prediction for are
        kept, with ``predicted`` False. See :func:`trenches.prediction_table.table`.
        """
        import numpy as np

        from trenches.errors import InvalidInput
        from trenches.patterns.sets import PatternSet
        from trenches.prediction_table import table

        predictor = self.predictors.resolve(ref)
        if isinstance(patterns, str) and patterns.startswith("problem:"):
            problem = self.problems.get(patterns.split(":", 1)[1])
            if problem.dataset != predictor.dataset.name:
                raise InvalidInput(
                    f"problem {problem.slug!r} is about dataset {problem.dataset!r}, and "
                    f"{predictor.ref} about {predictor.dataset.name!r}"
                )
            ids = np.asarray(problem.patterns(), dtype=np.int64)
            patterns = PatternSet(f"problem:{problem.slug}", ids)
        return table(self.engine, predictor, patterns)

    def compare(
        self, a: str | Predictor, b: str | Predictor, *, problem: str | None = None
    ) -> Comparison:
        """Compare ``a`` and ``b`` (versions ``name@V`` or baseline names) on the patterns
        both predicted, or on a problem's patterns: what each fixed and broke, McNemar's
        test, the metric deltas and what changed in the data (``trenches compare``)."""
        return self._comparisons.compare(a, b, problem=problem)

    def flips(self, a: str | Predictor, b: str | Predictor) -> Flips:
        """Only which patterns ``a`` and ``b`` disagree on (right for one, wrong for the
        other) over the patterns both predicted, with the paired test: the quick query
        behind :meth:`compare`, without its metrics."""
        return self._comparisons.flips(a, b)

    def compact(
        self, *, older_than: str = "3d", progress: Callable[[str], None] | None = None
    ) -> Compaction:
        """Tidy the store's bulk facts: predictions kept inline move into the Iceberg
        table, small files are merged, and Iceberg snapshots and files no longer needed
        are removed once ``older_than`` (30m, 24h, 3d) has passed since they were
        replaced. Safe while others read and write (``trenches compact``)."""
        from trenches import compaction

        before = timestamps.parse(older_than, what="--older-than")
        assert before is not None
        return compaction.compact(self.engine, before_us=before, progress=progress)

    def migrate(self, *, progress: Callable[[str], None] | None = None) -> Migration:
        """Move what an earlier release kept as blobs in the database (predictions) into
        the Iceberg tables; safe to run again, and while others work
        (``trenches migrate``)."""
        from trenches import compaction

        return compaction.migrate(self.engine, progress=progress)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.url}>"


_opened: dict[config.Location, Store] = {}
_opening = threading.Lock()


def opened_once(location: config.Location) -> Store:
    """The store at ``location``, opened once per process: how a worker of a Dask
    cluster opens the store of the client that sent it work (which opened it, and
    upgraded its schema, first)."""
    with _opening:
        found = _opened.get(location)
        if found is None:
            found = Store(location, make_engine(location.db_url))
            _opened[location] = found
        return found


def open(
    path_or_url: str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
    settings: Settings | str | os.PathLike[str] | None = None,
    token: str | None = None,
) -> Store:
    """Open a store, creating it (and upgrading its schema) as needed.

    ``path_or_url``: see :func:`trenches.config.resolve`; by default
    ``$TRENCHES_DB_URL`` or ``.trenches/trenches.db`` in the working directory.
    With ``create=False``, a store that does not exist yet is an error.

    A team server's URL (``https://trenches.example``) opens its store over HTTP: a
    :class:`~trenches.client.RemoteStore`, which offers this API for a team member's
    day-to-day work with the server's settings, and raises
    :class:`~trenches.NotOfferedRemotely` for the rest. Its token is ``token``, else
    ``$TRENCHES_TOKEN``, else the token file (``$TRENCHES_TOKEN_FILE``, or
    ``~/.config/trenches/token``, readable by its owner alone).

    ``settings``: the project's ``trenches.toml`` as ``store.settings`` gives it to
    gates, monitoring, retraining, evaluation and runs: a :class:`trenches.Settings`,
    the path of a file, or by default the nearest ``trenches.toml`` in the working
    directory (as it is now) or a folder above it.
    """
    from trenches.client.http import is_remote

    given = path_or_url if path_or_url is not None else os.environ.get(config.ENV_DB_URL)
    if is_remote(given):
        from trenches.client import connect

        # Duck-typed: the remote store answers the part of the Store API it offers.
        return cast("Store", connect(str(given), token=token, settings=settings))
    source = Source(settings, Path.cwd())
    location = config.resolve(path_or_url)
    if location.sqlite_path is not None:
        config.check_sqlite_path(location.sqlite_path, create=create)
    engine = make_engine(location.db_url)
    try:
        if not create and not migrate.schema_exists(engine):
            raise NotFound(
                f"the database {location.db_url} holds no trenches store; run `trenches init`"
            )
        migrate.upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    if "://" not in location.artifacts:
        Path(location.artifacts).mkdir(parents=True, exist_ok=True)
    store = Store(location, engine, source)
    from trenches.runs.tracking import reap_killed_runs

    reap_killed_runs(engine)
    return store
