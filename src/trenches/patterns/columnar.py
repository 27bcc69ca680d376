"""A dataset's patterns as an Iceberg table, ``patterns_<dataset id>``: one row a
pattern, with its immutable facts (id, split, source, import, label, time, the pattern
it relabels, tags, input key, content hash) and its inputs as typed columns of the
struct ``inputs``. Each file of an append holds its rows by split, then id, so that a
read of one split skips the others' row groups by their bounds.

A dataset made by this release keeps its patterns here alone: the database holds no
row a pattern, only its imports (whose id ranges say which dataset an id is of) and
what changes (a deactivation or relabel, in ``pattern_changes``). A dataset made by an
earlier release keeps its patterns as database rows, inputs packed in them, until
``trenches migrate`` moves the inputs here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from trenches import tables
from trenches.patterns.inputs import CoercedColumn, InputSchema
from trenches.tables.arrays import ascending_unique
from trenches.tables.pruning import Bound
from trenches.tables.schemas import id_of, inputs_struct

if TYPE_CHECKING:
    from trenches.tables.catalog import TableSpec

_ARROW = {"number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}


_PREFIX = "patterns_"


#: A patterns table's files in Snappy, the codec of pyarrow's own default: its inputs
#: are mostly numbers that hardly compress, and Snappy writes and reads them faster
#: than zstd (which takes a level; Snappy has none, so the store's default is unset).
PROPERTIES = {"write.parquet.compression-codec": "snappy", "write.parquet.compression-level": ""}


def table_name(dataset_id: int) -> str:
    return f"{_PREFIX}{dataset_id}"


def dataset_of(name: str) -> int | None:
    """The dataset whose table is named ``name``; None for another table."""
    return id_of(name, _PREFIX)


def table_spec(dataset_id: int, schema: InputSchema) -> TableSpec:
    """The table of a dataset's patterns (see the module's notes)."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import BinaryType, IntegerType, LongType, NestedField, StringType

    from trenches.tables.catalog import TableSpec

    inputs = inputs_struct([(c.name, c.type) for c in schema.columns])
    iceberg_schema = Schema(
        NestedField(1, "pattern_id", LongType(), required=True),
        NestedField(2, "split", IntegerType(), required=True),
        NestedField(3, "source", StringType(), required=True),
        NestedField(4, "batch_id", LongType(), required=True),
        NestedField(5, "label", StringType(), required=True),
        NestedField(6, "created_at", LongType(), required=True),
        NestedField(7, "replaces_id", LongType(), required=False),
        NestedField(8, "tags", StringType(), required=False),
        NestedField(9, "input_key", BinaryType(), required=True),
        NestedField(10, "content_hash", BinaryType(), required=True),
        NestedField(11, "inputs", inputs, required=True),
    )
    return TableSpec(table_name(dataset_id), iceberg_schema, properties=PROPERTIES)


def rows(  # noqa: PLR0913
    spec: TableSpec,
    schema: InputSchema,
    *,
    ids: np.ndarray,
    split: np.ndarray,
    source: str | Sequence[str],
    batch_id: int | Sequence[int],
    labels: Sequence[str] | pa.Array,
    created_at: int | Sequence[int],
    keys: Sequence[bytes | bytearray] | np.ndarray,
    hashes: Sequence[bytes | bytearray] | np.ndarray,
    cols: dict[str, CoercedColumn],
    replaces_id: Sequence[int | None] | None = None,
    tags: str | Sequence[str | None] | None = None,
) -> pa.Table:
    """Patterns as rows of the dataset's table, their inputs as checked at import; the
    keys and hashes as lists of bytes or (n, 16) uint8 blocks."""
    n = len(ids)
    arrow = spec.schema.as_arrow()

    def each(value: Any, typ: pa.DataType) -> pa.Array:
        if value is None:
            return pa.nulls(n, type=typ)
        if isinstance(value, (str, int)):
            return pa.repeat(pa.scalar(value, type=typ), n)
        return pa.array(value, type=typ)

    inputs_type = arrow.field("inputs").type
    children = [
        _input_array(cols[c.name], c.type, inputs_type.field(j).type)
        for j, c in enumerate(schema.columns)
    ]
    inputs = pa.StructArray.from_arrays(children, fields=list(inputs_type))
    return pa.Table.from_arrays(
        [
            pa.array(ids, type=pa.int64()),
            pa.array(np.asarray(split, dtype=np.int32), type=pa.int32()),
            each(source, pa.string()),
            each(batch_id, pa.int64()),
            labels if isinstance(labels, pa.Array) else pa.array(labels, type=pa.string()),
            each(created_at, pa.int64()),
            each(replaces_id, pa.int64()),
            each(tags, pa.string()),
            _binary(keys),
            _binary(hashes),
            inputs,
        ],
        schema=arrow,
    )


