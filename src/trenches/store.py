"""The Store: one object that binds the database and the artifact store."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from trenches import config
from trenches.artifacts import ArtifactStore
from trenches.db import migrate
from trenches.db.engine import make_engine
from trenches.errors import NotFound, StoreError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from trenches.baselines import Baselines
    from trenches.explain import Explanations
    from trenches.gates import Gates
    from trenches.lineage import Lineage
    from trenches.models import Models
    from trenches.monitoring.monitor import Monitoring
    from trenches.patterns.datasets import Datasets
    from trenches.patterns.history import Patterns
    from trenches.patterns.snapshots import Snapshot, Snapshots
    from trenches.problems import Problems
    from trenches.requests.log import Requests
    from trenches.retrain import Retrains
    from trenches.runs import Run, Runs


class Store:
    """A trenches store: ``store.datasets``, ``store.patterns``, ``store.snapshots``.

    Open one with :func:`trenches.open`.
    """

    def __init__(self, location: config.Location, engine: Engine) -> None:
        self.location = location
        self.engine = engine
        #: Content-addressed files (model files, diffs, environments) by SHA-256.
        self.artifacts = ArtifactStore(location.artifacts)

    # Each part of the store loads its code on first use: a server or a short command
    # pays only for what it touches.

    @cached_property
    def datasets(self) -> Datasets:
        from trenches.patterns.datasets import Datasets

        return Datasets(self)

    @cached_property
    def patterns(self) -> Patterns:
        from trenches.patterns.history import Patterns

        return Patterns(self)

    @cached_property
    def snapshots(self) -> Snapshots:
        from trenches.patterns.snapshots import Snapshots

        return Snapshots(self)

    @cached_property
    def runs(self) -> Runs:
        from trenches.runs import Runs

        return Runs(self)

    @cached_property
    def models(self) -> Models:
        from trenches.models import Models

        return Models(self)

    @cached_property
    def baselines(self) -> Baselines:
        from trenches.baselines import Baselines

        return Baselines(self)

    @cached_property
    def problems(self) -> Problems:
        from trenches.problems import Problems

        return Problems(self)

    @cached_property
    def gates(self) -> Gates:
        from trenches.gates import Gates

        return Gates(self)

    @cached_property
    def explanations(self) -> Explanations:
        from trenches.explain import Explanations

        return Explanations(self)

    @cached_property
    def requests(self) -> Requests:
        from trenches.requests.log import Requests

        return Requests(self)

    @cached_property
    def monitoring(self) -> Monitoring:
        from trenches.monitoring.monitor import Monitoring

        return Monitoring(self)

    @cached_property
    def retrains(self) -> Retrains:
        from trenches.retrain import Retrains

        return Retrains(self)

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
            self, name, snapshot=snapshot, params=params, tags=tags, capture_code=capture_code
        )

    def lineage(self, ref: str) -> Lineage:
        """What made the model version ``ref``: run, code, snapshot, data, environment."""
        from trenches.lineage import lineage

        return lineage(self, ref)

    def predictions(
        self, ref: str, patterns: Sequence[int] | np.ndarray | str | None = None
    ) -> pd.DataFrame:
        """The predictions of a version (``name@3``) or a baseline, with the patterns
        they are about, indexed by ``pattern_id``: inputs, label, split, source,
        prediction, class scores, right, loss (and error, for regression).

        ``patterns``: None (every pattern it predicted), pattern ids, ``validation``,
        ``test``, ``train``, ``all`` or ``problem:SLUG``; patterns of the set it has no
        prediction for are kept, with ``predicted`` False. See
        :func:`trenches.predictions.table`.
        """
        from trenches.predictions import table

        return table(self, ref, patterns)

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


def _check_sqlite_path(path: Path, *, create: bool) -> None:
    """Refuse, naming it, a database path that cannot be a store: a folder, or a path
    below a file (``--store notes.txt`` is read as the folder ``notes.txt/``)."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise StoreError(
            f"{blocker} is a file, not a store folder; name a store folder, a .db or "
            ".sqlite file, or a database URL"
        )
    if path.exists():
        return
    if not create:
        raise NotFound(
            f"no trenches store at {path}; run `trenches init` first, or set {config.ENV_DB_URL}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot make the store folder {path.parent}: {e.strerror}") from None


def open(path_or_url: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
    """Open a store, creating it (and upgrading its schema) as needed.

    ``path_or_url``: see :func:`trenches.config.resolve`; by default
    ``$TRENCHES_DB_URL`` or ``.trenches/trenches.db`` in the working directory.
    With ``create=False``, a store that does not exist yet is an error.
    """
    location = config.resolve(path_or_url)
    if location.sqlite_path is not None:
        _check_sqlite_path(location.sqlite_path, create=create)
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
    store = Store(location, engine)
    from trenches.runs.tracking import reap_killed_runs

    reap_killed_runs(store)
    return store
