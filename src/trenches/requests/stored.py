"""The request log's bulk in Iceberg tables: what each request was asked and answered.

A served request is written by the log writer as a row of ``served_requests`` with
its inputs and outputs as JSON text: the *staged* form, cheap to write a few rows at a
time. Every :data:`MOVE_ROWS` requests or :data:`MOVE_SECONDS` seconds the writer
moves the staged requests into two kinds of Iceberg table, in one transaction that
also empties their ``inputs`` and ``outputs`` (so a reader sees each request once,
staged or moved, never both nor neither):

- ``requests``: one row a request: its id (the ``served_requests`` row's), request
  id, version, time, and its inputs and outputs as the JSON text it was logged with.
  Lossless: what ``store.requests.list`` shows.
- ``request_rows_<version id>``: one row an input row of the requests that version
  answered callers (an answer given in another's shadow is in ``requests`` alone):
  the request (id and request id), the row's number in it, the time, the answer, and
  the inputs as typed columns of the struct ``inputs``, typed by the version's
  signature (a value that is not of its column's type is null, as
  monitoring counts it missing anyway). What a drift window reads, by columns, with
  the files outside its time span skipped by their bounds.

The ``served_requests`` row stays, without its inputs and outputs: what a feedback,
a listing or the traffic graph looks requests up by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import func, select, update

from trenches import tables
from trenches.db import schema as t
from trenches.db.engine import id_in
from trenches.requests.records import json_column
from trenches.tables.pruning import Bound
from trenches.tables.schemas import iceberg_type, id_of, inputs_struct

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy import Engine
    from sqlalchemy.engine import Connection

    from trenches.tables.catalog import Tables, TableSpec

#: The table of requests (one row a request).
TABLE = "requests"
_ROWS_PREFIX = "request_rows_"
#: Staged requests the log writer lets gather before it moves them into the tables...
MOVE_ROWS = 50_000
#: ... or seconds it lets the oldest of them wait.
MOVE_SECONDS = 60.0
#: Requests, and input rows, moved in one transaction at most.
_MOST = 200_000
_MOST_ROWS = 1_000_000


def rows_name(version_id: int) -> str:
    return f"{_ROWS_PREFIX}{version_id}"


def version_of(name: str) -> int | None:
    """The version whose input rows the table ``name`` holds; None for another table."""
    return id_of(name, _ROWS_PREFIX)


def table_spec() -> TableSpec:
    """The table of requests (see the module's notes)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    from trenches.tables.catalog import TableSpec

    return TableSpec(
        TABLE,
        Schema(
            NestedField(1, "id", LongType(), required=True),
            NestedField(2, "request_id", StringType(), required=True),
            NestedField(3, "version_id", LongType(), required=True),
            NestedField(4, "received_at", LongType(), required=True),
            NestedField(5, "inputs", StringType(), required=True),
            NestedField(6, "outputs", StringType(), required=True),
        ),
    )


def _answer_kind(classes: Sequence[Any] | None) -> str:
    """How a version's answers are stored: its classes' type (text when they mix
    types), or a number for a regressor."""
    if classes is None:
        return "double"
    if classes and all(isinstance(c, bool) for c in classes):
        return "boolean"
    if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "long"
    return "string"


def rows_spec(version_id: int, inputs: Sequence[tuple[str, str]], answer: str) -> TableSpec:
    """The table of the input rows one version answered (see the module's notes)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import IntegerType, LongType, NestedField, StringType

    from trenches.tables.catalog import TableSpec

    return TableSpec(
        rows_name(version_id),
        Schema(
            NestedField(1, "id", LongType(), required=True),
            NestedField(2, "request_id", StringType(), required=True),
            NestedField(3, "row", IntegerType(), required=True),
            NestedField(4, "received_at", LongType(), required=True),
            NestedField(5, "answer", iceberg_type(answer), required=False),
            NestedField(6, "inputs", inputs_struct(inputs), required=True),
        ),
        # Every drift check reads a window of these whole, column by column: LZ4 reads
        # numbers about twice as fast as zstd, in files a few percent larger.
        properties={"write.parquet.compression-codec": "lz4"},
    )


# --- moving staged requests ----------------------------------------------------------


def staged(conn: Connection) -> int:
    """How many requests wait in the database to be moved into the tables."""
    r = t.served_requests.c
    return int(conn.execute(select(func.count()).where(r.inputs.is_not(None))).scalar_one())


def move(conn: Connection, *, most: int = _MOST, wait: bool = True) -> int:
    """Move the oldest staged requests (up to ``most``, and about a million input
    rows) into the tables, in the connection's write transaction: their rows appear in
    the tables and their inputs and outputs leave ``served_requests`` in the same
    commit. Returns how many moved (0: none was staged). ``wait`` False: move nothing
    (and return 0) if another move is under way, rather than wait for it."""
    return _move(conn, most, wait)[0]


def _move(conn: Connection, most: int, wait: bool) -> tuple[int, bool]:
    """:func:`move`; and whether it moved as much as one move may (more may wait)."""
    import pyarrow as pa

    from trenches.tables.catalog import lock, try_lock

    # Movers queue here: each moves what the last left staged.
    if wait:
        lock(conn, TABLE)
    elif not try_lock(conn, TABLE):
        return 0, False
    r = t.served_requests.c
    staged_rows = conn.execute(
        select(r.id, r.n).where(r.inputs.is_not(None)).order_by(r.id).limit(most)
    ).all()
    if not staged_rows:
        return 0, False
    rows = np.cumsum([max(int(n), 1) for _, n in staged_rows])
    take = max(1, int(np.searchsorted(rows, _MOST_ROWS, side="right")))
    full = take < len(staged_rows) or len(staged_rows) == most
    chosen = [int(i) for i, _ in staged_rows[:take]]
    found = conn.execute(
        select(r.id, r.request_id, r.version_id, r.received_at, r.inputs, r.outputs, r.shadow_of)
        .where(id_in(conn.dialect.name, r.id, chosen))
        .order_by(r.id)
    ).all()
    ids, request_ids, version_ids, received, inputs, outputs, shadows = (
        list(c) for c in zip(*found, strict=True)
    )
    store = tables.of(conn)
    store.append(
        conn,
        table_spec(),
        pa.table(
            {
                "id": pa.array(ids, type=pa.int64()),
                "request_id": pa.array(request_ids, type=pa.string()),
                "version_id": pa.array(version_ids, type=pa.int64()),
                "received_at": pa.array(received, type=pa.int64()),
                "inputs": pa.array(inputs, type=pa.string()),
                "outputs": pa.array(outputs, type=pa.string()),
            }
        ),
    )
    # Answers given in another's shadow stay out of the versions' input rows: a window
    # is what callers asked.
    versions = np.array(version_ids, dtype=np.int64)
    callers = np.array([s is None for s in shadows], dtype=bool)
    for version_id in np.unique(versions[callers]).tolist():
        at = np.flatnonzero((versions == version_id) & callers).tolist()
        spec, data = input_rows(
            conn,
            int(version_id),
            [ids[k] for k in at],
            [request_ids[k] for k in at],
            [received[k] for k in at],
            [inputs[k] for k in at],
            [outputs[k] for k in at],
        )
        # Received, then logged, order: what a window reads them in.
        order = [("received_at", "ascending"), ("id", "ascending"), ("row", "ascending")]
        store.append(conn, spec, data.sort_by(order))
    conn.execute(
        update(t.served_requests)
        .where(id_in(conn.dialect.name, r.id, ids))
        .values(inputs=None, outputs=None)
    )
    return len(ids), full


def move_all(
    engine: Engine,
    *,
    wait: bool = True,
    progress: Callable[[int], None] | None = None,
    most: int = _MOST,
    pause: float = 0.0,
) -> int:
    """Move every staged request into the tables, one transaction a :func:`move` of at
    most ``most`` requests, ``pause`` seconds apart (the database's other writers get
    their turn between them); returns how many moved, and tells ``progress`` the total
    after each move. ``wait`` False: stop (with what is moved) when another move is
    under way: it moves the rest."""
    import time

    from trenches.db.engine import write

    total = 0
    while True:
        with write(engine, audited=False) as conn:
            moved, full = _move(conn, most, wait)
        total += moved
        if moved and progress is not None:
            progress(total)
        if not full:
            return total
        time.sleep(pause)


def _signature(conn: Connection, version_id: int) -> tuple[list[tuple[str, str]], str]:
    """A version's input columns with their types, and how its answers are stored."""
    from trenches.json_form import from_json
    from trenches.models.formats import Signature

    v = t.model_versions.c
    text = conn.execute(select(v.signature).where(v.id == version_id)).scalar_one()
    signature = from_json(Signature, orjson.loads(text))
    return list(signature.inputs), _answer_kind(signature.classes)


def input_rows(
    conn: Connection,
    version_id: int,
    ids: list[int],
    request_ids: list[str],
    received: list[int],
    inputs: list[str],
    outputs: list[str],
) -> tuple[TableSpec, pa.Table]:
    """The input rows of one version's requests (their ids, request ids, times, and
    inputs and outputs as logged), as rows of its table: what a move appends, and what
    a window reads of requests not moved yet."""
    import pyarrow as pa

    from trenches.requests import bodies

    columns, answer = _signature(conn, version_id)
    table = tables.of(conn).load(conn, rows_name(version_id))
    if table is not None:
        # The table as made: a version's signature never changes, but a table made by
        # an earlier release keeps its own types.
        columns, answer = _made(table)
    spec = rows_spec(version_id, columns, answer)
    arrow = spec.schema.as_arrow()
    blocks, counts = bodies.blocks(json_column(inputs))
    frame = bodies.frame(blocks, counts)
    n = int(counts.sum())
    struct_type = arrow.field("inputs").type
    children = [
        _typed(frame[name] if name in frame.columns else None, n, struct_type.field(j).type)
        for j, (name, _) in enumerate(columns)
    ]
    starts = np.cumsum(counts) - counts
    answers = bodies.answers(json_column(outputs), counts)
    data = pa.Table.from_arrays(
        [
            pa.array(np.repeat(np.array(ids, dtype=np.int64), counts), type=pa.int64()),
            pa.array(np.repeat(np.array(request_ids, dtype=object), counts), type=pa.string()),
            pa.array(
                (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32),
                type=pa.int32(),
            ),
            pa.array(np.repeat(np.array(received, dtype=np.int64), counts), type=pa.int64()),
            _typed_values(answers, arrow.field("answer").type),
            pa.StructArray.from_arrays(children, fields=list(struct_type)),
        ],
        schema=arrow,
    )
    return spec, data


def _kind_of(typ: pa.DataType) -> str:
    """The input type a column of the table holds."""
    import pyarrow as pa

    if pa.types.is_floating(typ):
        return "number"
    if pa.types.is_integer(typ):
        return "integer"
    if pa.types.is_boolean(typ):
        return "boolean"
    return "string"


_ANSWER_OF = {"number": "double", "integer": "long", "boolean": "boolean", "string": "string"}


def _typed(column: pd.Series | None, n: int, typ: pa.DataType) -> pa.Array:
    """One input column as its table's type: values of another type are null."""
    import pandas as pd
    import pyarrow as pa

    if column is None:
        return pa.nulls(n, type=typ)
    if pa.types.is_floating(typ) or pa.types.is_integer(typ):
        numbers = pd.to_numeric(column, errors="coerce")
        if pa.types.is_integer(typ):
            numbers = numbers.where(numbers == np.floor(numbers))
            return pa.array(numbers.astype("Int64"), type=typ)
        return pa.array(numbers.to_numpy(dtype=np.float64), type=typ, from_pandas=True)
    return _typed_values(column.to_numpy(dtype=object), typ)


def _typed_values(values: np.ndarray, typ: pa.DataType) -> pa.Array:
    """Python values as ``typ``: those of another type are null."""
    import pyarrow as pa

    kept: list[Any]
    if pa.types.is_boolean(typ):
        kept = [v if isinstance(v, bool) else None for v in values]
    elif pa.types.is_integer(typ):
        kept = [v if isinstance(v, int) and not isinstance(v, bool) else None for v in values]
    elif pa.types.is_floating(typ):
        kept = [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
            for v in values
        ]
    else:
        kept = [v if isinstance(v, str) or v is None else _text(v) for v in values]
    return pa.array(kept, type=typ)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def spec_of(conn: Connection, name: str) -> tuple[TableSpec, tuple[str, ...]] | None:
    """How one of the request log's tables is made, and how its rows are sorted (for
    merging its files); None for another table."""
    if name == TABLE:
        return table_spec(), ("id",)
    version_id = version_of(name)
    if version_id is None:
        return None
    table = tables.of(conn).load(conn, name)
    if table is None:
        return None
    columns, answer = _made(table)
    return rows_spec(version_id, columns, answer), ("received_at", "id", "row")


def _made(table: Any) -> tuple[list[tuple[str, str]], str]:
    """The input columns (with their types) and the answer's type of a table of input
    rows, as it was made."""
    made = table.schema().as_arrow()
    columns = [(f.name, _kind_of(f.type)) for f in made.field("inputs").type]
    return columns, _ANSWER_OF[_kind_of(made.field("answer").type)]


# --- reading ---------------------------------------------------------------------------


def bodies(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The inputs and outputs (JSON text) of moved requests, by their ids."""
    import pyarrow.compute as pc

    from trenches.tables.filters import between

    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    store = tables.of(conn)
    files = store.files(conn, TABLE, between("id", wanted[0], wanted[-1]))
    if not files:
        return {}
    import pyarrow as pa

    found = store.read(
        files,
        columns=["id", "inputs", "outputs"],
        filters=pc.field("id").isin(pa.array(wanted, type=pa.int64())),
    )
    texts = zip(
        found.column("inputs").to_pylist(), found.column("outputs").to_pylist(), strict=True
    )
    return dict(zip(found.column("id").to_pylist(), texts, strict=True))


def with_bodies(conn: Connection, rows: Sequence[Any]) -> list[Any]:
    """Rows of ``served_requests`` (named rows with ``id`` and ``inputs`` or
    ``outputs``) with the inputs and outputs of the moved ones read from the table."""
    from types import SimpleNamespace

    found = bodies(conn, [row.id for row in rows if _moved(row)])
    out = []
    for row in rows:
        values = dict(row._mapping)
        if _moved(row):
            inputs, outputs = found.get(row.id, (None, None))
            if "inputs" in values:
                values["inputs"] = inputs
            if "outputs" in values:
                values["outputs"] = outputs
        out.append(SimpleNamespace(**values))
    return out


def _moved(row: Any) -> bool:
    mapping = row._mapping
    return any(name in mapping and mapping[name] is None for name in ("inputs", "outputs"))


def window_tables(
    conn: Connection, version_ids: Sequence[int], start: int | None, end: int | None
) -> list[tuple[int, WindowFiles, int]]:
    """The moved input rows of these versions received in ``[start, end)``: for each
    version that may have any, its files (read by :func:`window_rows`), and how many
    rows they hold (at least as many as are read)."""
    from trenches.tables.filters import within

    store = tables.of(conn)
    window = WindowFiles(store, start, end, ())
    parts = []
    for version_id in version_ids:
        # In the order of their first request, so that rows read in the order they
        # were received seldom need sorting.
        files = store.files(
            conn, rows_name(version_id), within(window.bounds()), order_by="received_at"
        )
        if files:
            parts.append(
                (
                    int(version_id),
                    WindowFiles(store, start, end, tuple(files)),
                    store.rows_in(files),
                )
            )
    return parts


def window_rows(
    window: WindowFiles,
    leave_out: frozenset[str],
    identity: Sequence[str],
    rows: int | None = None,
) -> Iterator[pa.Table]:
    """A version's rows in the window, read one file (or, with ``rows``, about that
    many rows) at a time, so that a reader copying them out reuses their memory: the
    answers, the inputs but ``leave_out``, and of what says which request, row and
    time each is, ``identity``."""
    inputs = ["inputs"]
    if leave_out:
        kept = [f.name for f in window.inputs_type() if f.name not in leave_out]
        inputs = [f"inputs.{name}" for name in kept]
    yield from window.store.batches(
        window.files,
        columns=[*identity, "answer", *inputs],
        bounds=window.bounds(),
        # A request's rows share its id, and the answers are a few classes: each
        # distinct value is made once (a numeric answer stays as it is).
        dictionary=[c for c in ("request_id", "answer") if c == "answer" or c in identity],
        rows=rows,
    )


@dataclass(frozen=True)
class WindowFiles:
    """The files of one version's input rows a window reads, and its time bounds."""

    store: Tables
    start: int | None
    end: int | None
    files: tuple[str, ...]

    def bounds(self) -> list[Bound]:
        """The window's time as a bound of ``received_at`` (none: every row)."""
        if self.start is None and self.end is None:
            return []
        return [Bound("received_at", self.start, None if self.end is None else self.end - 1)]

    def inputs_type(self) -> Any:
        """The struct of the version's inputs (each file has the same)."""
        return self.store.file_schema(self.files[0]).field("inputs").type

    def floating(self) -> tuple[set[str], set[str]]:
        """The version's floating-point inputs, and its others."""
        fields = list(self.inputs_type()) if self.files else []
        floats = {f.name for f in fields if _floating(f.type)}
        return floats, {f.name for f in fields} - floats


def input_numbers(window: WindowFiles, name: str) -> Iterator[np.ndarray]:
    """The values of the floating-point input ``name`` of the window's rows, a file at
    a time (NaN where missing): one column read from each file, so that a reader that
    copies each where it goes holds no more than one column of one file besides."""
    for part in window.store.batches(
        window.files, columns=[f"inputs.{name}"], bounds=window.bounds()
    ):
        column = part.column("inputs").combine_chunks().field(0)
        yield np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def _floating(typ: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_floating(typ))
