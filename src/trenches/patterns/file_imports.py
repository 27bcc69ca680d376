"""An import of several files into a columnar dataset (``trenches data add A B ...``,
``Dataset.add_files``): one import batch a file, all in one transaction.

The import is cut into steps, run in this process or elsewhere (a Dask cluster, which
the store hands the dataset as an :class:`~trenches.patterns.folds.Elsewhere`), so
that both give the same patterns:

1. **read** each file (a worker reads its own, a local path or a URL) and check and
   convert its rows; a bad row refuses the whole import, naming file, row and field,
   before the write lock;
2. under the write lock, **survey** each file: which rows the dataset holds already
   (the same inputs, label and source) and each row's content hash;
3. **decide** here: a row of a later file the same as a row of an earlier one counts as
   stored already too (the rows of one import share its time, so their content hashes
   are equal exactly when the rest is); each file takes its batch and, in the order of
   the files, its consecutive pattern ids;
4. **write** each file's rows, with their ids, as the table's data files (on a cluster
   each worker writes its file's, committing nothing), and commit them all, with the
   batches and their ranges, in the one transaction.

Files written for an import that is not committed are strays, which ``trenches
compact`` removes. An earlier release's dataset (rows in the database) takes its files
one import, and one transaction, each, in this process.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
from sqlalchemy.engine import Connection, Engine

from trenches import tables, timestamps
from trenches.db.audit import change
from trenches.db.engine import lock_patterns, read, write
from trenches.errors import InvalidInput
from trenches.names import SPLITS, check_source
from trenches.patterns import codec, columnar, imports, table_imports
from trenches.patterns import inputs as inp
from trenches.patterns.existing import StoredContent
from trenches.patterns.frames import no_gc
from trenches.patterns.imports import ImportResult, ProgressCallback, Provenance
from trenches.patterns.ranges import next_pattern_id, record_range
from trenches.patterns.table_imports import Batch, Encoded, ImportRows
from trenches.tables.appending import Appending

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset
    from trenches.patterns.folds import Opener


@dataclass(frozen=True, eq=False)
class Read:
    """One file of an import, read, checked and converted (step 1)."""

    #: What errors and its batch call the file.
    file: str
    schema: inp.InputSchema
    label_type: str
    cols: dict[str, inp.CoercedColumn]
    labels: codec.Coded

    @property
    def rows(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class Survey:
    """Step 2 of one file: for each row, in file order, whether the dataset holds it
    already, and its content hash (n, 16)."""

    seen: np.ndarray
    hashes: np.ndarray


@dataclass(frozen=True, eq=False)
class Plan:
    """What was decided for one file before any is written (step 3): its batch (id,
    first pattern id, tags), which of its rows are stored already, and the import's
    source, time and whether it leaves those out."""

    batch: Batch
    seen: np.ndarray
    source: str
    when: int
    skip_existing: bool


@dataclass(frozen=True, eq=False)
class Written:
    """Step 4 of one file: what it wrote and, when it was written elsewhere, the
    table's data files for the client to commit."""

    encoded: Encoded
    files: list[Any] | None = None


class Steps(Protocol):
    """Where the steps of an import of several files run: :class:`Here`, or a Dask
    cluster (:meth:`trenches.compute.Cluster.import_steps`)."""

    def read(self, dataset: Dataset, files: Sequence[tuple[str, str]]) -> list[Any]:
        """Each file (its path or URL, and its name) read and checked: a handle each,
        in order; the first bad file's ``InvalidInput`` (in the order of the files)."""
        ...

    def rows(self, handles: Sequence[Any]) -> list[tuple[int, inp.InputSchema, str]]:
        """Each file's rows, schema and label type."""
        ...

    def survey(
        self, dataset: Dataset, handles: Sequence[Any], source: str, when: int, conn: Connection
    ) -> list[Survey]:
        """Step 2 for each file, against the dataset as the connection's write lock
        leaves it."""
        ...

    def write(
        self,
        dataset: Dataset,
        handles: Sequence[Any],
        plans: Sequence[Plan],
        conn: Connection,
        progress: ProgressCallback | None,
    ) -> list[Written]:
        """Step 4 for each file, in the connection's write transaction: the files
        written here are committed with it, those written elsewhere are given back for
        the client to commit; ``progress(rows)`` hears of the rows written."""
        ...


