"""Datasets and the import of patterns into them."""

from __future__ import annotations

import gc
import os
import re
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import bulk_insert, id_in, lock_patterns, read, write
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.names import SPLITS
from trenches.patterns import codec
from trenches.patterns import inputs as inp
from trenches.patterns.existing import StoredContent
from trenches.patterns.ingest import file_columns, read_file
from trenches.verdicts import Tolerance, tolerance_for

if TYPE_CHECKING:
    from trenches.patterns.snapshots import Snapshot
    from trenches.quality import QualityReport
    from trenches.store import Store

TASKS = ("classification", "regression")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
#: Rows encoded and written per step of an import; bounds memory on big files.
CHUNK_ROWS = 50_000
#: Tolerated clock skew for a given created_at in the future, in microseconds.
_FUTURE_SLACK_US = 5 * 60 * 1_000_000

ProgressCallback = Callable[[int], None]


def check_name(name: str, what: str = "dataset name") -> str:
    if not _NAME.match(name or ""):
        raise InvalidInput(
            f"{what} {name!r} must start with a letter or digit and hold only letters, "
            "digits, '_', '.' and '-'"
        )
    return name


def check_source(source: str) -> str:
    if not _SOURCE.match(source or ""):
        raise InvalidInput(
            f"source {source!r} must be a short name (letters, digits, '_', '.', '-'), "
            "such as expert, crowd, production, contrived or synthetic"
        )
    return source


#: Columns a message lists before it counts the rest (a file may have 40,000).
_COLUMNS_SHOWN = 20


@dataclass(frozen=True)
class ImportResult:
    """What one import stored."""

    dataset: str
    #: The import's id; ``None`` when ``skip_existing`` left nothing to store.
    batch_id: int | None
    #: Patterns stored by this import.
    rows: int
    #: Their ids run from ``first_id`` to ``last_id`` (``None`` when none was stored).
    first_id: int | None
    last_id: int | None
    by_split: dict[str, int]
    source: str
    file: str | None
    #: Rows the dataset held already, with the same inputs, label and source (active or
    #: not): stored again, or with ``skip_existing`` left out.
    already_stored: int = 0
    #: Rows left out because they were stored already (``skip_existing``).
    skipped: int = 0

    @property
    def pattern_ids(self) -> range:
        """The ids of the patterns this import stored (consecutive)."""
        if self.first_id is None or self.last_id is None:
            return range(0)
        return range(self.first_id, self.last_id + 1)


@dataclass(frozen=True)
class Pattern:
    """One stored example, exactly as imported. Immutable: see ``Store.patterns``."""

    id: int
    dataset: str
    inputs: dict[str, Any]
    label: Any
    split: str
    source: str
    labelled_by: str | None
    batch_id: int
    created_at: datetime
    deactivated_at: datetime | None
    replaces_id: int | None
    tags: tuple[str, ...]

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


@dataclass(frozen=True)
class DatasetSummary:
    """What ``trenches data show`` prints."""

    name: str
    task: str
    label_column: str
    schema: inp.InputSchema | None
    active: int
    inactive: int
    imports: int
    snapshots: int
    by_split: dict[str, int]
    by_source: dict[str, int]
    by_label: dict[str, int]
    by_month: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "label": self.label_column,
            "schema": [c.to_json() for c in self.schema.columns] if self.schema else None,
            "active": self.active,
            "inactive": self.inactive,
            "imports": self.imports,
            "snapshots": self.snapshots,
            "by_split": self.by_split,
            "by_source": self.by_source,
            "by_label": self.by_label,
            "by_month": self.by_month,
        }


@dataclass(frozen=True)
class _Chunks:
    """What every chunk of one import is encoded from."""

    schema: inp.InputSchema
    cols: dict[str, inp.CoercedColumn]
    label_text: list[str]
    source: str
    when: int
    #: The dataset's patterns at the import's lock (None for a first import).
    stored: StoredContent | None
    skip_existing: bool


