"""Request bodies of the three protocols, parsed into the rows a model takes, and the
answers each protocol expects.

- Open Inference Protocol (KServe V2): ``{"inputs": [{"name", "shape", "datatype",
  "data"}, ...]}``, one 1-D tensor per column, or one 2-D tensor of every column in
  the signature's order;
- MLflow scoring: ``dataframe_split``, ``dataframe_records``, ``instances``,
  ``inputs``;
- ``POST /predict``: a JSON list of records (or one record).

A malformed body, a missing or extra column, or a wrong type is a ``PayloadError``
(a 4xx answer that names the field); nothing of it reaches the model. Types are strict
(JSON's ``true`` is not a number, a list is not a value) and checked before anything
descends into a value: a container where a value belongs is refused by its place, never
walked, printed or stored, however deep it is nested (orjson refuses nesting past
1,024 levels while parsing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = ("number", "integer", "boolean")
#: Integers the server takes: what a 64-bit signed integer holds.
INT64 = (-(2**63), 2**63 - 1)
#: The most values a V2 tensor's shape may declare in one dimension.
MAX_SIZE = 2**31 - 1
_V2_NUMERIC = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
}


class PayloadError(Exception):
    """A request the server will not pass to the model: status, message, field."""

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


def shown(value: Any) -> str:
    """A JSON value as an error message shows it: short, and containers by their kind
    only (one nested 1,000 deep has no printable repr)."""
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_number(value: Any) -> bool:
    """A JSON number (never ``true``/``false``), finite."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def is_int(value: Any, low: int = INT64[0], high: int = INT64[1]) -> bool:
    """A JSON integer (never ``true``/``false``) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def loads(body: bytes) -> Any:
    if not body:
        raise PayloadError(400, "the request has no body; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PayloadError(400, f"the body is not valid JSON: {e}") from None


# --- columns and rows -----------------------------------------------------------------


def _check_columns(schema: Schema, given: list[str], where: str) -> None:
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
    _check_columns(schema, columns, where)
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
            _check_columns(schema, list(r), f"{where}, record {i}")
        rows.append([r[c] for c in columns])
    return from_table(schema, columns, rows, where)


def from_columns(schema: Schema, columns: Any, where: str) -> Rows:
    """Rows given as {column: [values]}."""
    if not isinstance(columns, dict):
        raise PayloadError(422, f"{where}: expected an object of column: [values]")
    names = list(columns)
    _check_columns(schema, names, where)
    lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
    if -1 in lengths or len(lengths) != 1:
        raise PayloadError(422, f"{where}: every column must be a list, all of one length")
    n = lengths.pop()
    rows = [[columns[c][i] for c in names] for i in range(n)]
    return from_table(schema, names, rows, where)


# --- the protocols --------------------------------------------------------------------


def mlflow(schema: Schema, body: Any) -> Rows:
    """The MLflow scoring protocol's four input forms."""
    if not isinstance(body, dict):
        raise PayloadError(
            400,
            "expected an object with one of dataframe_split, dataframe_records, "
            "instances or inputs",
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise PayloadError(
            400,
            "give exactly one of dataframe_split, dataframe_records, instances or inputs"
            + (f" (got {', '.join(keys)})" if keys else ""),
        )
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise PayloadError(422, "dataframe_split must be an object with columns and data")
        return from_table(
            schema, value.get("columns", list(schema.columns)), value["data"], "dataframe_split"
        )
    if key == "dataframe_records":
        return from_records(schema, value, key)
    # instances / inputs: records, rows in signature order, or {column: [values]}.
    if isinstance(value, dict):
        return from_columns(schema, value, key)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return from_table(schema, list(schema.columns), value, key)
    return from_records(schema, value, key)


def predict(schema: Schema, body: Any) -> Rows:
    """``POST /predict``: a list of records, or one record."""
    return from_records(schema, body, "body")


def v2(schema: Schema, body: Any) -> Rows:
    """An Open Inference Protocol (V2) inference request."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise PayloadError(400, "expected an object with an inputs list of tensors")
    tensors = body["inputs"]
    client_id = body.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise PayloadError(422, "id must be a string", field="id")
    for i, t in enumerate(tensors):
        _check_tensor(t, i)
    names = [t["name"] for t in tensors]
    if len(tensors) == 1 and names[0] not in schema.types and len(tensors[0]["shape"]) == 2:
        # One tensor of every column, rows x columns, in the signature's order.
        t = tensors[0]
        n, k = t["shape"]
        if k != len(schema.columns):
            raise PayloadError(
                422,
                f"{t['name']} has {k} columns; the model takes {len(schema.columns)}: "
                f"{', '.join(schema.columns)}",
                field=t["name"],
            )
        flat = _flat(t, n * k)
        rows = [flat[r * k : (r + 1) * k] for r in range(n)]
        _check_datatype(schema, t, list(schema.columns))
        out = from_table(schema, list(schema.columns), rows, t["name"])
        out.client_id = client_id
        return out
    _check_columns(schema, names, "inputs")
    n = None
    columns: dict[str, list[Any]] = {}
    for t in tensors:
        shape = t["shape"]
        size = shape[0] if shape else 1
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise PayloadError(
                422, f"{t['name']} must have shape [rows] or [rows, 1]", field=t["name"]
            )
        if n is not None and size != n:
            raise PayloadError(
                422, f"{t['name']} has {size} rows and another input {n}", field=t["name"]
            )
        n = size
        _check_datatype(schema, t, [t["name"]])
        columns[t["name"]] = _flat(t, size)
    out = from_columns(schema, columns, "inputs")
    out.client_id = client_id
    return out


def _check_tensor(t: Any, i: int) -> None:
    """The types of a V2 tensor's name, shape and datatype: before any of them is used."""
    where = f"inputs[{i}]"
    if not isinstance(t, dict) or not {"name", "shape", "datatype", "data"} <= t.keys():
        raise PayloadError(422, f"{where} must have name, shape, datatype and data", field=where)
    if not isinstance(t["name"], str) or not t["name"]:
        raise PayloadError(
            422, f"{where}.name must be a string, not {shown(t['name'])}", field=f"{where}.name"
        )
    if not isinstance(t["datatype"], str):
        raise PayloadError(
            422,
            f"{where}.datatype must be a string such as FP64 or BYTES, not {shown(t['datatype'])}",
            field=f"{where}.datatype",
        )
    shape = t["shape"]
    if not isinstance(shape, list):
        raise PayloadError(
            422, f"{where}.shape must be a list of sizes, not {shown(shape)}", f"{where}.shape"
        )
    for j, size in enumerate(shape):
        if not is_int(size, 0, MAX_SIZE):
            raise PayloadError(
                422,
                f"{where}.shape[{j}] is {shown(size)}; a size is a whole number from 0 to "
                f"{MAX_SIZE}",
                f"{where}.shape",
            )


def _flat(tensor: dict[str, Any], size: int) -> list[Any]:
    data = tensor["data"]
    if not isinstance(data, list):
        raise PayloadError(422, f"{tensor['name']}.data must be a list", field=tensor["name"])
    if data and all(isinstance(row, list) for row in data):  # nested as its shape says
        data = [v for row in data for v in row]
    if len(data) != size:
        raise PayloadError(
            422,
            f"{tensor['name']} has {len(data)} values; its shape says {size}",
            field=tensor["name"],
        )
    return data


def _check_datatype(schema: Schema, tensor: dict[str, Any], columns: list[str]) -> None:
    datatype = tensor["datatype"]
    numeric = all(schema.types[c] in NUMERIC for c in columns)
    if datatype == "BYTES" and not numeric:
        return
    if datatype in _V2_NUMERIC and numeric:
        return
    want = "a numeric datatype (FP64, FP32, INT64, BOOL, ...)" if numeric else "BYTES"
    raise PayloadError(
        422,
        f"{tensor['name']} has datatype {shown(datatype)}; it needs {want}",
        field=tensor["name"],
    )


# --- answers --------------------------------------------------------------------------


def v2_datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


# --- the OpenAPI document's request bodies ----------------------------------------------

_JSON_TYPES = {"number": "number", "integer": "integer", "boolean": "boolean"}


def _value_schema(kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": [_JSON_TYPES.get(kind, "string"), "null"]}
    if kind == "integer":
        out.update(minimum=INT64[0], maximum=2**63 - 1024)  # what float64 holds below 2^63
    return out


def openapi_bodies(schema: Schema, classes: list[Any] | None) -> dict[str, dict[str, Any]]:
    """The request body of each POST path, as JSON Schema for the OpenAPI document: the
    columns of the version served (``classes``: its labels; None for a regressor)."""
    columns = list(schema.columns)
    value = {c: _value_schema(schema.types[c]) for c in columns}
    record = {
        "type": "object",
        "properties": value,
        "required": columns,
        "additionalProperties": False,
    }
    records = {"type": "array", "items": record, "minItems": 1}
    rows = {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "array",
            "prefixItems": list(value.values()),
            "minItems": len(columns),
            "maxItems": len(columns),
        },
    }
    by_column = {
        "type": "object",
        "properties": {c: {"type": "array", "items": v} for c, v in value.items()},
        "required": columns,
        "additionalProperties": False,
    }
    tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": columns},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2},
            "datatype": {"type": "string", "enum": ["FP64", "FP32", "INT64", "BOOL", "BYTES"]},
            "data": {"type": "array"},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    split = {
        "type": "object",
        "properties": {"columns": {"type": "array", "items": {"type": "string"}}, "data": rows},
        "required": ["data"],
    }
    mlflow = {
        "oneOf": [
            _one("dataframe_split", split),
            _one("dataframe_records", records),
            _one("instances", {"oneOf": [rows, records]}),
            _one("inputs", by_column),
        ]
    }
    v2 = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor, "minItems": 1},
        },
        "required": ["inputs"],
    }
    label: dict[str, Any] = {"enum": classes} if classes is not None else {"type": "number"}
    feedback = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "row": {"type": "integer", "minimum": 0, "maximum": MAX_SIZE},
            "label": label,
            "rating": {"type": "number"},
            "comment": {"type": "string"},
        },
        "required": ["request_id"],
        "additionalProperties": False,
    }
    return {
        "/predict": _body({"oneOf": [record, records]}),
        "/invocations": _body(mlflow),
        "/v2/models/{name}/infer": _body(v2),
        "/v2/models/{name}/versions/{version}/infer": _body(v2),
        "/feedback": _body(feedback),
    }


def _one(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: value},
        "required": [key],
        "additionalProperties": False,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}
