"""Snapshot digests: SHA-256 over the content hashes of a snapshot's members and the
input keys it holds out, read from the stored patterns; and the same hashes worked out
again from the stored inputs, label, source and time, to verify a snapshot.

A columnar dataset's patterns are read from its table alone (its deactivations from
its pattern changes); an earlier release's dataset from its ``patterns`` rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select

from trenches.db import schema as t
from trenches.db.engine import id_in
from trenches.patterns import codec, columnar
from trenches.patterns.frames import Members, membership
from trenches.patterns.members import member_batches, member_rows
from trenches.tables.arrays import ascending_unique, fixed_bytes

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlalchemy.engine import Connection

    from trenches.patterns.datasets import Dataset

#: Rows checked at a time by ``Snapshot.verify``: bounds its memory on big snapshots.
RECHECK_ROWS = 50_000

#: The columns of a columnar dataset's table a pattern's content hash is worked out from.
_RECHECKED = ["pattern_id", "label", "source", "created_at", "split", "input_key"]


def digest(
    conn: Connection, dataset: Dataset, members: Members, held_out: np.ndarray
) -> tuple[str, int]:
    """The digest of the dataset's patterns ``members`` selects, holding out the
    patterns ``held_out``, and how many members there are."""
    hashes = member_hashes(conn, dataset, members)
    held_keys = input_keys(conn, dataset, held_out) if len(held_out) else []
    return digest_of(hashes, held_keys), len(hashes)


def digest_of(hashes: np.ndarray, held_out_keys: list[bytes]) -> str:
    """The digest of a snapshot: SHA-256 over its members' content hashes (``V16``)."""
    # Sorted, so the digest depends on the content, not on ids or insertion order.
    arr = np.sort(hashes)
    h = hashlib.sha256()
    h.update(arr.tobytes())
    if held_out_keys:
        # What is held out changes what a model trains on, so the digest covers it: the
        # inputs held out (every pattern with them is left out), sorted. A snapshot that
        # holds nothing out keeps the digest it had before held-out sets existed.
        h.update(b"\x00held-out\x00")
        h.update(b"".join(held_out_keys))
    return h.hexdigest()


def member_hashes(conn: Connection, dataset: Dataset, members: Members) -> np.ndarray:
    """The content hashes (``V16``) of the dataset's patterns ``members`` selects, in
    no set order."""
    if dataset.columnar:
        data = member_rows(conn, dataset.id, members, ["content_hash"])
        return np.zeros(0, dtype="V16") if data is None else fixed_bytes(data["content_hash"])
    p = t.patterns.c
    hashes = conn.execute(select(p.content_hash).where(*_where(dataset, members))).scalars()
    return np.array([bytes(h) for h in hashes], dtype="V16")


def input_keys(conn: Connection, dataset: Dataset, ids: np.ndarray) -> list[bytes]:
    """The distinct input keys of the dataset's patterns ``ids`` (a few: those a
    snapshot holds out), sorted."""
    if dataset.columnar:
        data = columnar.read(
            conn, dataset.id, columns=["pattern_id", "input_key"], ids=ascending_unique(ids)
        )
        found = [] if data is None else data.column("input_key").to_pylist()
        return sorted(set(found))
    keys = conn.execute(select(t.patterns.c.input_key).where(_of_ids(conn, ids))).scalars()
    return sorted({bytes(k) for k in keys})


def rechecked_members(conn: Connection, dataset: Dataset, members: Members) -> np.ndarray | None:
    """The content hashes (``V16``) of the patterns ``members`` selects, each worked
    out again from the stored inputs, label, source and time; ``None`` as soon as one
    of them, or a stored input key or split, is not what the stored content makes."""
    if dataset.schema is None:
        return np.zeros(0, dtype="V16")
    if dataset.columnar:
        columns = [*_RECHECKED, "content_hash", "inputs"]
        parts = member_batches(conn, dataset.id, members, columns, RECHECK_ROWS)
        return _rechecked_columnar(dataset, parts)
    return _rechecked_rows(conn, dataset, _where(dataset, members))


