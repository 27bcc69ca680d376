"""The import of rows into a dataset: checked and converted whole before the write
lock, then encoded and written chunk by chunk in one transaction."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Connection, Engine

from trenches import tables, timestamps
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import bulk_insert, lock_patterns, write
from trenches.errors import Conflict, InvalidInput
from trenches.json_form import to_json
from trenches.names import SPLITS, check_source
from trenches.patterns import codec, columnar, table_imports
from trenches.patterns import inputs as inp
from trenches.patterns.existing import StoredContent
from trenches.patterns.frames import no_gc
from trenches.patterns.ingest import file_columns, read_file
from trenches.patterns.ranges import next_pattern_id, record_range
from trenches.patterns.table_imports import CHUNK_ROWS, Encoded, ImportRows
from trenches.tables.appending import Appending

if TYPE_CHECKING:
    from trenches.patterns.datasets import Dataset


#: Tolerated clock skew for a given created_at in the future, in microseconds.
_FUTURE_SLACK_US = 5 * 60 * 1_000_000

ProgressCallback = Callable[[int], None]


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


@dataclass
class _Written:
    rows: int
    already: int
    by_split: np.ndarray


@dataclass(frozen=True)
class Provenance:
    """Where an import's rows come from: stored with its batch and each pattern."""

    source: str
    labelled_by: str | None = None
    note: str | None = None
    #: When the rows were made (a time or ISO text); ``None``: the time of the import.
    created_at: str | datetime | int | None = None
    tags: Sequence[str] = ()


def add_file(
    engine: Engine,
    dataset: Dataset,
    path: str | os.PathLike[str],
    provenance: Provenance,
    *,
    progress: ProgressCallback | None = None,
    skip_existing: bool = False,
    file_name: str | None = None,
) -> ImportResult:
    """``Dataset.add_file``: the header checked first, then every row read and imported.
    ``file_name`` stands for ``path`` in errors and in the import's record."""
    name = str(path) if file_name is None else file_name
    frame = read_checked(dataset, path, name)
    text_file = Path(path).suffix.lower() == ".csv"
    return add_frame(
        engine,
        dataset,
        frame,
        provenance,
        file=name,
        text_file=text_file,
        progress=progress,
        skip_existing=skip_existing,
    )


def read_checked(dataset: Dataset, path: str | os.PathLike[str], name: str) -> pd.DataFrame:
    """The rows of the file at ``path`` (called ``name`` in errors), its header checked
    against ``dataset`` first."""
    strings: set[str] = set()
    if dataset.schema is not None:
        strings = {c.name for c in dataset.schema.strings}
    if dataset.label_type == "string":
        strings.add(dataset.label_column)
    if dataset.text_column:
        strings.add(dataset.text_column)
    try:
        # The header alone can show that the columns are wrong: say so before the work
        # of parsing every row (a file of 40,000 unknown columns took 44 s to refuse).
        header = file_columns(path)
        if header is not None:
            check_columns(dataset, header, name)
        return read_file(path, string_columns=strings)
    except InvalidInput as e:
        if e.file != str(path) or name == e.file:
            raise
        raise InvalidInput(e.reason, file=name, row=e.row, field=e.field) from None


def _resolve_schema(dataset: Dataset, frame: pd.DataFrame, file: str | None) -> inp.InputSchema:
    columns = [str(c) for c in frame.columns]
    input_names = check_columns(dataset, columns, file)
    if dataset.schema is None:
        return inp.InputSchema(
            tuple(
                inp.InputColumn(c, inp.infer_type(frame[c], is_text=c == dataset.text_column))
                for c in input_names
            )
        )
    return dataset.schema