def add_files(
    engine: Engine,
    dataset: Dataset,
    paths: Sequence[str | os.PathLike[str]],
    provenance: Provenance,
    *,
    progress: ProgressCallback | None = None,
    skip_existing: bool = False,
    elsewhere: Opener | None = None,
) -> list[ImportResult]:
    """``Dataset.add_files``: see the module's notes. An import result a file, in order
    (a file whose rows were all stored already, with ``skip_existing``, has no batch)."""
    if not paths:
        raise InvalidInput("no files to import")
    names = [str(p) for p in paths]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InvalidInput("the file is named twice", file=twice)
    if not dataset.columnar:
        return [
            imports.add_file(
                engine, dataset, p, provenance, progress=progress, skip_existing=skip_existing
            )
            for p in paths
        ]
    source = check_source(provenance.source)
    given = imports.given_time(provenance.created_at)
    # A first import makes the table the workers write to: it runs here.
    there: AbstractContextManager[Any] = (
        elsewhere() if elsewhere is not None and _has_table(engine, dataset) else nullcontext()
    )
    with there as cluster:
        steps: Steps = Here() if cluster is None else cluster.import_steps()
        handles = steps.read(dataset, list(zip([str(p) for p in paths], names, strict=True)))
        shapes = steps.rows(handles)
        total = sum(n for n, _, _ in shapes)
        schema, label_type = shapes[0][1], shapes[0][2]
        tags = provenance.tags
        tags_json = orjson.dumps(sorted(set(tags))).decode() if tags else None
        marking = change(
            "patterns.add", f"dataset:{dataset.name}", {"rows": total, "files": len(names)}
        )
        with marking, write(engine) as conn, no_gc():
            lock_patterns(conn)
            now = timestamps.now_us()  # after the lock: see lock_patterns
            when = now if provenance.created_at is None else given
            first_import = dataset.schema is None
            if first_import:
                imports.claim_schema(conn, dataset, schema, label_type)
            surveys = steps.survey(dataset, handles, source, when, conn)
            seen = decided(surveys)
            batch_ids = [
                imports.insert_batch(conn, dataset, provenance, name, n, now)
                for name, (n, _, _) in zip(names, shapes, strict=True)
            ]
            plans = []
            next_id = next_pattern_id(conn)
            for batch_id, rows_seen in zip(batch_ids, seen, strict=True):
                plans.append(
                    Plan(
                        Batch(batch_id, next_id, tags_json), rows_seen, source, when, skip_existing
                    )
                )
                next_id += len(rows_seen) - (int(rows_seen.sum()) if skip_existing else 0)
            written = steps.write(dataset, handles, plans, conn, progress)
            files = [f for w in written for f in (w.files or [])]
            if files:
                spec = columnar.table_spec(dataset.id, schema)
                tables.of(conn).commit_files(conn, spec, files)
            results = []
            for name, plan, (n, _, _), w in zip(names, plans, shapes, written, strict=True):
                results.append(_recorded(conn, dataset, name, plan, n, w.encoded))
    if first_import:
        dataset.schema = schema
        dataset.label_type = label_type
    return results


def _has_table(engine: Engine, dataset: Dataset) -> bool:
    """Whether the dataset's table holds rows already (a first import makes it)."""
    if dataset.schema is None or dataset.label_type is None:
        return False
    with read(engine) as conn:
        return tables.of(conn).version(conn, columnar.table_name(dataset.id)) is not None


def _recorded(
    conn: Connection, dataset: Dataset, name: str, plan: Plan, n: int, encoded: Encoded
) -> ImportResult:
    """The batch of one file counts the rows it wrote and keeps their ids' range."""
    batch_id: int | None = plan.batch.id
    if encoded.rows < n:
        batch_id = imports.shrink_batch(conn, batch_id, encoded.rows)
    first_id = last_id = None
    if batch_id is not None and encoded.rows:
        first_id, last_id = plan.batch.first_id, plan.batch.first_id + encoded.rows - 1
        record_range(conn, batch_id, first_id, last_id)
    return ImportResult(
        dataset=dataset.name,
        batch_id=None if batch_id is None else int(batch_id),
        rows=encoded.rows,
        first_id=first_id,
        last_id=last_id,
        by_split=dict(zip(SPLITS, (int(x) for x in encoded.by_split), strict=True)),
        source=plan.source,
        file=name,
        already_stored=encoded.already,
        skipped=encoded.already if plan.skip_existing else 0,
    )


def decided(surveys: Sequence[Survey]) -> list[np.ndarray]:
    """Step 3: for each file, which rows are stored already: held by the dataset, or
    the same as a row of an earlier file of the import (as when the files are imported
    one after the other). Rows repeated within one file are each stored, as in an
    import of that file alone."""
    out: list[np.ndarray] = []
    earlier = np.zeros(0, dtype="S16")
    for survey in surveys:
        # 16 bytes as one value: equal exactly when the hashes are.
        mine = np.ascontiguousarray(survey.hashes).view("S16").ravel()
        out.append(survey.seen | np.isin(mine, earlier))
        earlier = np.concatenate([earlier, mine])
    return out


# --- the steps, each on one file ----------------------------------------------


def read_rows(dataset: Dataset, path: str, name: str) -> Read:
    """Step 1: the file at ``path`` (a local path or a URL such as ``s3://...``, called
    ``name`` in errors) read, checked and converted for ``dataset``."""
    with local_copy(path, name) as local:
        frame = imports.read_checked(dataset, local, name)
    text_file = PurePosixPath(path).suffix.lower() == ".csv"
    schema, cols, label_type, labels = imports.checked(dataset, frame, name, text_file)
    return Read(name, schema, label_type, cols, labels)


