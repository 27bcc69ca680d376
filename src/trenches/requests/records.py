"""The records of the request log, each shape declared once: a served request and a
feedback on one of its rows.

A :class:`Shape` lists a record's fields, each with its kind (text, a whole number, a
number, or a JSON value). From that one declaration come the three forms a record
takes, and the ways between them:

- the **record** the server hands to the log (:class:`LoggedRequest`,
  :class:`LoggedFeedback`);
- the **row** the database stores (a tuple in the order of the fields; JSON values as
  text), in ``served_requests`` and ``feedback``;
- the **line** a spool or rejected file holds: ``{"kind": "request", "request_id": ...,
  "inputs": {"columns": [...], "data": [[...]]}, ...}``, JSON values inline.

The server's writer (:mod:`trenches.serving.requestlog`), its spool files and the
readers of ``store.requests`` all go through these functions, so a field added to a
shape reaches every one of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson
from sqlalchemy import Connection, Table, select

from trenches.db import schema as t
from trenches.db.engine import bulk_insert, insert_ignore_many

log = logging.getLogger("trenches.serve.requests")

Row = tuple[Any, ...]
Kind = Literal["text", "int", "float", "json"]

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # What orjson cannot write by itself: numpy views and scalars, anything else as text.
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def dumps(value: Any) -> str:
    """``value`` as JSON text, numpy arrays and scalars as plain JSON."""
    return orjson.dumps(value, default=_default, option=_JSON).decode()


@dataclass(frozen=True, slots=True)
class JsonText:
    """The value of a JSON field made into text already: stored as it is."""

    text: str


def _json(value: Any) -> str:
    return value.text if isinstance(value, JsonText) else dumps(value)


def _text(value: Any) -> str:
    if value is None:
        raise TypeError("missing")
    return value if isinstance(value, str) else str(value)


_STORED: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "int": int,
    "float": float,
    "json": _json,
}


@dataclass(frozen=True)
class Field:
    """One field of a record: its name (the column's and the line's), its kind, and
    whether it may be missing (None, NULL)."""

    name: str
    kind: Kind
    optional: bool = False
    #: Left out of a line while null: a field added after lines were first written, so
    #: a record without it is the same bytes as before (and an older line reads back).
    sparse: bool = False

    def stored(self, value: Any) -> Any:
        """``value`` as the column holds it; TypeError or ValueError if it is not of
        this field's kind."""
        if value is None and self.optional:
            return None
        try:
            return _STORED[self.kind](value)
        except (TypeError, ValueError) as e:
            error = ValueError if isinstance(e, ValueError) else TypeError
            raise error(f"{self.name} {value!r:.80}: {e}") from None


@dataclass(frozen=True)
class Shape:
    """A record shape: its kind (the ``kind`` of its lines), its table, its fields
    in the order of its row, and the fields that make two records the same record
    (a spool loaded twice stores nothing twice)."""

    kind: str
    table: Table
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(f.name for f in self.fields))

    def row(self, values: Sequence[Any]) -> Row:
        """The stored row of a record's field values (in field order)."""
        return tuple(f.stored(v) for f, v in zip(self.fields, values, strict=True))

    def values(self, row: Sequence[Any]) -> dict[str, Any]:
        """A stored row's field values by name, JSON fields read back."""
        out = {}
        for f, value in zip(self.fields, row, strict=True):
            is_text = f.kind == "json" and isinstance(value, str)
            out[f.name] = orjson.loads(value) if is_text else value
        return out

    def line(self, row: Sequence[Any]) -> bytes:
        """A stored row as a spool line. TypeError for a value JSON lines cannot carry
        back exactly (an integer beyond 64 bits)."""
        record: dict[str, Any] = {"kind": self.kind}
        for f, value in zip(self.fields, row, strict=True):
            if value is None and f.sparse:
                continue
            as_json = f.kind == "json" and value is not None
            record[f.name] = orjson.Fragment(value) if as_json else value
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    def from_line(self, record: dict[str, Any]) -> Row:
        """The stored row of a spool line's object; KeyError, TypeError or ValueError
        if a field is missing or of the wrong kind."""
        # An optional field a line lacks is missing (a line of an older version).
        return self.row(
            [record[f.name] if not f.optional else record.get(f.name) for f in self.fields]
        )