def check_columns(dataset: Dataset, columns: list[str], file: str | None) -> list[str]:
    """The input columns among ``columns``, or ``InvalidInput`` when the label, the
    text column or (once the dataset has a schema) an input column is missing, or a
    column is not one of the dataset's."""
    if dataset.label_column not in columns:
        shown = ", ".join(columns[:_COLUMNS_SHOWN])
        if len(columns) > _COLUMNS_SHOWN:
            shown += f" and {len(columns) - _COLUMNS_SHOWN:,} more"
        raise InvalidInput(
            f"the label column {dataset.label_column!r} is missing (columns found: {shown})",
            file=file,
            field=dataset.label_column,
        )
    if dataset.text_column and dataset.text_column not in columns:
        raise InvalidInput(
            f"the text column {dataset.text_column!r} is missing",
            file=file,
            field=dataset.text_column,
        )
    input_names = [c for c in columns if c != dataset.label_column]
    if not input_names:
        raise InvalidInput("there are no input columns besides the label", file=file)
    if dataset.schema is None:
        return input_names
    known = set(dataset.schema.names)
    unknown = [c for c in input_names if c not in known]
    if unknown:
        more = f" (and {len(unknown) - 1:,} more unknown)" if len(unknown) > 1 else ""
        raise InvalidInput(
            f"unknown column {unknown[0]!r}{more}; the dataset's input columns are "
            + ", ".join(dataset.schema.names),
            file=file,
            field=unknown[0],
        )
    given = set(input_names)
    for c in dataset.schema.names:
        if c not in given:
            raise InvalidInput("this input column is missing", file=file, field=c)
    return input_names