def survey(
    dataset: Dataset, file: Read, source: str, when: int, stored: StoredContent | None
) -> Survey:
    """Step 2 of one file, against ``stored`` (None: the dataset holds nothing)."""
    seen, hashes = table_imports.survey(dataset, _rows(file, source, when, None, False), stored)
    return Survey(seen, hashes)


def write_rows(
    dataset: Dataset,
    file: Read,
    plan: Plan,
    table: table_imports.Writes,
    progress: ProgressCallback | None,
) -> Encoded:
    """Step 4 of one file: its rows, but those left out, written to ``table`` with the
    ids from the plan's first on, in file order."""
    rows = _rows(file, plan.source, plan.when, _Decided(plan.seen), plan.skip_existing)
    return table_imports.encode(dataset, rows, plan.batch, table, progress)


class DataFiles:
    """Parts written as a table's data files, not committed (a worker's step 4)."""

    def __init__(self, conn: Connection, dataset: Dataset, schema: inp.InputSchema) -> None:
        self._conn = conn
        self._spec = columnar.table_spec(dataset.id, schema)
        self.files: list[Any] = []

    def write(self, data: pa.Table) -> None:
        if data.num_rows:
            self.files += tables.of(self._conn).write_files(self._conn, self._spec, data)


@contextmanager
def local_copy(path: str, name: str) -> Iterator[str]:
    """``path`` itself when it is local; a URL's file fetched to a temporary file of
    the same name, removed after."""
    import fsspec

    if fsspec.utils.get_protocol(path) in ("file", "local"):
        yield path
        return
    fs, where = fsspec.core.url_to_fs(path)
    with tempfile.TemporaryDirectory(prefix="trenches-import-") as folder:
        local = str(Path(folder) / PurePosixPath(where).name)
        try:
            fs.get(where, local)
        except FileNotFoundError:
            raise InvalidInput("no such file", file=name) from None
        except OSError as e:
            raise InvalidInput(f"cannot read it: {e}", file=name) from None
        yield local


# --- in this process ----------------------------------------------------------


class Here:
    """The steps in this process, a file after the other."""

    def read(self, dataset: Dataset, files: Sequence[tuple[str, str]]) -> list[Any]:
        return read_all(dataset, files, read_rows)

    def rows(self, handles: Sequence[Any]) -> list[tuple[int, inp.InputSchema, str]]:
        return [(h.rows, h.schema, h.label_type) for h in handles]

    def survey(
        self, dataset: Dataset, handles: Sequence[Any], source: str, when: int, conn: Connection
    ) -> list[Survey]:
        stored = None if dataset.schema is None else StoredContent(conn, dataset)
        return [survey(dataset, h, source, when, stored) for h in handles]

    def write(
        self,
        dataset: Dataset,
        handles: Sequence[Any],
        plans: Sequence[Plan],
        conn: Connection,
        progress: ProgressCallback | None,
    ) -> list[Written]:
        spec = columnar.table_spec(dataset.id, handles[0].schema)
        with Appending(tables.of(conn), conn, spec) as table:
            out = [
                Written(write_rows(dataset, h, plan, table, progress))
                for h, plan in zip(handles, plans, strict=True)
            ]
            table.commit()
        return out


def read_all(
    dataset: Dataset,
    files: Sequence[tuple[str, str]],
    reader: Callable[[Dataset, str, str], Any],
) -> list[Any]:
    """Every file read by ``reader`` in order; into a dataset without a schema yet, the
    files after the first by the schema the first gives it."""
    first = reader(dataset, *files[0])
    if dataset.schema is None or dataset.label_type is None:
        dataset = copy.copy(dataset)
        dataset.schema, dataset.label_type = first.schema, first.label_type
    return [first, *(reader(dataset, path, name) for path, name in files[1:])]


class _Decided:
    """Which rows of each chunk, in turn, step 3 found stored already."""

    def __init__(self, seen: np.ndarray) -> None:
        self._seen = seen
        self._at = 0

    def stored(
        self,
        key_head: np.ndarray,
        num_words: np.ndarray | codec.Words | None,
        obj: list[str] | None,
        labels: codec.Coded,
        source: str,
    ) -> np.ndarray:
        n = len(labels)
        seen = self._seen[self._at : self._at + n]
        self._at += n
        return seen


def _rows(
    file: Read,
    source: str,
    when: int,
    stored: table_imports.Stored | None,
    skip_existing: bool,
) -> ImportRows:
    return ImportRows(
        schema=file.schema,
        cols=file.cols,
        labels=file.labels,
        source=source,
        when=when,
        stored=stored,
        skip_existing=skip_existing,
    )
