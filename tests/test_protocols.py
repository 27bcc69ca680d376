"""The request bodies of the three protocols, parsed under hypothesis: whatever the JSON,
a body becomes rows or a 4xx that names the field, never another exception; and a value
is taken only when it is of its column's type (``true`` is not a number, a list is not
a value, integers fit in 64 bits)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trenches.serving import protocols
from trenches.serving.payloads import PayloadError, Rows, Schema

NUMERIC = Schema(
    ("radius", "count", "flag"), {"radius": "number", "count": "integer", "flag": "boolean"}
)
MIXED = Schema(
    ("radius", "count", "name"), {"radius": "number", "count": "integer", "name": "string"}
)
SCHEMAS = {"numeric": NUMERIC, "mixed": MIXED}

#: What orjson hands the server: integers from -2^63 to 2^64 - 1, finite floats.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 1.5, 1e300])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


def _through_json(body: Any) -> Any:
    """``body`` as the server receives it: written and parsed by orjson."""
    return orjson.loads(orjson.dumps(body))


def _records(schema: Schema, rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(schema.columns, r, strict=True)) for r in rows]


def _by_column(schema: Schema, rows: list[list[Any]]) -> dict[str, list[Any]]:
    return {c: [r[j] for r in rows] for j, c in enumerate(schema.columns)}


def _tensors(schema: Schema, rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": c,
            "shape": [len(rows)],
            "datatype": "BYTES" if schema.types[c] == "string" else "FP64",
            "data": values,
        }
        for c, values in _by_column(schema, rows).items()
    ]


#: Each protocol form: (the parser, how rows become its body).
FORMS: dict[str, tuple[Callable[[Schema, Any], Rows], Callable[[Schema, list[list[Any]]], Any]]] = {
    "predict": (protocols.predict, _records),
    "predict (one record)": (protocols.predict, lambda s, rows: _records(s, rows[:1])[0]),
    "dataframe_split": (
        protocols.mlflow,
        lambda s, rows: {"dataframe_split": {"columns": list(s.columns), "data": rows}},
    ),
    "dataframe_records": (
        protocols.mlflow,
        lambda s, rows: {"dataframe_records": _records(s, rows)},
    ),
    "instances (rows)": (protocols.mlflow, lambda s, rows: {"instances": rows}),
    "instances (records)": (protocols.mlflow, lambda s, rows: {"instances": _records(s, rows)}),
    "inputs (columns)": (protocols.mlflow, lambda s, rows: {"inputs": _by_column(s, rows)}),
    "v2 (a tensor a column)": (protocols.v2, lambda s, rows: {"inputs": _tensors(s, rows)}),
}
V2_MATRIX = (
    protocols.v2,
    lambda s, rows: {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(s.columns)],
                "datatype": "FP64",
                "data": [v for r in rows for v in r],
            }
        ]
    },
)


def _fits(kind: str, value: Any) -> bool:
    """The spec, written apart from the server's code: which JSON values a column takes."""
    if value is None:
        return True
    if kind == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return kind == "boolean"
    if not isinstance(value, int | float):
        return False
    if kind == "boolean":
        return value in (0, 1)
    if kind == "integer":
        return float(value).is_integer() and -(2.0**63) <= float(value) < 2.0**63
    return math.isfinite(value)


def _valid_rows(schema: Schema, n: int) -> list[list[Any]]:
    make = {"number": 1.5, "integer": 3, "boolean": True, "string": "a"}
    return [[make[schema.types[c]] for c in schema.columns] for _ in range(n)]


def _parse(parse: Callable[[Schema, Any], Rows], schema: Schema, body: Any) -> Rows | PayloadError:
    try:
        return parse(schema, _through_json(body))
    except PayloadError as e:
        assert 400 <= e.status < 500
        assert orjson.loads(e.body())["error"]
        return e


@settings(max_examples=300, deadline=None)
@given(
    body=json_values,
    form=st.sampled_from([protocols.predict, protocols.mlflow, protocols.v2]),
    schema=st.sampled_from(list(SCHEMAS.values())),
)
def test_any_json_body_is_rows_or_a_4xx(
    body: Any, form: Callable[[Schema, Any], Rows], schema: Schema
) -> None:
    _parse(form, schema, body)


@settings(max_examples=400, deadline=None)
@given(
    form=st.sampled_from([*FORMS, "v2 (one matrix)"]),
    schema_name=st.sampled_from(list(SCHEMAS)),
    n=st.integers(2, 4),
    where=st.tuples(st.integers(0, 3), st.integers(0, 2)),
    value=json_values,
)
def test_a_value_is_taken_only_when_it_is_of_its_column_type(
    form: str, schema_name: str, n: int, where: tuple[int, int], value: Any
) -> None:
    schema = SCHEMAS[schema_name]
    parse, body_of = FORMS.get(form, V2_MATRIX)
    if form == "v2 (one matrix)" and not schema.numeric:
        return  # one FP64 tensor holds numeric columns only
    rows = _valid_rows(schema, n)
    if form == "predict (one record)":
        n = 1
    row, j = where[0] % n, where[1]
    rows[row][j] = value
    column = schema.columns[j]
    got = _parse(parse, schema, body_of(schema, rows))
    if _fits(schema.types[column], value):
        assert isinstance(got, Rows), got
        assert got.n == n
        taken = (
            got.data[column].iloc[row] if isinstance(got.data, pd.DataFrame) else got.data[row, j]
        )
        if value is None:
            assert taken is None or (isinstance(taken, float) and math.isnan(taken))
        elif isinstance(value, str):
            assert taken == value
        else:
            assert float(taken) == float(value)
    else:
        assert isinstance(got, PayloadError), (value, got)
        assert got.status == 422 and got.field == column, (value, got.message, got.field)


@pytest.mark.parametrize(
    ("value", "ok"),
    [(True, False), (2**63 - 1024, True), (2**63 - 1, False), (2**63, False), (-(2**63), True)],
)
def test_integers_are_bounded_to_64_bits(value: int, ok: bool) -> None:
    rows = [[1.0, value, True], [2.0, 1, False]]
    for form in ("dataframe_split", "predict"):
        parse, body_of = FORMS[form]
        got = _parse(parse, NUMERIC, body_of(NUMERIC, rows))
        assert isinstance(got, Rows) is ok, (form, value, got)


def test_a_v2_shape_of_booleans_is_refused() -> None:
    body = V2_MATRIX[1](NUMERIC, _valid_rows(NUMERIC, 2))
    body["inputs"][0]["shape"] = [True, 3]
    got = _parse(protocols.v2, NUMERIC, body)
    assert isinstance(got, PayloadError) and got.field == "inputs[0].shape", got
