"""The prediction store: each predictor's output on each pattern, stored once.

A predictor is a model version or a baseline. Its predictions are written in blocks
(pattern ids, predicted class index or value, class scores, correctness, loss). A
block of :data:`INLINE_ROWS` or more is appended to the Iceberg table ``predictions``
(partitioned by predictor: reading one predictor's predictions reads its files only);
a smaller one (a problem's patterns backfilled, a page of new patterns) is one row of
NumPy arrays in the SQL table ``prediction_blocks``, where writing costs a millisecond
rather than an Iceberg commit; ``trenches compact`` moves those into the table. Reads
take both. A prediction is a pure function of (predictor, pattern): a pattern that has
one is never predicted again.

:func:`trenches.prediction_table.table` joins a predictor's predictions with the
patterns they are about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import func, insert, null, select
from sqlalchemy.engine import Connection

from trenches import tables, timestamps
from trenches.db import schema as t
from trenches.db.engine import advisory_lock, blob_ranges, insert_returning_id
from trenches.errors import Conflict
from trenches.tables.arrays import ascending_unique, is_ascending, stacked
from trenches.tables.pruning import Bound, among

if TYPE_CHECKING:
    import pyarrow as pa

    from trenches.tables.catalog import TableSpec

#: A block of this many predictions or more goes to the Iceberg table; a smaller one
#: stays a row of the SQL table until ``trenches compact`` moves it.
INLINE_ROWS = 4096
#: The Iceberg table of every predictor's predictions.
TABLE = "predictions"


@dataclass(frozen=True)
class Predictions:
    """A predictor's predictions as columns, by ascending pattern id."""

    classes: tuple[str, ...] | None
    pattern_ids: np.ndarray  # int64
    label_index: np.ndarray | None  # int32 into classes (classification)
    values: np.ndarray | None  # float64 (regression)
    scores: np.ndarray | None  # float64 (n, len(classes)), NaN rows where none were given
    correct: np.ndarray | None  # bool (classification)
    loss: np.ndarray  # float64, NaN where there is none

    def __len__(self) -> int:
        return len(self.pattern_ids)

    @property
    def labels(self) -> np.ndarray | None:
        """Predicted labels as text (classification)."""
        if self.label_index is None or self.classes is None:
            return None
        return np.asarray(np.asarray(self.classes, dtype=object)[self.label_index])


def _bytes(a: np.ndarray | None, dtype: str) -> bytes | None:
    if a is None:
        return None
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def make_predictor(
    conn: Connection,
    *,
    version_id: int | None = None,
    baseline_id: int | None = None,
    classes: Sequence[str] | None = None,
) -> int:
    """Make the predictor row of a version or baseline being registered (in its
    registration's transaction): readers only ever find it."""
    return insert_returning_id(
        conn,
        t.predictors,
        {
            "kind": "version" if version_id is not None else "baseline",
            "version_id": version_id,
            "baseline_id": baseline_id,
            "classes": orjson.dumps(list(classes)).decode() if classes is not None else None,
            "created_at": timestamps.now_us(),
        },
    )


def predicted_ids(
    conn: Connection, predictor: int, among_ids: np.ndarray | None = None
) -> np.ndarray:
    """The ids of the patterns the predictor has a prediction for, ascending (of
    ``among_ids``, ascending, alone when given)."""
    b = t.prediction_blocks.c
    blobs = conn.execute(select(b.pattern_ids).where(b.predictor_id == predictor)).scalars()
    parts = [np.frombuffer(x, dtype="<i8") for x in blobs]
    if among_ids is not None:
        parts = [p[among(p, among_ids)] for p in parts]
    bulk = _bulk(conn, predictor, ["pattern_id"], ids=among_ids)
    if bulk is not None:
        parts.append(bulk.column("pattern_id").to_numpy())
    # unique: in a write transaction, a move into the table committed between the two
    # reads shows its rows in both
    return ascending_unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def count(conn: Connection, predictor: int) -> int:
    """How many predictions the predictor has."""
    b = t.prediction_blocks.c
    inline = conn.execute(
        select(func.coalesce(func.sum(b.n), 0)).where(b.predictor_id == predictor)
    ).scalar_one()
    return int(inline) + tables.of(conn).count(conn, TABLE, _of_predictor(predictor))


def _of_predictor(predictor: int) -> Any:
    from trenches.tables.filters import equal

    return equal("predictor_id", predictor)