@dataclass
class _Written:
    rows: int
    already: int
    by_split: np.ndarray


@contextmanager
def _no_gc() -> Iterator[None]:
    # Building millions of small objects triggers the cyclic collector over and over;
    # nothing made here forms cycles, so it is paused for the bulk step.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Dataset:
    """A named collection of patterns for one task, with an input schema and a label."""

    def __init__(self, store: Store, row: Any) -> None:
        self._store = store
        self.id: int = row.id
        self.name: str = row.name
        self.task: str = row.task
        self.label_column: str = row.label_column
        self.label_type: str | None = row.label_type
        self.text_column: str | None = row.text_column
        self.schema: inp.InputSchema | None = (
            inp.InputSchema.from_json(row.input_schema) if row.input_schema else None
        )
        self.salt: bytes = bytes.fromhex(row.salt)
        self.split_ratios: tuple[float, float, float] = (
            row.split_train,
            row.split_validation,
            row.split_test,
        )
        self.description: str | None = row.description
        self.created_at: datetime = timestamps.from_us(row.created_at)
        #: Regression: how near a prediction must come to its label to be right.
        self.tolerance: Tolerance | None = Tolerance.from_columns(
            row.tolerance_abs, row.tolerance_rel
        )

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r} {self.task} label={self.label_column!r}>"

    # --- import ---------------------------------------------------------------

    def add_file(
        self,
        path: str | os.PathLike[str],
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | int | None = None,
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        skip_existing: bool = False,
    ) -> ImportResult:
        """Import a CSV, Parquet or JSONL file; one transaction, all or nothing.

        A row the dataset holds already (the same inputs, label and source) is stored
        again, and counted in ``already_stored``, unless ``skip_existing``: then only
        the new rows are."""
        strings: set[str] = set()
        if self.schema is not None:
            strings = {c.name for c in self.schema.strings}
        if self.label_type == "string":
            strings.add(self.label_column)
        if self.text_column:
            strings.add(self.text_column)
        # The header alone can show that the columns are wrong: say so before the work
        # of parsing every row (a file of 40,000 unknown columns took 44 s to refuse).
        header = file_columns(path)
        if header is not None:
            self._check_columns(header, str(path))
        frame = read_file(path, string_columns=strings)
        text_file = Path(path).suffix.lower() == ".csv"
        return self._add(
            frame,
            source=source,
            labelled_by=labelled_by,
            note=note,
            created_at=created_at,
            tags=tags,
            file=str(path),
            text_file=text_file,
            progress=progress,
            skip_existing=skip_existing,
        )

    def add_file_frame(
        self,
        frame: pd.DataFrame,
        *,
        file: str,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
    ) -> ImportResult:
        """Import rows read from ``file`` (errors name the file; CSV rules for missing)."""
        return self._add(
            frame.reset_index(drop=True),
            source=source,
            labelled_by=labelled_by,
            note=note,
            created_at=None,
            tags=(),
            file=file,
            text_file=file.lower().endswith(".csv"),
            progress=None,
            skip_existing=False,
        )

    def add(
        self,
        frame: pd.DataFrame,
        *,
        source: str,
        labelled_by: str | None = None,
        note: str | None = None,
        created_at: str | datetime | int | None = None,
        tags: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        skip_existing: bool = False,
    ) -> ImportResult:
        """Import the rows of a DataFrame (inputs and the label column) as patterns.

        A row the dataset holds already (the same inputs, label and source) is stored
        again, and counted in ``already_stored``, unless ``skip_existing``: then only
        the new rows are."""
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"expected a pandas DataFrame, got {type(frame).__name__}")
        if len(frame) == 0:
            raise InvalidInput("the DataFrame has no rows")
        return self._add(
            frame.reset_index(drop=True),
            source=source,
            labelled_by=labelled_by,
            note=note,
            created_at=created_at,
            tags=tags,
            file=None,
            text_file=False,
            progress=progress,
            skip_existing=skip_existing,
        )

    def _resolve_schema(self, frame: pd.DataFrame, file: str | None) -> inp.InputSchema:
        columns = [str(c) for c in frame.columns]
        input_names = self._check_columns(columns, file)
        if self.schema is None:
            return inp.InputSchema(
                tuple(
                    inp.InputColumn(c, inp.infer_type(frame[c], is_text=c == self.text_column))
                    for c in input_names
                )
            )
        return self.schema

    def _check_columns(self, columns: list[str], file: str | None) -> list[str]:
        """The input columns among ``columns``, or ``InvalidInput`` when the label, the
        text column or (once the dataset has a schema) an input column is missing, or a
        column is not one of the dataset's."""
        if self.label_column not in columns:
            shown = ", ".join(columns[:_COLUMNS_SHOWN])
            if len(columns) > _COLUMNS_SHOWN:
                shown += f" and {len(columns) - _COLUMNS_SHOWN:,} more"
            raise InvalidInput(
                f"the label column {self.label_column!r} is missing (columns found: {shown})",
                file=file,
                field=self.label_column,
            )
        if self.text_column and self.text_column not in columns:
            raise InvalidInput(
                f"the text column {self.text_column!r} is missing",
                file=file,
                field=self.text_column,
            )
        input_names = [c for c in columns if c != self.label_column]
        if not input_names:
            raise InvalidInput("there are no input columns besides the label", file=file)
        if self.schema is None:
            return input_names
        known = set(self.schema.names)
        unknown = [c for c in input_names if c not in known]
        if unknown:
            more = f" (and {len(unknown) - 1:,} more unknown)" if len(unknown) > 1 else ""
            raise InvalidInput(
                f"unknown column {unknown[0]!r}{more}; the dataset's input columns are "
                + ", ".join(self.schema.names),
                file=file,
                field=unknown[0],
            )
        given = set(input_names)
        for c in self.schema.names:
            if c not in given:
                raise InvalidInput("this input column is missing", file=file, field=c)
        return input_names

    def _add(
        self,
        frame: pd.DataFrame,
        *,
        source: str,
        labelled_by: str | None,
        note: str | None,
        created_at: str | datetime | int | None,
        tags: Sequence[str],
        file: str | None,
        text_file: bool,
        progress: ProgressCallback | None,
        skip_existing: bool,
    ) -> ImportResult:
        check_source(source)
        frame.columns = [str(c) for c in frame.columns]
        if len(set(frame.columns)) != len(frame.columns):
            raise InvalidInput("a column name appears twice", file=file)
        schema = self._resolve_schema(frame, file)
        when = timestamps.parse(created_at, what="created_at")
        now = timestamps.now_us()
        if when is None:
            when = now
        elif when > now + _FUTURE_SLACK_US:
            raise InvalidInput(f"created_at {timestamps.iso(when)} is in the future")
        n = len(frame)

        # Check and convert everything before taking the write lock: bad input never
        # touches the store.
        cols = {
            c.name: inp.coerce(
                frame[c.name], c.type, file=file, offset=0, field=c.name, text_file=text_file
            )
            for c in schema.columns
        }
        label_type = self.label_type or inp.infer_label_type(frame[self.label_column], self.task)
        labels = self._coerce_labels(frame[self.label_column], label_type, file, text_file)
        label_text = inp.label_to_text(labels, label_type)
        tags_json = orjson.dumps(sorted(set(tags))).decode() if tags else None

        with write(self._store.engine) as conn, _no_gc():
            lock_patterns(conn)
            now = timestamps.now_us()  # after the lock: see lock_patterns
            if created_at is None:
                when = now
            first_import = self.schema is None
            if first_import:
                updated = conn.execute(
                    update(t.datasets)
                    .where(t.datasets.c.id == self.id, t.datasets.c.input_schema.is_(None))
                    .values(input_schema=schema.to_json(), label_type=label_type)
                ).rowcount
                if updated != 1:
                    raise Conflict(
                        f"dataset {self.name!r} got its schema from another import meanwhile; "
                        "run the import again"
                    )
            batch_id: int | None = conn.execute(
                insert(t.import_batches).values(
                    dataset_id=self.id,
                    kind="import",
                    source=source,
                    labelled_by=labelled_by,
                    note=note,
                    file=file,
                    rows=n,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            before = conn.execute(select(func.max(t.patterns.c.id))).scalar() or 0
            constants = {
                "dataset_id": self.id,
                "batch_id": batch_id,
                "source": source,
                "tags": tags_json,
                "created_at": when,
            }
            chunks = _Chunks(
                schema=schema,
                cols=cols,
                label_text=label_text,
                source=source,
                when=when,
                stored=None if first_import else StoredContent(conn, self.id),
                skip_existing=skip_existing,
            )
            written = self._write_chunks(conn, constants, chunks, progress)
            if written.rows < n:
                batches = t.import_batches
                if written.rows == 0:
                    conn.execute(delete(batches).where(batches.c.id == batch_id))
                    batch_id = None
                else:
                    conn.execute(
                        update(batches).where(batches.c.id == batch_id).values(rows=written.rows)
                    )
            first_id, last_id = conn.execute(
                select(func.min(t.patterns.c.id), func.max(t.patterns.c.id)).where(
                    t.patterns.c.batch_id == batch_id
                )
            ).one()
            assert first_id is None or first_id > before
        if first_import:
            self.schema = schema
            self.label_type = label_type
        return ImportResult(
            dataset=self.name,
            batch_id=None if batch_id is None else int(batch_id),
            rows=written.rows,
            first_id=None if first_id is None else int(first_id),
            last_id=None if last_id is None else int(last_id),
            by_split=dict(zip(SPLITS, (int(x) for x in written.by_split), strict=True)),
            source=source,
            file=file,
            already_stored=written.already,
            skipped=written.already if skip_existing else 0,
        )

    def _write_chunks(
        self,
        conn: Connection,
        constants: dict[str, Any],
        chunks: _Chunks,
        progress: ProgressCallback | None,
    ) -> _Written:
        """Encode and write the rows chunk by chunk, counting those stored already (and
        leaving them out with ``skip_existing``)."""
        n = len(chunks.label_text)
        out = _Written(rows=0, already=0, by_split=np.zeros(3, dtype=np.int64))

        def write_chunk(names: list[str], rows: list[tuple[Any, ...]]) -> int:
            if rows:
                bulk_insert(conn, t.patterns, names, rows, constants=constants)
            return len(rows)

        def wait(pending: Future[int]) -> None:
            done = pending.result()
            out.rows += done
            if progress is not None:
                progress(done)

        # Chunk k+1 is encoded while chunk k is written: the driver lets go of the GIL
        # inside the database, so the two overlap on two cores. Only the writer thread
        # touches the connection while a write is pending.
        with ThreadPoolExecutor(1, thread_name_prefix="trenches-import") as writer:
            pending: Future[int] | None = None
            for start in range(0, n, CHUNK_ROWS):
                stop = min(n, start + CHUNK_ROWS)
                names, rows, split, enc = self._encode_chunk(chunks, start, stop)
                if pending is not None:
                    wait(pending)
                if chunks.stored is not None:  # the connection is free to read now
                    seen = chunks.stored.stored(
                        enc.key_head,
                        enc.num_words,
                        enc.obj,
                        chunks.label_text[start:stop],
                        chunks.source,
                    )
                    out.already += int(seen.sum())
                    if chunks.skip_existing and seen.any():
                        rows = [r for r, old in zip(rows, seen.tolist(), strict=True) if not old]
                        split = split[~seen]
                out.by_split += np.bincount(split, minlength=3)
                pending = writer.submit(write_chunk, names, rows)
            if pending is not None:
                wait(pending)
        return out

    def _encode_chunk(
        self, chunks: _Chunks, start: int, stop: int
    ) -> tuple[list[str], list[tuple[Any, ...]], np.ndarray, codec.EncodedInputs]:
        """Rows ``start:stop`` as the columns and tuples the bulk insert takes."""
        chunk = {
            name: inp.CoercedColumn(c.values[start:stop], c.missing[start:stop])
            for name, c in chunks.cols.items()
        }
        m = stop - start
        enc = codec.encode(chunks.schema, chunk, m, self.salt)
        split = codec.splits_of(enc.key_head, self.split_ratios)
        labs = chunks.label_text[start:stop]
        content = codec.content_hashes(enc.num_words, enc.obj, labs, chunks.source, chunks.when)
        # Columns that would be NULL in every row are left out of the statement.
        names = ["split", "input_key", "content_hash", "label"]
        columns: list[Any] = [split.tolist(), enc.keys, content, labs]
        if enc.num is not None:
            names.append("num")
            columns.append(enc.num)
        if enc.obj is not None:
            names.append("obj")
            columns.append(enc.obj)
        return names, list(zip(*columns, strict=True)), split, enc

    def _coerce_labels(
        self, series: pd.Series, label_type: str, file: str | None, text_file: bool = False
    ) -> np.ndarray:
        field = self.label_column
        missing = pd.isna(series).to_numpy().copy()
        if not (
            pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
        ):
            # An empty string is no label; in a text file (CSV) neither is a word that
            # stands for "missing" there (NaN, null, None, NA).
            words = inp.MISSING_WORDS if text_file else frozenset({""})
            missing |= series.map(
                lambda v: isinstance(v, str) and v.strip().lower() in words
            ).to_numpy(dtype=bool)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise InvalidInput("the label is missing or empty", file=file, row=i + 1, field=field)
        c = inp.coerce(series, label_type, file=file, offset=0, field=field)
        if label_type == "number" and not np.isfinite(c.values).all():
            i = int(np.flatnonzero(~np.isfinite(c.values))[0])
            raise InvalidInput(
                "the label is not a finite number", file=file, row=i + 1, field=field
            )
        return c.values

    def coerce_label(self, value: Any) -> Any:
        """One label converted to this dataset's label type, or ``InvalidInput``."""
        if self.label_type is None:
            raise Conflict(f"dataset {self.name!r} has no patterns yet")
        values = self._coerce_labels(pd.Series([value], dtype=object), self.label_type, None)
        return values[0]

    # --- reading ----------------------------------------------------------------

    def patterns(
        self,
        *,
        as_of: str | datetime | int | None = None,
        split: str | None = None,
        include_inactive: bool = False,
        ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Patterns as a DataFrame indexed by ``pattern_id``: the input columns and the
        label column, exactly as imported. ``as_of`` selects those active at a time."""
        frame, _ = read_patterns(
            self,
            as_of=timestamps.parse(as_of, what="as_of"),
            split=split,
            include_inactive=include_inactive,
            ids=ids,
        )
        return frame

    def pattern_ids(self, split: str | None = None) -> np.ndarray:
        """The ids of the active patterns (of one split), ascending."""
        return member_ids(self._store.engine, membership(self.id, as_of=None), split)

    def pattern_info(
        self,
        *,
        as_of: str | datetime | int | None = None,
        include_inactive: bool = False,
    ) -> pd.DataFrame:
        """Provenance of each pattern, indexed by ``pattern_id``: split, source,
        labeller, batch, created_at, deactivated_at, replaces_id."""
        _, info = read_patterns(
            self,
            as_of=timestamps.parse(as_of, what="as_of"),
            split=None,
            include_inactive=include_inactive,
            ids=None,
            with_inputs=False,
        )
        return info

    def summary(self) -> DatasetSummary:
        """Counts of the active patterns by split, source, label and month of arrival."""
        p = t.patterns.c
        active = [p.dataset_id == self.id, p.deactivated_at.is_(None)]

        def counts(column: Any) -> dict[Any, int]:
            with read(self._store.engine) as conn:
                rows = conn.execute(
                    select(column, func.count()).where(*active).group_by(column).order_by(column)
                ).all()
            return {k: int(n) for k, n in rows}

        with read(self._store.engine) as conn:
            total, inactive = conn.execute(
                select(
                    func.count(),
                    func.count(p.deactivated_at),
                ).where(p.dataset_id == self.id)
            ).one()
            batches = conn.execute(
                select(func.count()).where(t.import_batches.c.dataset_id == self.id)
            ).scalar_one()
            snaps = conn.execute(
                select(func.count()).where(t.snapshots.c.dataset_id == self.id)
            ).scalar_one()
            times = conn.execute(
                select(p.created_at, func.count()).where(*active).group_by(p.created_at)
            ).all()
        by_month: dict[str, int] = {}
        for us, n in sorted(times):
            month = timestamps.from_us(us).strftime("%Y-%m")
            by_month[month] = by_month.get(month, 0) + int(n)
        return DatasetSummary(
            name=self.name,
            task=self.task,
            label_column=self.label_column,
            schema=self.schema,
            active=int(total) - int(inactive),
            inactive=int(inactive),
            imports=int(batches),
            snapshots=int(snaps),
            by_split={SPLITS[k]: v for k, v in counts(p.split).items()},
            by_source=counts(p.source),
            by_label=counts(p.label),
            by_month=by_month,
        )

    def set_tolerance(self, tolerance: Tolerance | str | float | None) -> Tolerance | None:
        """Set (or with None clear) the regression tolerance: a prediction within it of
        its label is right, for problem scores, flips and gates. ``"0.5"`` is
        absolute, ``"10%"`` relative to the label, ``"0.5 or 10%"`` the looser of both."""
        value = tolerance_for(self.name, self.task, tolerance)
        with write(self._store.engine) as conn:
            conn.execute(
                update(t.datasets)
                .where(t.datasets.c.id == self.id)
                .values(
                    tolerance_abs=value.absolute if value else None,
                    tolerance_rel=value.relative if value else None,
                )
            )
        self.tolerance = value
        return value

    # --- snapshots and quality --------------------------------------------------

    def snapshot(
        self,
        *,
        as_of: str | datetime | int | None = None,
        sources: Sequence[str] | None = None,
        note: str | None = None,
    ) -> Snapshot:
        """Freeze the patterns active at ``as_of`` (default now) into a snapshot."""
        from trenches.patterns.snapshots import take_snapshot

        return take_snapshot(self._store, self, as_of=as_of, sources=sources, note=note)

    def snapshots(self) -> list[Snapshot]:
        from trenches.patterns.snapshots import list_snapshots

        return list_snapshots(self._store, self)

    def check(self, *, snapshot: int | None = None, precision: int = 4) -> QualityReport:
        """Run the data quality checks on the active patterns, or on a snapshot."""
        from trenches.quality import check_dataset

        return check_dataset(self._store, self, snapshot_id=snapshot, precision=precision)


class Datasets:
    """The datasets of a store: ``store.datasets``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self,
        name: str,
        *,
        task: str,
        label: str,
        text: str | None = None,
        schema: inp.InputSchema | str | None = None,
        splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
        description: str | None = None,
        salt: str | None = None,
        tolerance: Tolerance | str | float | None = None,
    ) -> Dataset:
        """Create a dataset. The input schema is given, or inferred from the first import.

        ``tolerance`` (regression): how near a prediction must come to its label to
        count as right, e.g. ``"0.5"``, ``"10%"`` or ``"0.5 or 10%"``."""
        check_name(name)
        if task not in TASKS:
            raise InvalidInput(f"task {task!r} must be one of {', '.join(TASKS)}")
        tol = tolerance_for(name, task, tolerance)
        if not label:
            raise InvalidInput("the label column must be named")
        if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1) > 1e-9:
            raise InvalidInput(
                f"split ratios {splits} must be three non-negative numbers adding up to 1"
            )
        if isinstance(schema, str):
            schema = inp.InputSchema.parse(schema)
        if schema is not None:
            if label in schema.names:
                raise InvalidInput(f"the label column {label!r} cannot also be an input")
            if text and text not in schema.names:
                raise InvalidInput(f"the text column {text!r} is not in the schema")
            if text:
                schema = inp.InputSchema(
                    tuple(
                        inp.InputColumn(c.name, "text") if c.name == text else c
                        for c in schema.columns
                    )
                )
        if salt is not None and not re.fullmatch(r"[0-9a-f]{32}", salt):
            raise InvalidInput("salt must be 32 hexadecimal digits")
        with write(self._store.engine) as conn:
            if conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == name)).first():
                raise Conflict(f"a dataset named {name!r} exists already")
            conn.execute(
                insert(t.datasets).values(
                    name=name,
                    task=task,
                    label_column=label,
                    label_type="number" if task == "regression" else None,
                    text_column=text,
                    input_schema=schema.to_json() if schema is not None else None,
                    salt=salt or secrets.token_hex(16),
                    split_train=splits[0],
                    split_validation=splits[1],
                    split_test=splits[2],
                    description=description,
                    created_at=timestamps.now_us(),
                    tolerance_abs=tol.absolute if tol else None,
                    tolerance_rel=tol.relative if tol else None,
                )
            )
        return self.get(name)

    def get(self, name: str) -> Dataset:
        with read(self._store.engine) as conn:
            row = conn.execute(select(t.datasets).where(t.datasets.c.name == name)).first()
        if row is None:
            known = [d.name for d in self.list()]
            hint = f"; datasets here: {', '.join(known)}" if known else "; there are none yet"
            raise NotFound(f"no dataset named {name!r}{hint}")
        return Dataset(self._store, row)

    def by_id(self, dataset_id: int, conn: Connection | None = None) -> Dataset:
        if conn is None:
            with read(self._store.engine) as c:
                return self.by_id(dataset_id, c)
        row = conn.execute(select(t.datasets).where(t.datasets.c.id == dataset_id)).first()
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id}")
        return Dataset(self._store, row)

    def __getitem__(self, name: str) -> Dataset:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        with read(self._store.engine) as conn:
            return (
                conn.execute(select(t.datasets.c.id).where(t.datasets.c.name == name)).first()
                is not None
            )

    def list(self) -> list[Dataset]:
        with read(self._store.engine) as conn:
            rows = conn.execute(select(t.datasets).order_by(t.datasets.c.name)).all()
        return [Dataset(self._store, r) for r in rows]