#: Rows of one binary array made from a block: its 32-bit offsets stay in range.
_BLOCK_ROWS = 1 << 24


def _binary(values: Sequence[bytes | bytearray] | np.ndarray) -> pa.Array | pa.ChunkedArray:
    """Byte strings as an Arrow binary array; an (n, w) uint8 block without a Python
    object a row (in pieces, should the bytes pass what 32-bit offsets reach)."""
    if not isinstance(values, np.ndarray):
        return pa.array([bytes(v) for v in values], type=pa.binary())
    data = np.ascontiguousarray(values, dtype=np.uint8)
    n, width = data.shape
    if n > _BLOCK_ROWS:
        return pa.chunked_array(
            [_binary(data[i : i + _BLOCK_ROWS]) for i in range(0, n, _BLOCK_ROWS)],
            type=pa.binary(),
        )
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _input_array(column: CoercedColumn, typ: str, arrow_type: pa.DataType) -> pa.Array:
    mask = np.asarray(column.missing, dtype=bool)
    if typ in _ARROW:
        values = np.asarray(column.values).astype(_ARROW[typ].to_pandas_dtype(), copy=False)
        return pa.array(values, type=arrow_type, mask=mask if mask.any() else None)
    return pa.array(column.values, type=arrow_type, mask=mask if mask.any() else None)


def append(conn: Connection, spec: TableSpec, data: pa.Table, *, in_order: bool = False) -> None:
    """Append patterns to the dataset's table in the connection's write transaction,
    by split and then by id: a file's row groups then each hold one split, and a read
    of one split skips the others by their bounds (partitioning by split cost pyiceberg
    a second per million rows to cut the import apart)."""
    if data.num_rows > 1 and not in_order:  # ``in_order``: the caller ordered them
        data = data.sort_by([("split", "ascending"), ("pattern_id", "ascending")])
    tables.of(conn).append(conn, spec, data)


def read(  # noqa: PLR0913
    conn: Connection,
    dataset_id: int,
    *,
    columns: Sequence[str] | None = None,
    split: int | None = None,
    ids: np.ndarray | None = None,
    max_id: int | None = None,
    as_of: int | None = None,
    sources: Sequence[str] | None = None,
    dictionary: Sequence[str] = (),
) -> pa.Table | None:
    """The dataset's rows that match (``columns`` of them), in no set order; None
    before its table has any. Partitions, column bounds and row groups are pruned by
    the filters."""
    if ids is not None and split is None and columns is not None and "inputs" in columns:
        # The ids' splits first, from two narrow columns; then each split's inputs,
        # skipping the row groups of the others (a file holds its rows by split, then
        # id, so an id range alone reaches into every split's row groups).
        grouped = by_split(conn, dataset_id, ids, max_id=max_id, as_of=as_of, sources=sources)
        parts = [
            read(
                conn,
                dataset_id,
                columns=columns,
                split=code,
                ids=part,
                max_id=max_id,
                as_of=as_of,
                sources=sources,
                dictionary=dictionary,
            )
            for code, part in grouped
        ]
        kept = [p for p in parts if p is not None]
        if not kept:
            return None
        return pa.concat_tables(kept) if len(kept) > 1 else kept[0]
    planned = _plan(conn, dataset_id, split, ids, max_id, as_of, sources)
    if planned is None:
        return None
    files, bounds, where = planned
    # The filter on sources is evaluated on the rows read: they need that column.
    extra = where is not None and columns is not None and "source" not in columns
    data = tables.of(conn).read(
        files,
        columns=[*columns, "source"] if extra and columns is not None else columns,
        filters=where,
        dictionary=dictionary,
        bounds=bounds,
    )
    return data.drop_columns(["source"]) if extra else data