REQUEST = Shape(
    "request",
    t.served_requests,
    (
        Field("request_id", "text"),
        Field("version_id", "int"),
        Field("endpoint", "text"),  # v2 | invocations | predict
        Field("n", "int"),  # input rows
        Field("inputs", "json"),  # {"columns": [...], "data": [[...], ...]}
        Field("outputs", "json"),  # {"labels": [...], "scores": [[...]], "values": [...]}
        Field("latency_us", "int"),
        Field("received_at", "int"),  # µs since the epoch
        Field("policy_id", "int", optional=True, sparse=True),  # the traffic policy followed
        Field("arm", "text", optional=True, sparse=True),  # the policy's arm that answered
        Field("shadow_of", "text", optional=True, sparse=True),  # in this request's shadow
    ),
    key=("request_id",),
)
FEEDBACK = Shape(
    "feedback",
    t.feedback,
    (
        Field("request_id", "text"),
        Field("row", "int"),
        Field("label", "json", optional=True),
        Field("rating", "float", optional=True),
        Field("comment", "text", optional=True),
        Field("created_at", "int"),
        Field("correct", "int", optional=True, sparse=True),  # 1: the label was the answer
    ),
    # Feedback has no natural key: (request, row, time) is taken as one.
    key=("request_id", "row", "created_at"),
)
SHAPES = {s.kind: s for s in (REQUEST, FEEDBACK)}


# --- records: what the server hands to the log -------------------------------------------


@dataclass
class LoggedRequest:
    """One served request, as the server hands it to the log: the fields of
    :data:`REQUEST`, in its order."""

    shape: ClassVar[Shape] = REQUEST

    request_id: str
    version_id: int
    endpoint: str  # "v2" | "invocations" | "predict"
    n: int
    #: Called by the writer, not on the request path: {"columns": [...], "data": [[...]]}.
    inputs: Callable[[], dict[str, Any]]
    #: {"labels": list | None, "scores": np.ndarray | None, "values": list | None}
    outputs: dict[str, Any]
    latency_us: int
    received_at: int  # µs since the epoch
    policy_id: int | None = None
    arm: str | None = None
    shadow_of: str | None = None

    def to_row(self) -> Row:
        """The stored row. Inputs or outputs that cannot be written as JSON are logged
        as an error in their place: the request is kept, even if its inputs cannot be."""
        try:
            inputs = dumps(self.inputs())
        except Exception as e:
            log.error("request %s: its inputs could not be logged: %r", self.request_id, e)
            inputs = dumps({"columns": [], "data": [], "error": f"{type(e).__name__}: {e}"})
        try:
            outputs = dumps(self.outputs)
        except Exception as e:
            log.error("request %s: its outputs could not be logged: %r", self.request_id, e)
            outputs = dumps({"labels": None, "scores": None, "values": None, "error": str(e)})
        made = {**self.__dict__, "inputs": JsonText(inputs), "outputs": JsonText(outputs)}
        return REQUEST.row([made[name] for name in REQUEST.columns])

    def fields(self) -> dict[str, Any]:
        """The field values, the inputs made (or the error making them raised)."""
        out = dict(self.__dict__)
        try:
            out["inputs"] = self.inputs()
        except Exception as e:
            out["inputs"] = f"{type(e).__name__}: {e}"
        return out

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LoggedRequest:
        """The record of a stored row."""
        values = REQUEST.values(row)
        inputs = values.pop("inputs")
        return cls(**values, inputs=lambda: inputs)


