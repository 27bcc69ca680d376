"""A request's payload as the server reads it, whatever the protocol: the error that
refuses one (:class:`PayloadError`, a 4xx that names the field), the schema it is read
against, and rows given as a table, as records or by column, checked value by value
into the rows a model takes.

Nothing of a refused payload reaches the model. Types are strict (JSON's ``true`` is
not a number, a list is not a value) and checked before anything descends into a
value: a container where a value belongs is refused by its place, never walked,
printed or stored, however deep it is nested (orjson refuses nesting past 1,024 levels
while parsing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import orjson

from trenches.errors import TrenchesError

# How a JSON value shows in a message, and what a number is, are the request log's too.
from trenches.requests.labels import is_number as is_number
from trenches.requests.labels import shown as shown

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    import pandas as pd

NUMERIC = ("number", "integer", "boolean")
#: Integers the server takes: what a 64-bit signed integer holds.
INT64 = (-(2**63), 2**63 - 1)
#: The most values a V2 tensor's shape may declare in one dimension.
MAX_SIZE = 2**31 - 1


class PayloadError(TrenchesError):
    """A request the server will not pass to the model: status, message, field."""

    #: Headers the answer carries besides its JSON body.
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def body(self) -> bytes:
        out: dict[str, Any] = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        return orjson.dumps(out)


@dataclass(frozen=True)
class Schema:
    """The inputs a model takes, in order, with their types."""

    columns: tuple[str, ...]
    types: dict[str, str]

    @property
    def numeric(self) -> bool:
        return all(self.types[c] in NUMERIC for c in self.columns)


@dataclass
class Rows:
    """A request's rows, ready for the model: a float matrix in the signature's column
    order (numeric models) or a DataFrame."""

    data: np.ndarray | pd.DataFrame
    n: int
    client_id: str | None = None

    def records(self, schema: Schema) -> dict[str, Any]:
        """The inputs as logged: {"columns": [...], "data": [[...], ...]}. A float
        matrix goes to orjson as it is (NaN is written as null): three times quicker
        than lists for a 1,000-row request."""
        if isinstance(self.data, np.ndarray):
            return {"columns": list(schema.columns), "data": self.data}
        data = [
            [None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in self.data[list(schema.columns)].itertuples(index=False, name=None)
        ]
        return {"columns": list(schema.columns), "data": data}


def is_int(value: Any, low: int = INT64[0], high: int = INT64[1]) -> bool:
    """A JSON integer (never ``true``/``false``) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def loads(body: bytes) -> Any:
    """A request's body as JSON, or a 400."""
    if not body:
        raise PayloadError(400, "the request has no body; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(400, f"the body is not valid JSON: {e}") from None


# --- columns and rows -----------------------------------------------------------------


def check_columns(schema: Schema, given: list[str], where: str) -> None:
    """``given`` names every column of ``schema`` once, and nothing else."""
    seen = set()
    for i, c in enumerate(given):
        if not isinstance(c, str):
            raise PayloadError(
                422, f"{where}: column names must be strings, not {shown(c)}", f"columns[{i}]"
            )
        if c in seen:
            raise PayloadError(422, f"{where}: column {shown(c)} is given twice", field=c)
        seen.add(c)
        if c not in schema.types:
            raise PayloadError(
                422,
                f"{where}: unknown column {shown(c)}; the model takes {', '.join(schema.columns)}",
                field=c,
            )
    for c in schema.columns:
        if c not in seen:
            raise PayloadError(422, f"{where}: the column {c!r} is missing", field=c)


_KINDS = {
    "number": "a number",
    "integer": "an integer (a whole number from -2^63 to 2^63)",
    "boolean": "a boolean (true, false, 0 or 1)",
}


def _bad_value(schema: Schema, column: str, row: int, value: Any) -> PayloadError:
    kind = schema.types[column]
    return PayloadError(
        422,
        f"row {row}, column {column!r}: {shown(value)} is not {_KINDS.get(kind, 'a ' + kind)}"
        + (" (null is allowed for a missing value)" if kind in NUMERIC else ""),
        field=column,
    )


def _fits(kind: str, v: Any) -> bool:
    """``v`` (not null) is a value of a column of type ``kind``."""
    if kind == "boolean":
        return isinstance(v, bool) or (is_number(v) and v in (0, 1))
    if kind == "integer":
        # As the float matrix will hold it, and the int64 the model is given.
        return is_number(v) and float(v).is_integer() and -(2.0**63) <= float(v) < 2.0**63
    return is_number(v)


def _numeric_column(schema: Schema, column: str, values: list[Any]) -> np.ndarray:
    """One column's values as float64 (null -> NaN); strings, lists, objects, and
    ``true``/``false`` outside a boolean column refused."""
    kind = schema.types[column]
    for row, v in enumerate(values):
        if v is not None and not _fits(kind, v):
            raise _bad_value(schema, column, row, v)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _check_rows(data: Any, k: int, where: str) -> None:
    """``data`` is a non-empty list of rows of ``k`` values each."""
    if not isinstance(data, list) or not data:
        raise PayloadError(422, f"{where}: data must be a non-empty list of rows")
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != k:
            raise PayloadError(
                422, f"{where}: row {i} must be a list of {k} values, one per column"
            )


#: The Python types of values NumPy may turn into a float matrix at once: with any
#: other (``true`` among numbers would become 1.0, a list a third dimension), every
#: value is looked at.
_PLAIN = {float, int}


def _matrix(schema: Schema, data: Any, columns: list[str], where: str) -> np.ndarray:
    """Rows in ``columns`` order as a float matrix in the schema's order; a fast path
    for well-typed numbers, and a careful one that names the first bad value."""
    _check_rows(data, len(columns), where)
    plain = set(map(type, itertools.chain.from_iterable(data))) <= _PLAIN
    arr = np.array(data) if plain else None
    if arr is None or arr.dtype.kind not in "fiu":
        arr = np.column_stack(
            [_numeric_column(schema, c, [r[j] for r in data]) for j, c in enumerate(columns)]
        )
    else:
        arr = arr.astype(np.float64)
        _check_integers(schema, columns, arr, data)
    if columns != list(schema.columns):
        order = [columns.index(c) for c in schema.columns]
        arr = arr[:, order]
    return arr


def _check_integers(schema: Schema, columns: list[str], arr: np.ndarray, data: list[Any]) -> None:
    for j, c in enumerate(columns):
        kind = schema.types[c]
        col = arr[:, j]
        if kind == "integer":
            bad = (col != np.round(col)) | (col < -(2.0**63)) | (col >= 2.0**63)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise _bad_value(schema, c, row, data[row][j])
        if kind == "boolean" and not np.all((col == 0) | (col == 1)):
            row = int(np.flatnonzero((col != 0) & (col != 1))[0])
            raise _bad_value(schema, c, row, data[row][j])


def _frame(schema: Schema, data: list[list[Any]], columns: list[str], where: str) -> pd.DataFrame:
    _check_rows(data, len(columns), where)
    import pandas as pd

    out: dict[str, Any] = {}
    for j, c in enumerate(columns):
        values = [r[j] for r in data]
        if schema.types[c] in NUMERIC:
            col = _numeric_column(schema, c, values)
            out[c] = col
        else:
            for row, v in enumerate(values):
                if v is not None and not isinstance(v, str):
                    raise _bad_value(schema, c, row, v)
            out[c] = pd.Series(values, dtype=object)
    frame = pd.DataFrame(out)[list(schema.columns)]
    for c in schema.columns:
        kind = schema.types[c]
        if kind == "integer" and not frame[c].isna().any():  # whole numbers: checked above
            frame[c] = frame[c].astype(np.int64)
        elif kind == "boolean" and not frame[c].isna().any():
            frame[c] = frame[c].astype(bool)
    return frame


def from_table(schema: Schema, columns: Any, data: Any, where: str) -> Rows:
    """Rows given as column names and a list of rows."""
    if not isinstance(columns, list):
        raise PayloadError(422, f"{where}: columns must be a list of names")
    check_columns(schema, columns, where)
    if schema.numeric:
        arr = _matrix(schema, data, columns, where)
        return Rows(arr, len(arr))
    frame = _frame(schema, data, columns, where)
    return Rows(frame, len(frame))


def from_records(schema: Schema, records: Any, where: str) -> Rows:
    """Rows given as a list of {column: value} objects."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list) or not records:
        raise PayloadError(422, f"{where}: expected a non-empty list of records")
    columns = list(schema.columns)
    wanted = set(columns)
    rows = []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise PayloadError(422, f"{where}: record {i} must be an object of column: value")
        if r.keys() != wanted:
            check_columns(schema, list(r), f"{where}, record {i}")
        rows.append([r[c] for c in columns])
    return from_table(schema, columns, rows, where)


def from_columns(schema: Schema, columns: Any, where: str) -> Rows:
    """Rows given as {column: [values]}."""
    if not isinstance(columns, dict):
        raise PayloadError(422, f"{where}: expected an object of column: [values]")
    names = list(columns)
    check_columns(schema, names, where)
    lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
    if -1 in lengths or len(lengths) != 1:
        raise PayloadError(422, f"{where}: every column must be a list, all of one length")
    n = lengths.pop()
    rows = [[columns[c][i] for c in names] for i in range(n)]
    return from_table(schema, names, rows, where)


async def read_body(
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    length: str | bytes | None,
    limit: int,
) -> bytes:
    """A request's body from its ASGI ``receive``, within ``limit`` bytes: a 413 past it
    (at once when its declared ``length``, the Content-Length, says so)."""
    if length is not None and length.isascii() and length.isdigit() and int(length) > limit:
        raise PayloadError(413, f"the body is larger than the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise PayloadError(400, "the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadError(413, f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