def add_frame(
    engine: Engine,
    dataset: Dataset,
    frame: pd.DataFrame,
    provenance: Provenance,
    *,
    file: str | None,
    text_file: bool,
    progress: ProgressCallback | None,
    skip_existing: bool,
) -> ImportResult:
    """Import the rows of ``frame`` into ``dataset`` in one transaction: every row checked
    and converted before the write lock, then encoded and written chunk by chunk."""
    source = check_source(provenance.source)
    when = given_time(provenance.created_at)
    # Check and convert everything before taking the write lock: bad input never
    # touches the store.
    schema, cols, label_type, labels = checked(dataset, frame, file, text_file)
    n = len(frame)
    tags = provenance.tags
    tags_json = orjson.dumps(sorted(set(tags))).decode() if tags else None

    marking = change("patterns.add", f"dataset:{dataset.name}", {"rows": len(frame)})
    with marking, write(engine) as conn, no_gc():
        lock_patterns(conn)
        now = timestamps.now_us()  # after the lock: see lock_patterns
        if provenance.created_at is None:
            when = now
        first_import = dataset.schema is None
        if first_import:
            claim_schema(conn, dataset, schema, label_type)
        batch = table_imports.Batch(
            insert_batch(conn, dataset, provenance, file, n, now), next_pattern_id(conn), tags_json
        )
        batch_id: int | None = batch.id
        start = batch.first_id
        constants = {
            "dataset_id": dataset.id,
            "batch_id": batch_id,
            "source": source,
            "tags": tags_json,
            "created_at": when,
        }
        chunks = ImportRows(
            schema=schema,
            cols=cols,
            labels=labels,
            source=source,
            when=when,
            stored=None if first_import else StoredContent(conn, dataset),
            skip_existing=skip_existing,
        )
        with Appending(tables.of(conn), conn, columnar.table_spec(dataset.id, schema)) as table:
            written: _Written | Encoded = (
                table_imports.encode(dataset, chunks, batch, table, progress)
                if dataset.columnar
                else _write_chunks(conn, dataset, constants, chunks, start, progress)
            )
            if written.rows < n:
                batch_id = shrink_batch(conn, batch_id, written.rows)
            # The ids of one import are consecutive, in the order of its rows.
            first_id = last_id = None
            if batch_id is not None and written.rows:
                first_id, last_id = start, start + written.rows - 1
                record_range(conn, batch_id, first_id, last_id)
            table.commit()  # after its rows' range: the table's commit, then the database's
    if first_import:
        dataset.schema = schema
        dataset.label_type = label_type
    return ImportResult(
        dataset=dataset.name,
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


def checked(
    dataset: Dataset, frame: pd.DataFrame, file: str | None, text_file: bool
) -> tuple[inp.InputSchema, dict[str, inp.CoercedColumn], str, codec.Coded]:
    """The rows of ``frame`` checked and converted for ``dataset``: the schema they are
    stored by, their input columns, the label type and their labels; or
    ``InvalidInput`` naming the file, row and field of the first bad one."""
    frame.columns = [str(c) for c in frame.columns]
    if len(set(frame.columns)) != len(frame.columns):
        raise InvalidInput("a column name appears twice", file=file)
    schema = _resolve_schema(dataset, frame, file)
    cols = {
        c.name: inp.coerce(
            frame[c.name], c.type, file=file, offset=0, field=c.name, text_file=text_file
        )
        for c in schema.columns
    }
    label_type = dataset.label_type or inp.infer_label_type(
        frame[dataset.label_column], dataset.task
    )
    labels = import_labels(dataset, frame[dataset.label_column], label_type, file, text_file)
    return schema, cols, label_type, labels


def given_time(created_at: str | datetime | int | None) -> int:
    """``created_at`` in microseconds (now when not given), refused in the future."""
    when = timestamps.parse(created_at, what="created_at")
    now = timestamps.now_us()
    if when is None:
        return now
    if when > now + _FUTURE_SLACK_US:
        raise InvalidInput(f"created_at {timestamps.iso(when)} is in the future")
    return when


def claim_schema(
    conn: Connection, dataset: Dataset, schema: inp.InputSchema, label_type: str
) -> None:
    """Give a dataset its first import's schema, unless another import did meanwhile."""
    updated = conn.execute(
        update(t.datasets)
        .where(t.datasets.c.id == dataset.id, t.datasets.c.input_schema.is_(None))
        .values(input_schema=orjson.dumps(to_json(schema)).decode(), label_type=label_type)
    ).rowcount
    if updated != 1:
        raise Conflict(
            f"dataset {dataset.name!r} got its schema from another import meanwhile; "
            "run the import again"
        )


def insert_batch(
    conn: Connection,
    dataset: Dataset,
    provenance: Provenance,
    file: str | None,
    rows: int,
    now: int,
) -> int:
    """The import's row in ``import_batches``; its id."""
    batch_id: int = conn.execute(
        insert(t.import_batches).values(
            dataset_id=dataset.id,
            kind="import",
            source=provenance.source,
            labelled_by=provenance.labelled_by,
            note=provenance.note,
            file=file,
            rows=rows,
            created_at=now,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return batch_id


def shrink_batch(conn: Connection, batch_id: int | None, rows: int) -> int | None:
    """The batch counts only the ``rows`` written (``skip_existing`` left the others
    out); a batch that wrote none is removed, and ``None`` returned."""
    batches = t.import_batches
    if rows == 0:
        conn.execute(delete(batches).where(batches.c.id == batch_id))
        return None
    conn.execute(update(batches).where(batches.c.id == batch_id).values(rows=rows))
    return batch_id


def _write_chunks(
    conn: Connection,
    dataset: Dataset,
    constants: dict[str, Any],
    chunks: ImportRows,
    first_id: int,
    progress: ProgressCallback | None,
) -> _Written:
    """Encode and write the rows chunk by chunk, counting those stored already (and
    leaving them out with ``skip_existing``); the rows written take the ids from
    ``first_id`` on, in order."""
    n = len(chunks.labels)
    out = _Written(rows=0, already=0, by_split=np.zeros(3, dtype=np.int64))

    def write_chunk(names: list[str], first: int, columns: list[list[Any]]) -> int:
        # The rows are made here, beside the encoding of the next chunk.
        rows = list(zip(range(first, first + len(columns[0])), *columns, strict=True))
        if rows:
            bulk_insert(conn, t.patterns, ["id", *names], rows, constants=constants)
        return len(rows)

    def wait(pending: Future[int]) -> None:
        done = pending.result()
        out.rows += done
        if progress is not None:
            progress(done)

    # Chunk k+1 is encoded while chunk k is written: the driver lets go of the GIL
    # inside the database, so the two overlap on two cores. Only the writer thread
    # touches the connection while a write is pending.
    next_id = first_id
    with ThreadPoolExecutor(1, thread_name_prefix="trenches-import") as writer:
        pending: Future[int] | None = None
        for start in range(0, n, CHUNK_ROWS):
            stop = min(n, start + CHUNK_ROWS)
            names, columns, split, enc = _encode_chunk(dataset, chunks, start, stop)
            if pending is not None:
                wait(pending)
            if chunks.stored is not None:  # the connection is free to read now
                seen = chunks.stored.stored(
                    enc.key_head,
                    enc.num_words,
                    enc.obj,
                    chunks.labels.slice(start, stop),
                    chunks.source,
                )
                out.already += int(seen.sum())
                if chunks.skip_existing and seen.any():
                    fresh = np.flatnonzero(~seen).tolist()
                    columns = [[column[i] for i in fresh] for column in columns]
                    split = split[~seen]
            out.by_split += np.bincount(split, minlength=3)
            pending = writer.submit(write_chunk, names, next_id, columns)
            next_id += len(split)
        if pending is not None:
            wait(pending)
    return out


def _encode_chunk(
    dataset: Dataset, chunks: ImportRows, start: int, stop: int
) -> tuple[list[str], list[list[Any]], np.ndarray, codec.EncodedInputs]:
    """Rows ``start:stop`` as the names and columns (lists) the bulk insert takes."""
    enc = codec.encode(chunks.schema, chunks.chunk(start, stop), stop - start, dataset.salt)
    split = codec.splits_of(enc.key_head, dataset.split_ratios)
    labs = chunks.labels.slice(start, stop).texts()
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
    return names, columns, split, enc


def split_of(dataset: Dataset, frame: pd.DataFrame) -> pd.Series:
    """``Dataset.split_of``: each row's inputs keyed as an import keys them."""
    if dataset.schema is None:
        raise Conflict(
            f"dataset {dataset.name!r} has no patterns yet: its first import sets the "
            "input columns the split is worked out from"
        )
    for c in dataset.schema.names:
        if c not in frame.columns:
            raise InvalidInput("this input column is missing", field=c)
    cols = {
        c.name: inp.coerce(frame[c.name], c.type, file=None, offset=0, field=c.name)
        for c in dataset.schema.columns
    }
    enc = codec.encode(dataset.schema, cols, len(frame), dataset.salt)
    codes = codec.splits_of(enc.key_head, dataset.split_ratios)
    return pd.Series(np.asarray(SPLITS, dtype=object)[codes], index=frame.index, name="split")


def import_labels(
    dataset: Dataset, series: pd.Series, label_type: str, file: str | None, text_file: bool
) -> codec.Coded:
    """The labels of ``series`` as stored text, each distinct one once (see
    :func:`coerce_labels` for the errors). Labels of a text, integer, boolean or
    category column are checked and converted a distinct value at a time; floats (whose
    0.0 and -0.0 are one value to a hash table) and Python objects (whose 1 and 1.0 are)
    a row at a time."""
    types = pd.api.types
    if not any(is_(series.dtype) for is_ in (types.is_float_dtype, types.is_object_dtype)):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        if len(codes) == 0 or codes.min() >= 0:
            try:
                values = coerce_labels(dataset, pd.Series(uniques), label_type, file, text_file)
            except InvalidInput:
                pass  # the rows again, for the error that names the row
            else:
                return _coded(inp.label_to_text(values, label_type), codes)
    values = coerce_labels(dataset, series, label_type, file, text_file)
    return _coded(inp.label_to_text(values, label_type))


def _coded(texts: list[str], codes: np.ndarray | None = None) -> codec.Coded:
    """``texts`` (each row's, or with ``codes`` each distinct value's) as one code a
    row into the distinct texts."""
    text_codes, distinct = pd.factorize(np.asarray(texts, dtype=object))
    if codes is not None:
        text_codes = text_codes[codes]
    return codec.Coded(text_codes.astype(np.int32), [str(v) for v in distinct])


def coerce_labels(
    dataset: Dataset, series: pd.Series, label_type: str, file: str | None, text_file: bool = False
) -> np.ndarray:
    """The labels of ``series`` as ``label_type``, or ``InvalidInput`` naming the first
    missing or bad one."""
    field = dataset.label_column
    missing = pd.isna(series).to_numpy().copy()
    if not (
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    ):
        # An empty string is no label; in a text file (CSV) neither is a word that
        # stands for "missing" there (NaN, null, None, NA).
        words = inp.MISSING_WORDS if text_file else frozenset({""})
        missing |= inp.among_words(series, words)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InvalidInput("the label is missing or empty", file=file, row=i + 1, field=field)
    c = inp.coerce(series, label_type, file=file, offset=0, field=field)
    if label_type == "number" and not np.isfinite(c.values).all():
        i = int(np.flatnonzero(~np.isfinite(c.values))[0])
        raise InvalidInput("the label is not a finite number", file=file, row=i + 1, field=field)
    return c.values