def by_split(
    conn: Connection,
    dataset_id: int,
    ids: np.ndarray,
    *,
    max_id: int | None = None,
    as_of: int | None = None,
    sources: Sequence[str] | None = None,
) -> list[tuple[int, np.ndarray]]:
    """The ids the table holds of ``ids``, by split (code, ascending ids), from two
    narrow columns."""
    narrow = read(
        conn,
        dataset_id,
        columns=["pattern_id", "split"],
        ids=ids,
        max_id=max_id,
        as_of=as_of,
        sources=sources,
    )
    if narrow is None:
        return []
    found = narrow.column("pattern_id").to_numpy()
    of_split = narrow.column("split").to_numpy()
    codes = np.flatnonzero(np.bincount(of_split)).tolist() if len(of_split) else []
    return [(code, ascending_unique(found[of_split == code])) for code in codes]


def batches(  # noqa: PLR0913 (the filters of :func:`read`)
    conn: Connection,
    dataset_id: int,
    *,
    columns: Sequence[str],
    rows: int,
    split: int | None = None,
    ids: np.ndarray | None = None,
    max_id: int | None = None,
    as_of: int | None = None,
    sources: Sequence[str] | None = None,
    dictionary: Sequence[str] = (),
) -> Iterator[pa.Table]:
    """What :func:`read` reads, a few row groups (about ``rows`` rows) at a time,
    each batch with its ``pattern_id``, in the table's order: for a reader that copies
    each where it goes. The files are chosen on ``conn`` before this returns; reading
    them needs it no more."""
    planned = _plan(conn, dataset_id, split, ids, max_id, as_of, sources)
    if planned is None:
        return iter(())
    files, bounds, where = planned
    wanted = list(
        dict.fromkeys([*columns, "pattern_id", *(["source"] if where is not None else [])])
    )
    return tables.of(conn).batches(
        files, columns=wanted, bounds=bounds, filters=where, rows=rows, dictionary=dictionary
    )


def version(conn: Connection, dataset_id: int) -> str | None:
    """Which commit of the dataset's table the connection sees (see
    :meth:`~trenches.tables.catalog.Tables.version`)."""
    return tables.of(conn).version(conn, table_name(dataset_id))


def _plan(
    conn: Connection,
    dataset_id: int,
    split: int | None,
    ids: np.ndarray | None,
    max_id: int | None,
    as_of: int | None,
    sources: Sequence[str] | None,
) -> tuple[list[str], list[Bound], Any] | None:
    """The files a read of the table reaches, its bounds and its other filter; None
    when it reaches none."""
    from trenches.tables.filters import within

    if ids is not None and len(ids) == 0:
        return None
    bounds = _bounds(split, ids, max_id, as_of)
    # Planned without the ids' range, which differs from read to read (a page, a
    # pattern by id) where the other bounds do not: a plan is remembered by its
    # filter, and the files are chosen by their ids' range from it.
    plan = within([b for b in bounds if b.column != "pattern_id"])
    spans = tables.of(conn).spans(conn, table_name(dataset_id), plan, "pattern_id")
    ids_bound = next((b for b in bounds if b.column == "pattern_id"), Bound("pattern_id"))
    files = [path for path, least, most in spans if ids_bound.spans(least, most)]
    if not files:
        return None
    where = pc.field("source").isin(pa.array(list(sources), type=pa.string())) if sources else None
    return files, bounds, where


def _bounds(
    split: int | None, ids: np.ndarray | None, max_id: int | None, as_of: int | None
) -> list[Bound]:
    """A read's filters as bounds of whole-number columns: the files and row groups
    outside them are skipped, and a row group wholly inside is read unfiltered."""
    bounds = []
    if split is not None:
        bounds.append(Bound("split", split, split))
    if ids is not None or max_id is not None:
        among = None if ids is None else ascending_unique(ids)
        bounds.append(Bound("pattern_id", None, max_id, among).narrowed())
    if as_of is not None:
        bounds.append(Bound("created_at", None, as_of))
    return bounds


