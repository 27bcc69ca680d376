"""Batch scoring of files: every row of some input files (Parquet, CSV, JSON lines)
predicted by a model version, into one output file (``trenches predict``): the
once-a-day scoring job many teams run instead of a server.

The files are read and predicted a slice of rows at a time (:data:`CHUNK`), so a file
larger than memory streams through. The output holds every input row in order (the
files of a glob in the sorted order of their names, each file's rows in its order):
the input's columns (all, or those ``keep`` names, e.g. an id), then ``prediction``
(the class, or the value) and, for a classifier, ``p_<class>`` for each class. An
input column named like one of these is renamed ``data_<name>``, as in
``store.predictions``.

On a Dask cluster (``[compute] scheduler``, see :mod:`trenches.compute`) each task
reads its own slice of the input files by path (a local path or an fsspec URL that
the workers reach) and returns its predictions; the client reads the columns it
keeps and writes the output in input order. Nothing is stored: the output file is the
result, and it appears whole, or not at all.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trenches.errors import InvalidInput, TrenchesError, UntrustedModel
from trenches.models.versions import ModelVersion
from trenches.predict import load_model
from trenches.prediction_table import clear_of
from trenches.scoring import inputs
from trenches.scoring.outputs import Output
from trenches.scoring.rows import Predicted, predicted, prediction_columns, prediction_names

if TYPE_CHECKING:
    from trenches.compute import Cluster
    from trenches.models.registry import Models

#: Rows read, predicted and written at a time (on a cluster: a task's).
CHUNK = 100_000


@dataclass(frozen=True)
class ScoringResult:
    """What a scoring job did: the version it predicted with, the files it read, the
    rows it wrote to ``output``, and where it ran (``cluster``: the scheduler's
    address; None: in this process)."""

    ref: str
    inputs: tuple[str, ...]
    output: str
    rows: int
    cluster: str | None


class Scoring:
    """Batch scoring of files: ``store.score(ref, "in/*.parquet", "out.parquet")``."""

    def __init__(
        self,
        models: Models,
        *,
        cluster: Callable[[], AbstractContextManager[Cluster | None]] = nullcontext,
    ) -> None:
        """``cluster``: opens where the rows are predicted for one job (a Dask cluster;
        None in it: this process)."""
        self._models = models
        self._cluster = cluster

    def __call__(
        self,
        ref: str | ModelVersion,
        input: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        keep: Sequence[str] | None = None,
        trusted: bool = False,
        chunk: int = CHUNK,
        progress: Callable[[int, int], None] | None = None,
    ) -> ScoringResult:
        """Predict every row of ``input`` (a file, or a glob of files: local paths or
        fsspec URLs; ``.parquet``, ``.csv`` or ``.jsonl``) with the version ``ref``,
        into the file ``output`` (its format from its suffix). ``keep``: the input
        columns copied to the output (None: all). ``trusted``: a pickled model may
        load (see :meth:`trenches.Models.load`). ``chunk``: rows read and predicted at
        a time. ``progress(rows, total)`` hears of each slice written.

        Bad input (no file matching, a file that does not parse, a column the model
        takes that a file lacks, a value that is not of its column's type) is
        :class:`~trenches.InvalidInput` naming the file (and the row and column where
        it can), and no output file is written."""
        version = ref if isinstance(ref, ModelVersion) else self._models.get(ref)
        if chunk < 1:
            raise InvalidInput(f"chunk must be at least 1 row, not {chunk}")
        with Output(output) as out:
            paths = inputs.matching(os.fspath(input))
            with self._cluster() as cluster:
                model = self._model(version, trusted, here=cluster is None)
                files = _planned(paths, chunk, cluster)
                job = _Job(version, files, keep)
                if job.rows == 0:
                    raise InvalidInput("there are no rows to predict", file=os.fspath(input))
                if cluster is None:
                    _here(job, out, model, progress)
                else:
                    _there(cluster, job, out, trusted, progress)
                address = None if cluster is None else str(cluster.client.scheduler.address)
        return ScoringResult(version.ref, tuple(paths), out.path, out.rows, address)

    def _model(self, version: ModelVersion, trusted: bool, *, here: bool) -> Any:
        """The model, loaded ``here`` (None: the workers load it), or the refusal of
        one that may not load, before any file is read: a pickle, or a skops file
        holding names outside trenches' fixed list, without ``trusted``."""
        if here:
            return load_model(self._models, version, trusted)
        if version.needs_trust and not trusted and "onnx" not in version.formats:
            raise UntrustedModel(
                f"{version.ref} loads only with trusted=True (--trusted): its file can run "
                f"code ({', '.join(version.needs_trust)})"
            )
        return None


def _here(job: _Job, out: Output, model: Any, progress: Callable[[int, int], None] | None) -> None:
    """The job in this process: each slice read once, predicted by ``model``, written."""
    needed = job.version.signature.columns
    for part in inputs.slices_of(job.files):
        table = inputs.read(part, job.reading(needed), needed=needed)
        job.write(out, table, predicted(model, job.version, table, part), part)
        if progress is not None:
            progress(part.rows, job.rows)


def _there(
    cluster: Cluster,
    job: _Job,
    out: Output,
    trusted: bool,
    progress: Callable[[int, int], None] | None,
) -> None:
    """The job on a cluster: a task a slice, a few per worker sent ahead of the one
    being written; the client reads the columns it keeps of each slice while the
    workers predict, and writes them with the slice's predictions, in order. Ctrl-C
    (or any failure) cancels the tasks."""
    from trenches.compute import PARTS_PER_WORKER
    from trenches.compute.tasks import RETRIES
    from trenches.scoring.tasks import score_slice

    parts = list(inputs.slices_of(job.files))
    ahead = cluster.workers() * PARTS_PER_WORKER
    tag = uuid.uuid4().hex[:8]
    sent: deque[Any] = deque()

    def send(k: int) -> None:
        sent.append(
            cluster.client.submit(
                score_slice,
                cluster.opened,
                cluster.location,
                job.version,
                trusted,
                parts[k],
                key=f"trenches-score-{tag}-{k}",
                retries=RETRIES,
                pure=False,
            )
        )

    try:
        for k, part in enumerate(parts):
            while len(sent) + k < len(parts) and len(sent) < ahead:
                send(len(sent) + k)
            table = inputs.read(part, job.reading(()))
            found: Predicted | TrenchesError = sent[0].result()
            sent.popleft().release()
            if isinstance(found, TrenchesError):
                raise found
            job.write(out, table, found, part)
            if progress is not None:
                progress(part.rows, job.rows)
    except BaseException:
        cluster.client.cancel(list(sent))
        raise


def _planned(paths: Sequence[str], chunk: int, cluster: Cluster | None) -> list[inputs.InputFile]:
    """Each file cut into slices: on the cluster when there is one (a CSV or JSON lines
    file is scanned where it is read)."""
    if cluster is None:
        return [inputs.plan(p, chunk) for p in paths]
    tag = uuid.uuid4().hex[:8]
    futures = [
        cluster.client.submit(inputs.plan, p, chunk, key=f"trenches-plan-{tag}-{k}", pure=False)
        for k, p in enumerate(paths)
    ]
    try:
        return list(cluster.client.gather(futures))
    except BaseException:
        cluster.client.cancel(futures)
        raise


class _Job:
    """What a scoring job reads and writes: the version, the files, the input columns
    it keeps (known once the first slice is read, for JSON lines kept whole) and the
    names they take in the output."""

    def __init__(
        self, version: ModelVersion, files: list[inputs.InputFile], keep: Sequence[str] | None
    ) -> None:
        self.version = version
        self.files = files
        self.rows = sum(f.rows for f in files)
        self.ours = prediction_names(version)
        first = files[0].columns
        self.kept: list[str] | None = (
            list(keep) if keep is not None else None if first is None else list(first)
        )
        for f in files:
            self._check(f)

    def _check(self, f: inputs.InputFile) -> None:
        """That a file with known columns has every one the model takes and the job
        keeps."""
        if f.columns is None:
            return
        for name in self.version.signature.columns:
            if name not in f.columns:
                raise InvalidInput(
                    f"{self.version.ref} takes the input {name!r}, which the file does not have",
                    file=f.path,
                    field=name,
                )
        for name in self.kept or ():
            if name not in f.columns:
                raise InvalidInput("the column to keep is not in the file", file=f.path, field=name)

    def reading(self, needed: Sequence[str]) -> list[str] | None:
        """The columns to read of a slice: those kept, and ``needed`` (None: all)."""
        if self.kept is None:
            return None
        return list(dict.fromkeys([*self.kept, *needed]))

    def write(self, out: Output, table: Any, found: Predicted, part: inputs.Slice) -> None:
        """The kept columns of ``table`` and the predictions ``found``, as the output's
        next rows."""
        import pyarrow as pa

        if self.kept is None:
            self.kept = list(table.column_names)
        renames = clear_of(self.kept, set(self.ours))
        columns = {renames.get(n, n): table[n] for n in self.kept}
        columns.update(prediction_columns(self.version, found))
        out.write(pa.table(columns), part)