@dataclass
class LoggedFeedback:
    """A true label or a rating for one row of a served request: the fields of
    :data:`FEEDBACK`, in its order."""

    shape: ClassVar[Shape] = FEEDBACK

    request_id: str
    row: int
    label: Any  # a JSON value or None
    rating: float | None
    comment: str | None
    created_at: int
    correct: int | None = None

    def to_row(self) -> Row:
        """The stored row."""
        return FEEDBACK.row([getattr(self, name) for name in FEEDBACK.columns])

    def fields(self) -> dict[str, Any]:
        """The field values."""
        return dict(self.__dict__)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LoggedFeedback:
        """The record of a stored row."""
        return cls(**FEEDBACK.values(row))


Logged = LoggedRequest | LoggedFeedback


# --- lines: spool and rejected files -----------------------------------------------------


def encode(kind: str, row: Sequence[Any]) -> bytes:
    """One stored row of shape ``kind`` as a spool line. Raises TypeError for a value
    JSON lines cannot carry back exactly (an integer beyond 64 bits)."""
    return SHAPES[kind].line(row)


def decode(line: bytes) -> tuple[str, Row]:
    """A spool line back as (kind, stored row); raises ValueError, KeyError or
    TypeError if it is malformed."""
    record = orjson.loads(line)
    kind = record["kind"]
    shape = SHAPES.get(kind)
    if shape is None:
        raise ValueError(f"unknown kind {kind!r}")
    return kind, shape.from_line(record)


def encode_anything(kind: str, fields: dict[str, Any]) -> bytes:
    """A record as a line of a rejected file, whatever its values: what orjson cannot
    write (an integer beyond 64 bits, an object) the standard library writes, or as
    text. ``fields`` hold values, JSON fields included (not JSON text)."""
    record = {"kind": kind, **fields}
    try:
        return orjson.dumps(record, default=str)
    except TypeError:
        return json.dumps(record, default=str, separators=(",", ":")).encode()


def encode_anyhow(kind: str, row: Sequence[Any]) -> bytes:
    """One stored row as a line of a rejected file: as a spool line if it can be one,
    else with :func:`encode_anything`."""
    with contextlib.suppress(TypeError):  # not a spool line: written field by field
        return encode(kind, row)
    fields = {}
    for f, value in zip(SHAPES[kind].fields, row, strict=False):
        if f.kind == "json" and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = orjson.loads(value)
        fields[f.name] = value
    return encode_anything(kind, fields)


# --- the database ------------------------------------------------------------------------


def insert(conn: Connection, requests: Sequence[Row], feedback: Sequence[Row]) -> None:
    """Store rows of both shapes in ``conn``'s transaction; a record stored before (by
    its shape's key) is not stored again."""
    insert_ignore_many(conn, REQUEST.table, REQUEST.columns, requests, key=REQUEST.key)
    if not feedback:
        return
    # No unique index holds feedback's key (feedback added by hand may repeat one), so
    # the stored keys are looked up.
    f = FEEDBACK.table.c
    at = [FEEDBACK.columns.index(k) for k in FEEDBACK.key]
    ids = sorted({r[0] for r in feedback})
    found = conn.execute(select(*(f[k] for k in FEEDBACK.key)).where(f.request_id.in_(ids)))
    seen = {tuple(r) for r in found}
    fresh = []
    for r in feedback:
        key = tuple(r[k] for k in at)
        if key not in seen:
            seen.add(key)
            fresh.append(r)
    bulk_insert(conn, FEEDBACK.table, FEEDBACK.columns, fresh)


def json_column(texts: Iterable[str | None]) -> list[Any]:
    """JSON texts of a column decoded at once (one parse of the whole column, not one a
    row); None (NULL) stays None."""
    given = [x if x is not None else "null" for x in texts]
    if not given:
        return []
    from trenches.patterns.frames import no_gc

    with no_gc():
        values: list[Any] = orjson.loads("[" + ",".join(given) + "]")
        if len(values) != len(given):  # a text that was not one JSON value
            values = [orjson.loads(x) for x in given]
    return values