def membership(
    dataset_id: int,
    *,
    as_of: int | None,
    include_inactive: bool = False,
    max_id: int | None = None,
    sources: Sequence[str] | None = None,
) -> list[Any]:
    """The WHERE clauses that select a dataset's patterns as they were at ``as_of``.

    A pattern belongs at ``as_of`` when it was created by then and not yet
    deactivated; ``max_id`` leaves out patterns imported later with a backdated
    ``created_at``. This is all a snapshot needs to be rebuilt.
    """
    p = t.patterns.c
    where: list[Any] = [p.dataset_id == dataset_id]
    if as_of is not None:
        where += [p.created_at <= as_of, (p.deactivated_at.is_(None)) | (p.deactivated_at > as_of)]
    elif not include_inactive:
        where.append(p.deactivated_at.is_(None))
    if max_id is not None:
        where.append(p.id <= max_id)
    if sources:
        where.append(p.source.in_(list(sources)))
    return where


def member_ids(engine: Any, where: list[Any], split: str | None = None) -> np.ndarray:
    """The ids of the patterns ``where`` selects (of one split), ascending: one indexed
    query, no labels, no join with the imports."""
    p = t.patterns.c
    where = list(where)
    if split is not None:
        if split not in SPLITS:
            raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
        where.append(p.split == SPLITS.index(split))
    with read(engine) as conn:
        rows = conn.execute(select(p.id).where(*where).order_by(p.id)).cursor.fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def read_patterns(
    dataset: Dataset,
    *,
    as_of: int | None = None,
    split: str | None = None,
    include_inactive: bool = False,
    ids: Sequence[int] | None = None,
    max_id: int | None = None,
    sources: Sequence[str] | None = None,
    with_inputs: bool = True,
    full_info: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read patterns column-wise: (inputs and label, provenance), both by pattern id.

    With ``full_info=False`` the provenance holds only split, source and created_at,
    which is all training needs, and the read skips the join with the imports.
    """
    p = t.patterns.c
    b = t.import_batches.c
    where = membership(
        dataset.id,
        as_of=as_of,
        include_inactive=include_inactive or ids is not None,
        max_id=max_id,
        sources=sources,
    )
    if split is not None:
        if split not in SPLITS:
            raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}")
        where.append(p.split == SPLITS.index(split))
    names = ["id", "split", "source", "label", "created_at"]
    cols: list[Any] = [p.id, p.split, p.source, p.label, p.created_at]
    if full_info:
        names += ["deactivated_at", "replaces_id", "batch_id", "labelled_by", "tags"]
        cols += [p.deactivated_at, p.replaces_id, p.batch_id, b.labelled_by, p.tags]
    if with_inputs:
        names += ["num", "obj"]
        cols += [p.num, p.obj]
    source_table = (
        t.patterns.join(t.import_batches, p.batch_id == b.id) if full_info else t.patterns
    )
    query = select(*cols).select_from(source_table).where(*where).order_by(p.id)
    rows: list[Any] = []
    # Many small objects and no cycles: the collector would only rescan the caller's heap.
    with read(dataset._store.engine) as conn, _no_gc():
        # Rows come straight from the driver's cursor: the values need no conversion,
        # and building a SQLAlchemy Row for each of a million patterns is half the read.
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            for start in range(0, len(wanted), 100_000):
                part = wanted[start : start + 100_000]
                clause = id_in(conn.dialect.name, p.id, part)
                rows += conn.execute(query.where(clause)).cursor.fetchall()
        else:
            rows = list(conn.execute(query).cursor.fetchall())
    with _no_gc():
        columns = (
            dict(zip(names, zip(*rows, strict=True), strict=True))
            if rows
            else {n: () for n in names}
        )
    index = pd.Index(np.array(columns["id"], dtype=np.int64), name="pattern_id")
    info_columns: dict[str, Any] = {
        "split": pd.Categorical.from_codes(
            np.array(columns["split"], dtype=np.int8), categories=list(SPLITS)
        ),
        "source": np.array(columns["source"], dtype=object),
        "created_at": pd.to_datetime(
            np.array(columns["created_at"], dtype=np.int64), unit="us", utc=True
        ),
    }
    if full_info:
        info_columns.update(
            {
                "labelled_by": np.array(columns["labelled_by"], dtype=object),
                "batch_id": np.array(columns["batch_id"], dtype=np.int64),
                "deactivated_at": pd.to_datetime(
                    pd.array(list(columns["deactivated_at"]), dtype="Int64"), unit="us", utc=True
                ),
                "replaces_id": pd.array(list(columns["replaces_id"]), dtype="Int64"),
                "tags": [orjson.loads(x) if x else [] for x in columns["tags"]],
            }
        )
        order = [
            "split",
            "source",
            "labelled_by",
            "batch_id",
            "created_at",
            "deactivated_at",
            "replaces_id",
            "tags",
        ]
        info_columns = {k: info_columns[k] for k in order}
    info = pd.DataFrame(info_columns, index=index)
    if not with_inputs:
        labels = inp.labels_from_text(list(columns["label"]), dataset.label_type)
        return pd.DataFrame({dataset.label_column: labels}, index=index), info
    if dataset.schema is None:
        frame = pd.DataFrame(index=index)
    else:
        frame = codec.decode(dataset.schema, columns["num"], columns["obj"])
        frame.index = index
    frame[dataset.label_column] = inp.labels_from_text(list(columns["label"]), dataset.label_type)
    return frame, info