def rechecked_ids(conn: Connection, dataset: Dataset, ids: np.ndarray) -> np.ndarray | None:
    """:func:`rechecked_members` of the dataset's patterns ``ids``."""
    if dataset.schema is None:
        return np.zeros(0, dtype="V16")
    if dataset.columnar:
        columns = [*_RECHECKED, "content_hash", "inputs"]
        data = columnar.read(conn, dataset.id, columns=columns, ids=ascending_unique(ids))
        return _rechecked_columnar(dataset, [] if data is None else [data])
    where = [t.patterns.c.dataset_id == dataset.id, _of_ids(conn, ids)]
    return _rechecked_rows(conn, dataset, where)


def _where(dataset: Dataset, members: Members) -> list[Any]:
    return membership(
        dataset.id,
        as_of=members.as_of,
        include_inactive=members.include_inactive,
        max_id=members.max_id,
        sources=members.sources,
    )


def _of_ids(conn: Connection, ids: np.ndarray) -> Any:
    return id_in(conn.dialect.name, t.patterns.c.id, [int(i) for i in ids])


def _rechecked_columnar(dataset: Dataset, parts: Iterable[pa.Table]) -> np.ndarray | None:
    """:func:`rechecked_members` of a columnar dataset: each row of its table (a part
    at a time) checked against itself, its content hash, input key and split worked
    out again from its inputs, label, source and time."""
    import pyarrow as pa

    schema = dataset.schema
    assert schema is not None
    found: list[bytes] = []
    for part in parts:
        n = part.num_rows
        if not n:
            continue
        try:
            stored = fixed_bytes(part.column("content_hash")).tobytes()
            keys = fixed_bytes(part.column("input_key")).tobytes()
            created_at = part.column("created_at").to_numpy()
            split = part.column("split").to_numpy()
            cols = columnar.coerced(schema, part.column("inputs"))
            encoded = codec.encode(schema, cols, n, dataset.salt)
            again = codec.content_hashes(
                encoded.num_words,
                encoded.obj,
                part.column("label").to_numpy(zero_copy_only=False),
                part.column("source").to_numpy(zero_copy_only=False),
                created_at,
            )
        except (ValueError, TypeError, pa.ArrowException):
            return None  # a row no import could have written
        if b"".join(again) != stored or b"".join(encoded.keys) != keys:
            return None
        if not np.array_equal(codec.splits_of(encoded.key_head, dataset.split_ratios), split):
            return None
        found.append(stored)
    return np.frombuffer(b"".join(found), dtype="V16")


def _rechecked_rows(conn: Connection, dataset: Dataset, where: list[Any]) -> np.ndarray | None:
    """:func:`rechecked_members` of an earlier release's dataset, whose inputs are
    packed in its ``patterns`` rows (those ``where`` selects)."""
    p = t.patterns.c
    schema = dataset.schema
    assert schema is not None
    query = select(
        p.num, p.obj, p.label, p.source, p.created_at, p.content_hash, p.input_key, p.split
    ).where(*where)
    cursor = conn.execute(query).cursor
    found: list[bytes] = []
    while rows := cursor.fetchmany(RECHECK_ROWS):
        num, obj, label, source, created_at, content, key, split = zip(*rows, strict=True)
        stored = b"".join(map(bytes, content))
        try:
            again = b"".join(
                codec.content_hashes(
                    num if schema.numeric else None,
                    obj if schema.strings else None,
                    label,
                    source,
                    np.array(created_at, dtype=np.int64),
                )
            )
            if again != stored:
                return None
            encoded = codec.recode(schema, num, obj, dataset.salt)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            return None  # inputs no import could have stored
        if b"".join(encoded.keys) != b"".join(map(bytes, key)):
            return None
        if not np.array_equal(codec.splits_of(encoded.key_head, dataset.split_ratios), split):
            return None
        found.append(stored)
    return np.frombuffer(b"".join(found), dtype="V16")
