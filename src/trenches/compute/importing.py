"""An import of several files on a Dask cluster: the steps of
:mod:`trenches.patterns.file_imports`, a task a file each. A worker reads its file by
path (a local path or a URL), and keeps it, read and converted, for the file's later
steps (Dask runs them where the file's read result is); it surveys the rows against
the dataset's table as committed, and writes them, with the ids the client gave, as
the table's data files, which the client commits with the import's batches in one
transaction. The client decides, between the steps, what must be decided in one place:
which rows are stored already and which ids each file takes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from trenches.compute.tasks import RETRIES
from trenches.patterns import file_imports as steps

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy.engine import Connection

    from trenches.compute import Cluster
    from trenches.config import Location
    from trenches.patterns import inputs as inp
    from trenches.patterns.datasets import Dataset
    from trenches.patterns.imports import ProgressCallback


class ClusterSteps:
    """:class:`~trenches.patterns.file_imports.Steps` on a cluster (one import's)."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._client = cluster.client
        self._tag = uuid.uuid4().hex[:8]
        self._shapes: list[tuple[int, inp.InputSchema, str]] = []

    def _submit(self, task: Callable[..., Any], k: int, step: str, *args: Any) -> Any:
        return self._client.submit(
            task,
            self._cluster.opened,
            self._cluster.location,
            *args,
            key=f"trenches-import-{step}-{k}-{self._tag}",
            retries=RETRIES,
            pure=False,
        )

    def _in_order(self, futures: list[Any]) -> list[Any]:
        """What ``futures`` give, in order; when some fail, the error of the first of
        them in order (a bad file is the first bad one, as in one process)."""
        from distributed import as_completed

        try:
            for _ in as_completed(futures, loop=self._client.loop):  # type: ignore[no-untyped-call]
                pass
            return [f.result() for f in futures]
        except BaseException:
            self._client.cancel(futures)
            raise

    def read(self, dataset: Dataset, files: Sequence[tuple[str, str]]) -> list[Any]:
        handles = [
            self._submit(read_part, k, "read", dataset.id, path, name)
            for k, (path, name) in enumerate(files)
        ]
        shapes = [
            self._client.submit(
                shape_of, h, key=f"trenches-import-shape-{k}-{self._tag}", pure=False
            )
            for k, h in enumerate(handles)
        ]
        try:
            self._shapes = self._in_order(shapes)
        except BaseException:
            self._client.cancel(handles)
            raise
        return handles

    def rows(self, handles: Sequence[Any]) -> list[tuple[int, inp.InputSchema, str]]:
        return self._shapes

    def survey(
        self, dataset: Dataset, handles: Sequence[Any], source: str, when: int, conn: Connection
    ) -> list[steps.Survey]:
        # The workers read the dataset as committed: as the client's lock leaves it.
        return self._in_order(
            [
                self._submit(survey_part, k, "survey", dataset.id, h, source, when)
                for k, h in enumerate(handles)
            ]
        )

    def write(
        self,
        dataset: Dataset,
        handles: Sequence[Any],
        plans: Sequence[steps.Plan],
        conn: Connection,
        progress: ProgressCallback | None,
    ) -> list[steps.Written]:
        from distributed import as_completed

        futures = [
            self._submit(write_part, k, "write", dataset.id, h, plan)
            for k, (h, plan) in enumerate(zip(handles, plans, strict=True))
        ]
        try:
            for future in as_completed(futures, loop=self._client.loop):  # type: ignore[no-untyped-call]
                written = future.result()
                if progress is not None:
                    progress(written.encoded.rows)
            return [f.result() for f in futures]
        except BaseException:
            self._client.cancel(futures)
            raise
        finally:
            self._client.cancel(list(handles))


# --- the tasks ----------------------------------------------------------------


def read_part(
    opened: Callable[[Location], Any], location: Location, dataset_id: int, path: str, name: str
) -> steps.Read:
    """On a worker: step 1 of the file at ``path``, for the dataset of the store at
    ``location``."""
    store = opened(location)
    return steps.read_rows(store.datasets.by_id(dataset_id), path, name)


def shape_of(file: steps.Read) -> tuple[int, inp.InputSchema, str]:
    """A file's rows, schema and label type: what the client hears of a read."""
    return file.rows, file.schema, file.label_type


def survey_part(
    opened: Callable[[Location], Any],
    location: Location,
    dataset_id: int,
    file: steps.Read,
    source: str,
    when: int,
) -> steps.Survey:
    """On a worker: step 2 of a file read, against the dataset's table as committed."""
    from trenches import tables
    from trenches.db.engine import read
    from trenches.patterns.columnar import table_name
    from trenches.patterns.existing import StoredContent

    store = opened(location)
    dataset = store.datasets.by_id(dataset_id)
    with read(store.engine) as conn:
        # The dataset's keys are read once a worker for all the files of an import: the
        # table's commit (its metadata file) names the patterns they are of.
        key = (location.db_url, tables.of(conn).version(conn, table_name(dataset_id)))
        with _lock:
            keys = _keys.get(key)
        stored = StoredContent(conn, dataset, keys=keys)
        if keys is None:
            with _lock:
                _keys.clear()  # the last import's only: they may be large
                _keys[key] = stored.keys
        return steps.survey(dataset, file, source, when, stored)


def write_part(
    opened: Callable[[Location], Any],
    location: Location,
    dataset_id: int,
    file: steps.Read,
    plan: steps.Plan,
) -> steps.Written:
    """On a worker: step 4 of a file read, as the table's data files (not committed)."""
    from trenches.db.engine import read

    store = opened(location)
    dataset = store.datasets.by_id(dataset_id)
    with read(store.engine) as conn:
        table = steps.DataFiles(conn, dataset, file.schema)
        encoded = steps.write_rows(dataset, file, plan, table, None)
        return steps.Written(encoded, table.files)


_lock = threading.Lock()
#: A worker's keys of the dataset its last import surveyed, by database and commit.
_keys: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray]] = {}