def _bulk(
    conn: Connection, predictor: int, columns: Sequence[str], *, ids: np.ndarray | None = None
) -> pa.Table | None:
    """The predictor's rows of the Iceberg table (``columns`` of them; only those on
    ``ids`` when given); None when it has none there."""
    import pyarrow.compute as pc

    store = tables.of(conn)
    if ids is not None and not len(ids):
        return None
    spans = store.partitions(conn, TABLE, "pattern_id").get(predictor, [])
    if ids is not None:
        low, high = int(ids[0]), int(ids[-1])
        spans = [span for span in spans if span[1] <= high and span[2] >= low]
    files = [path for path, _, _ in spans]
    if not files:
        return None
    filters = pc.field("predictor_id") == predictor
    if ids is None:
        return store.read(files, columns=columns, filters=filters)
    # Row groups chosen by their id bounds, the ids picked by binary search (pyarrow's
    # isin filter hashes every wanted id for each row group). The files are the
    # predictor's partition: they hold its rows alone.
    return store.read(files, columns=columns, bounds=[Bound("pattern_id", among=ids)])


@lru_cache(maxsize=1)
def table_spec() -> TableSpec:
    """The Iceberg table of predictions: one row a prediction, partitioned by
    predictor; ``scores`` holds one number per class, in the predictor's class order."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import (
        BooleanType,
        DoubleType,
        IntegerType,
        ListType,
        LongType,
        NestedField,
    )

    from trenches.tables.catalog import TableSpec

    schema = Schema(
        NestedField(1, "predictor_id", LongType(), required=True),
        NestedField(2, "pattern_id", LongType(), required=True),
        NestedField(3, "label_index", IntegerType(), required=False),
        NestedField(4, "value", DoubleType(), required=False),
        NestedField(5, "scores", ListType(8, DoubleType(), element_required=True), required=False),
        NestedField(6, "correct", BooleanType(), required=False),
        NestedField(7, "loss", DoubleType(), required=False),
    )
    partition = PartitionSpec(
        PartitionField(
            source_id=1, field_id=1000, transform=IdentityTransform(), name="predictor_id"
        )
    )
    return TableSpec(TABLE, schema, partition)


def table_rows(predictor: int, block: Block, order: np.ndarray) -> pa.Table:
    """The rows of ``block`` taken in ``order`` (positions in it, by ascending pattern
    id), as rows of the Iceberg table."""

    def sort(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[order]

    n = len(order)
    columns = {
        "pattern_ids": np.asarray(block.pattern_ids, dtype=np.int64)[order],
        "label_index": sort(block.label_index),
        "value": sort(block.values),
        "scores": sort(block.scores),
        "correct": sort(block.correct),
        "loss": sort(block.loss) if block.loss is not None else np.full(n, np.nan),
    }
    return arrow_rows(predictor, columns, n)


def arrow_rows(predictor: int, columns: dict[str, np.ndarray | None], n: int) -> pa.Table:
    """A block's sorted arrays as rows of the Iceberg table."""
    import pyarrow as pa

    schema = table_spec().schema.as_arrow()

    def plain(name: str, dtype: Any) -> pa.Array:
        value = columns[name]
        if value is None:
            return pa.nulls(n, schema.field(name).type)
        return pa.array(np.asarray(value).astype(dtype, copy=False), type=schema.field(name).type)

    scores = columns["scores"]
    if scores is None:
        score_array: pa.Array = pa.nulls(n, schema.field("scores").type)
    else:
        flat = np.ascontiguousarray(scores, dtype=np.float64).reshape(n, -1)
        offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int64)
        score_array = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat.ravel()))
        score_array = score_array.cast(schema.field("scores").type)
    arrays = [
        pa.array(np.full(n, predictor, dtype=np.int64)),
        pa.array(np.asarray(columns["pattern_ids"], dtype=np.int64)),
        plain("label_index", np.int32),
        plain("value", np.float64),
        score_array,
        plain("correct", np.bool_),
        plain("loss", np.float64),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _from_arrow(data: pa.Table, k: int) -> dict[str, np.ndarray | None]:
    """Rows of the Iceberg table as a block's arrays (a column not read, or null in
    every row, as None; NaN or 0 where a row has none)."""
    out: dict[str, np.ndarray | None] = {"pattern_ids": data.column("pattern_id").to_numpy()}
    for name, (dtype, _) in _ARRAYS.items():
        if name not in data.column_names or data.column(name).null_count == data.num_rows:
            out[name] = None
            continue
        column = data.column(name).combine_chunks()
        if name == "scores" and column.null_count == 0:  # as read: no filling, no copy
            out[name] = column.flatten().to_numpy().reshape(-1, k)
        elif name == "scores":
            filled = np.full((data.num_rows, k), np.nan)
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            if valid.any():
                filled[valid] = column.drop_null().flatten().to_numpy().reshape(-1, k)
            out[name] = filled
        elif name == "correct":
            out[name] = column.fill_null(False).to_numpy(zero_copy_only=False).astype("u1")
        else:
            empty = np.nan if dtype == "<f8" else 0
            values = column.fill_null(empty).to_numpy(zero_copy_only=False)
            out[name] = values.astype(dtype, copy=False)
    return out


@dataclass(frozen=True)
class Block:
    """One block of predictions to store, each array in the order of ``pattern_ids``:
    class indexes, scores and correctness (classification) or values (regression), and
    the loss (NaN where none is given)."""

    pattern_ids: np.ndarray
    label_index: np.ndarray | None = None
    values: np.ndarray | None = None
    scores: np.ndarray | None = None
    correct: np.ndarray | None = None
    loss: np.ndarray | None = None


def joined_blocks(blocks: Sequence[Block]) -> Block:
    """Blocks of one kind as one block (their patterns in the order given)."""
    if len(blocks) == 1:
        return blocks[0]

    def joined(name: str) -> np.ndarray | None:
        parts = [getattr(b, name) for b in blocks]
        return None if any(p is None for p in parts) else np.concatenate(parts)

    ids = joined("pattern_ids")
    assert ids is not None
    names = ("label_index", "values", "scores", "correct", "loss")
    return Block(ids, **{name: joined(name) for name in names})


def write_block(
    conn: Connection, predictor: int, block: Block, *, skip_existing: bool = False
) -> int:
    """Store one block of predictions; returns how many were stored.

    A pattern the predictor has a prediction for already is refused, or with
    ``skip_existing`` left out (another process got there first)."""
    ids = np.asarray(block.pattern_ids, dtype=np.int64)
    if len(ids) == 0:
        return 0
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if (np.diff(ids) == 0).any():
        raise Conflict("a block of predictions names a pattern twice")
    # Two writers of one predictor (two processes evaluating one version) take turns
    # from here: the second sees what the first stored.
    advisory_lock(conn, f"predictions.{predictor}")
    fresh = ~among(ids, predicted_ids(conn, predictor, ids))
    if not fresh.all():
        if not skip_existing:
            raise Conflict(
                f"pattern {int(ids[~fresh][0])} has a prediction of this predictor already; "
                "a prediction is stored once"
            )
        order, ids = order[fresh], ids[fresh]
        if len(ids) == 0:
            return 0
    n = len(ids)

    def sort(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[order]

    if n >= INLINE_ROWS:
        tables.of(conn).append(conn, table_spec(), table_rows(predictor, block, order))
        return n
    conn.execute(
        insert(t.prediction_blocks).values(
            predictor_id=predictor,
            n=n,
            pattern_ids=_bytes(ids, "<i8"),
            label_index=_bytes(sort(block.label_index), "<i4"),
            value=_bytes(sort(block.values), "<f8"),
            scores=_bytes(sort(block.scores), "<f8"),
            correct=_bytes(sort(block.correct), "u1"),
            loss=_bytes(sort(block.loss) if block.loss is not None else np.full(n, np.nan), "<f8"),
            created_at=timestamps.now_us(),
        )
    )
    return n


def read(conn: Connection, predictor: int, *, columns: Sequence[str] | None = None) -> Predictions:
    """All of a predictor's predictions, by ascending pattern id; ``columns``: only
    those of :data:`COLUMNS` (the others come back None, the loss NaN)."""
    classes = _classes(conn, predictor)
    k = len(classes) if classes else 1
    names = COLUMNS if columns is None else tuple(c for c in COLUMNS if c in columns)
    b = t.prediction_blocks.c
    blocks = conn.execute(
        select(b.pattern_ids, *(getattr(b, name) if name in names else null() for name in COLUMNS))
        .where(b.predictor_id == predictor)
        .order_by(b.id)
    )
    parts = [inline_part(row[0], row[1:], k) for row in blocks.all()]
    # Files by least id, each holding its rows by id: joined with no sort (see _joined).
    spans = tables.of(conn).partitions(conn, TABLE, "pattern_id").get(predictor, [])
    files = [path for path, _, _ in sorted(spans, key=lambda span: span[1])]
    bulk = tables.of(conn).read(files, columns=["pattern_id", *names]) if files else None
    if bulk is not None and bulk.num_rows:
        parts.append(_from_arrow(bulk, k))
    return _joined(classes, parts, k)


def inline_part(ids: bytes, blobs: Sequence[bytes | None], k: int) -> dict[str, np.ndarray | None]:
    """An inline block's arrays from its blobs (those of :data:`_ARRAYS`, in order;
    None where the block has none), ``k`` scores per prediction."""
    part: dict[str, np.ndarray | None] = {"pattern_ids": np.frombuffer(ids, dtype="<i8")}
    for blob, (name, (dtype, per)) in zip(blobs, _ARRAYS.items(), strict=True):
        if blob is None:
            part[name] = None
            continue
        values = np.frombuffer(blob, dtype=dtype)
        part[name] = values.reshape(-1, k) if per is None else values
    return part


def _classes(conn: Connection, predictor: int) -> tuple[str, ...] | None:
    p = t.predictors.c
    classes_json = conn.execute(select(p.classes).where(p.id == predictor)).scalar()
    return tuple(orjson.loads(classes_json)) if classes_json else None


#: The arrays of a block besides its pattern ids: (dtype, values per prediction or
#: None for one per class).
_ARRAYS: dict[str, tuple[str, int | None]] = {
    "label_index": ("<i4", 1),
    "value": ("<f8", 1),
    "scores": ("<f8", None),
    "correct": ("u1", 1),
    "loss": ("<f8", 1),
}
COLUMNS = tuple(_ARRAYS)

#: What :func:`read_some` may remember of blocks: (predictor, block id, n) -> the
#: first and last pattern id. A block is never rewritten, so its range never changes.
#: (Not its ``created_at``: stored after the arrays, reading it walks their pages.)
BlockRanges = dict[tuple[int, int, int], tuple[int, int]]


def read_some(
    conn: Connection,
    predictor: int,
    pattern_ids: Sequence[int] | np.ndarray,
    *,
    ranges: BlockRanges | None = None,
    columns: Sequence[str] = COLUMNS,
) -> Predictions:
    """The predictor's predictions on ``pattern_ids`` (those it has), by ascending id:
    what a page shows for its rows. Only the blocks whose id range holds one of them
    are looked at, each through a skeleton of every 4,096th id, and only the stretches
    around the wanted rows are read, so the cost follows the rows asked for, not the
    predictor's size. ``ranges`` keeps the blocks' id ranges from one call to the next;
    ``columns`` are those of :data:`COLUMNS` to read (the others come back None, the
    loss NaN)."""
    wanted = ascending_unique(pattern_ids)
    classes = _classes(conn, predictor)
    k = len(classes) if classes else 1
    parts: list[dict[str, np.ndarray | None]] = []
    if len(wanted):
        low, high = int(wanted[0]), int(wanted[-1])
        for block in _blocks_around(conn, predictor, low, high, {} if ranges is None else ranges):
            part = _read_stretch(conn, block, wanted, k, columns)
            if part is not None:
                parts.append(part)
        names = [c for c in COLUMNS if c in columns]
        bulk = _bulk(conn, predictor, ["pattern_id", *names], ids=wanted)
        if bulk is not None and bulk.num_rows:
            parts.append(_from_arrow(bulk, k))
    return _joined(classes, parts, k)


def _blocks_around(
    conn: Connection, predictor: int, low: int, high: int, ranges: BlockRanges
) -> list[tuple[int, int]]:
    """(block id, n) of the predictor's blocks whose ids reach into [low, high]: a
    block's ids are ascending, so its first and last 8 bytes are its range."""
    b = t.prediction_blocks.c
    blocks = conn.execute(select(b.id, b.n).where(b.predictor_id == predictor)).all()
    out = []
    for block_id, n in blocks:
        key = (predictor, int(block_id), int(n))
        if key not in ranges:
            ends = blob_ranges(conn, b.pattern_ids, block_id, [(0, 8), ((n - 1) * 8, 8)])
            if not ends:
                continue
            first, last = (int(np.frombuffer(end, dtype="<i8")[0]) for end in ends)
            ranges[key] = (first, last)
        first, last = ranges[key]
        if first <= high and last >= low:
            out.append((int(block_id), int(n)))
    return out


#: Rows between two ids of a block's skeleton: a block of 100,000 predictions is
#: looked up by reading 25 ids and then a stretch of 4,096, not all 100,000.
_STRIDE = 4096
#: Hits this close together are read as one stretch.
_GAP = 64


def _slices(
    conn: Connection, block_id: int, column: Any, spans: Sequence[tuple[int, int]], width: int
) -> list[bytes] | None:
    """The bytes of rows [start, start + count) of a block's ``column``, for each span
    (None: the block has no such column)."""
    ranges = [(start * width, count * width) for start, count in spans]
    return blob_ranges(conn, column, block_id, ranges)


def _find(
    conn: Connection, block: tuple[int, int], wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the block that hold ``wanted`` ids, and those ids, ascending."""
    block_id, n = block
    column = t.prediction_blocks.c.pattern_ids
    if n <= 4 * _STRIDE:
        windows = [(0, n)]
    else:
        skeleton = _slices(conn, block_id, column, [(i, 1) for i in range(0, n, _STRIDE)], 8)
        marks = np.frombuffer(b"".join(skeleton or []), dtype="<i8")
        near = np.unique(np.searchsorted(marks, wanted, side="right") - 1)
        windows = [(int(w) * _STRIDE, min(_STRIDE, n - int(w) * _STRIDE)) for w in near if w >= 0]
    rows: list[np.ndarray] = []
    ids_found: list[np.ndarray] = []
    read = _slices(conn, block_id, column, windows, 8) or []
    for (start, _), data in zip(windows, read, strict=True):
        ids = np.frombuffer(data, dtype="<i8")
        at = np.searchsorted(ids, wanted)
        inside = at < len(ids)
        match = ids[at[inside]] == wanted[inside]
        rows.append(start + at[inside][match])
        ids_found.append(wanted[inside][match])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    hit, first = np.unique(np.concatenate(rows), return_index=True)
    return hit, np.concatenate(ids_found)[first]


def _read_stretch(
    conn: Connection, block: tuple[int, int], wanted: np.ndarray, k: int, names: Sequence[str]
) -> dict[str, np.ndarray | None] | None:
    """The block's predictions on the ``wanted`` ids it holds; None when it holds none."""
    b = t.prediction_blocks.c
    block_id, _ = block
    hit, hit_ids = _find(conn, block, wanted)
    if len(hit) == 0:
        return None
    cuts = np.flatnonzero(np.diff(hit) > _GAP) + 1
    runs = np.split(hit, cuts)
    spans = [(int(r[0]), int(r[-1]) - int(r[0]) + 1) for r in runs]
    # Where each hit lands in the runs' bytes read back to back.
    before = np.cumsum([0] + [c for _, c in spans[:-1]])
    offsets = np.concatenate([r - r[0] + before[i] for i, r in enumerate(runs)])
    out: dict[str, np.ndarray | None] = {"pattern_ids": hit_ids}
    for name, (dtype, per) in _ARRAYS.items():
        if name not in names:
            out[name] = None
            continue
        size = np.dtype(dtype).itemsize * (per or k)
        data = _slices(conn, block_id, getattr(b, name), spans, size)
        if data is None:
            out[name] = None
            continue
        values = np.frombuffer(b"".join(data), dtype=dtype)
        out[name] = values.reshape(-1, k)[offsets] if name == "scores" else values[offsets]
    return out


def _joined(
    classes: tuple[str, ...] | None, parts: list[dict[str, np.ndarray | None]], k: int
) -> Predictions:
    if not parts:
        empty = np.zeros(0)
        return Predictions(classes, np.zeros(0, dtype=np.int64), None, None, None, None, empty)
    # Parts that follow one another by id (a predictor's blocks and files, usually) join
    # in that order, with no sort of a million ids and no move of each column by it.
    firsts = [p["pattern_ids"][:1].tolist() for p in parts]  # type: ignore[index]
    parts = [parts[i] for i in sorted(range(len(parts)), key=lambda i: firsts[i] or [0])]
    ids: np.ndarray = stacked([p["pattern_ids"] for p in parts])  # type: ignore[misc]
    order = None if is_ascending(ids) else np.argsort(ids, kind="stable")

    def column(name: str, dtype: str, width: int = 1) -> np.ndarray | None:
        if all(p[name] is None for p in parts):
            return None
        filled = []
        for p in parts:
            n = len(p["pattern_ids"])  # type: ignore[arg-type]
            value = p[name]
            if value is None:
                shape = (n, width) if width > 1 else (n,)
                value = np.full(shape, np.nan if dtype == "<f8" else 0, dtype=dtype)
            filled.append(value)
        joined = stacked(filled)
        return joined if order is None else joined[order]

    correct, loss = column("correct", "u1"), column("loss", "<f8")
    return Predictions(
        classes,
        ids if order is None else ids[order],
        column("label_index", "<i4"),
        column("value", "<f8"),
        column("scores", "<f8", k) if classes else None,
        None if correct is None else correct.astype(bool),
        np.full(len(ids), np.nan) if loss is None else loss,
    )