def inputs_frame(schema: InputSchema, inputs: pa.ChunkedArray | pa.StructArray) -> pd.DataFrame:
    """The ``inputs`` struct as the DataFrame a dataset's reads give: numbers as
    float64 with NaN, integers and booleans as NumPy arrays (nullable pandas arrays
    where one is missing), strings as objects with None."""
    struct = inputs.combine_chunks() if isinstance(inputs, pa.ChunkedArray) else inputs
    out: dict[str, Any] = {}
    for j, c in enumerate(schema.columns):
        child = struct.field(j)
        if c.type == "number":
            out[c.name] = child.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        elif c.type in ("integer", "boolean"):
            missing = child.is_null().to_numpy(zero_copy_only=False)
            filled = child.fill_null(0 if c.type == "integer" else False)
            values = filled.to_numpy(zero_copy_only=False)
            if missing.any():
                array = pd.arrays.IntegerArray if c.type == "integer" else pd.arrays.BooleanArray
                out[c.name] = array(values, missing)
            else:
                out[c.name] = values
        else:
            out[c.name] = child.to_numpy(zero_copy_only=False)
    return pd.DataFrame({c: out[c] for c in schema.names}, copy=False)


def coerced(
    schema: InputSchema, inputs: pa.ChunkedArray | pa.StructArray
) -> dict[str, CoercedColumn]:
    """The ``inputs`` struct as the checked columns an import encodes (for keys and
    content hashes worked out again)."""
    struct = inputs.combine_chunks() if isinstance(inputs, pa.ChunkedArray) else inputs
    out: dict[str, CoercedColumn] = {}
    for j, c in enumerate(schema.columns):
        child = struct.field(j)
        missing = child.is_null().to_numpy(zero_copy_only=False).astype(bool)
        if c.type in _ARROW:
            fill = {"number": 0.0, "integer": 0, "boolean": False}[c.type]
            values = child.fill_null(fill).to_numpy(zero_copy_only=False)
        else:
            values = child.to_numpy(zero_copy_only=False)
        out[c.name] = CoercedColumn(np.asarray(values), missing)
    return out


#: Patterns moved per step of :func:`move_dataset` (bounds its memory).
MOVE_ROWS = 100_000


def move_dataset(conn: Connection, dataset_id: int) -> int:
    """Move the inputs of an earlier release's dataset, packed in its ``patterns`` rows,
    into its Iceberg table, in the connection's write transaction: the rows keep their
    text inputs (the pattern search reads them) and lose the packed numbers, and the
    dataset becomes columnar, all in one commit. Returns how many patterns moved (0:
    the dataset was columnar already)."""
    import orjson
    from sqlalchemy import select, update

    from trenches.db import schema as t
    from trenches.db.engine import lock_patterns
    from trenches.json_form import from_json
    from trenches.patterns import codec

    lock_patterns(conn)
    d = t.datasets.c
    row = conn.execute(select(d.columnar, d.input_schema).where(d.id == dataset_id)).one()
    if row.columnar:
        return 0
    moved = 0
    if row.input_schema:
        schema = from_json(InputSchema, orjson.loads(row.input_schema))
        spec = table_spec(dataset_id, schema)
        p = t.patterns.c
        query = (
            select(
                *(p.id, p.split, p.source, p.batch_id, p.label, p.created_at),
                *(p.replaces_id, p.tags, p.input_key, p.content_hash, p.num, p.obj),
            )
            .where(p.dataset_id == dataset_id)
            .order_by(p.id)
            .limit(MOVE_ROWS)
        )
        after = 0
        while chunk := conn.execute(query.where(p.id > after)).all():
            ids, split, source, batch, label, created, replaces, tags, key, content, num, obj = zip(
                *chunk, strict=True
            )
            cols = codec.coerced_of(
                schema, num if schema.numeric else [], obj if schema.strings else []
            )
            part = rows(
                spec,
                schema,
                ids=np.array(ids, dtype=np.int64),
                split=np.array(split),
                source=list(source),
                batch_id=list(batch),
                labels=list(label),
                created_at=list(created),
                keys=list(key),
                hashes=list(content),
                cols=cols,
                replaces_id=list(replaces),
                tags=list(tags),
            )
            append(conn, spec, part)
            moved += len(chunk)
            after = int(ids[-1])
        conn.execute(update(t.patterns).where(p.dataset_id == dataset_id).values(num=None))
    conn.execute(update(t.datasets).where(d.id == dataset_id).values(columnar=True))
    return moved
