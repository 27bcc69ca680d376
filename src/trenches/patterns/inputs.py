"""How a pattern's inputs are typed and checked.

A dataset's input schema is a list of columns, each of one type:

``number``   float64; NaN is a missing value
``integer``  int64, with missing values allowed
``boolean``  true / false, with missing values allowed
``string``   a short string (a category, a code); kept exactly as given
``text``     free text (the dataset's ``--text`` column); kept exactly as given

How checked inputs are stored and keyed is :mod:`trenches.patterns.codec`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from trenches.errors import InvalidInput
from trenches.json_form import json_shape

ColumnType = Literal["number", "integer", "boolean", "string", "text"]
COLUMN_TYPES: tuple[str, ...] = ("number", "integer", "boolean", "string", "text")
NUMERIC_TYPES = frozenset({"number", "integer", "boolean"})
LABEL_TYPES = frozenset({"number", "integer", "boolean", "string"})

#: Strings that mean "missing" in a numeric or boolean column of a text file.
MISSING_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


@dataclass(frozen=True)
class InputColumn:
    """One input column of a dataset."""

    name: str
    type: ColumnType


@json_shape(transparent=True)
@dataclass(frozen=True)
class InputSchema:
    """The input columns of a dataset, in storage order; its JSON form is the list of
    its columns."""

    columns: tuple[InputColumn, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for c in self.columns:
            if not c.name.strip():
                raise InvalidInput("a column of the schema has no name")
            if c.name in seen:
                raise InvalidInput(f"column {c.name!r} appears twice in the schema")
            seen.add(c.name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> list[InputColumn]:
        return [c for c in self.columns if c.type in NUMERIC_TYPES]

    @property
    def strings(self) -> list[InputColumn]:
        return [c for c in self.columns if c.type not in NUMERIC_TYPES]

    @property
    def num_width(self) -> int:
        """Bytes per pattern in ``patterns.num``."""
        k = len(self.numeric)
        return 8 * k + (k + 7) // 8

    @classmethod
    def parse(cls, spec: str) -> InputSchema:
        """Parse ``"radius:number,name:string"`` (the CLI's ``--schema``)."""
        cols = []
        for part in spec.split(","):
            if not part.strip():
                continue
            name, sep, typ = part.partition(":")
            typ = typ.strip()
            if sep and not name.strip():
                raise InvalidInput(f"schema entry {part.strip()!r} names no column")
            if not sep or typ not in COLUMN_TYPES:
                raise InvalidInput(
                    f"schema entry {part.strip()!r} is not NAME:TYPE with TYPE one of "
                    + ", ".join(COLUMN_TYPES)
                )
            cols.append(InputColumn(name.strip(), typ))  # type: ignore[arg-type]
        if not cols:
            raise InvalidInput("the schema names no columns")
        return cls(tuple(cols))


# --- inference ----------------------------------------------------------------


def infer_type(series: pd.Series, *, is_text: bool = False) -> ColumnType:
    """The column type a first import gives to ``series``."""
    if is_text:
        return "text"
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    values = series.dropna()
    if len(values) and all(isinstance(v, bool | np.bool_) for v in values):
        return "boolean"
    return "string"


def infer_label_type(series: pd.Series, task: str) -> ColumnType:
    if task == "regression":
        return "number"
    t = infer_type(series)
    if t == "number":
        # Classes read as floats (1.0, 2.0) because a file had them so; keep them
        # as numbers but never as a continuous label.
        return "number"
    return "string" if t == "text" else t


# --- checking and coercion ----------------------------------------------------


@dataclass
class CoercedColumn:
    """A column converted to its schema type, with its missing-value mask."""

    values: np.ndarray  # float64, int64, bool, or object (str) by type
    missing: np.ndarray  # bool


@dataclass(frozen=True)
class _Where:
    """Where a column's values came from, for the message naming a bad one."""

    file: str | None
    #: Data rows before this chunk, so that rows are counted across a whole file.
    offset: int
    field: str

    def fail(self, idx: int, message: str) -> InvalidInput:
        return InvalidInput(message, file=self.file, row=self.offset + idx + 1, field=self.field)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _is_missing_scalar(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and v.strip().lower() in MISSING_WORDS


def coerce(
    series: pd.Series,
    typ: str,
    *,
    file: str | None,
    offset: int,
    field: str,
    text_file: bool = False,
) -> CoercedColumn:
    """Convert ``series`` to ``typ``, or raise naming the first bad row.

    ``offset`` is the number of data rows before this chunk, so that rows are
    counted across a whole file. ``text_file`` is set for CSV: there an empty field
    is a missing value even in a string column.
    """
    where = _Where(file, offset, field)
    if typ in ("string", "text"):
        return _coerce_strings(series, where, text_file)
    convert = _COERCE_NUMERIC.get(typ)
    if convert is None:
        raise InvalidInput(f"unknown column type {typ!r}", field=field)
    return convert(series, where)


def among_words(series: pd.Series, words: frozenset[str]) -> np.ndarray:
    """Which values of ``series`` are strings that, stripped and lower-cased, are one
    of ``words``: each distinct value looked at once."""
    try:
        codes, distinct = pd.factorize(series.to_numpy(dtype=object, na_value=None))
    except TypeError:  # a value that cannot be hashed (a list given as a label)
        codes, distinct = None, None
    if distinct is None or not _all_strings(series, distinct):
        # 1, 1.0 and True factorize as one value: looked at one by one
        slow: np.ndarray = series.map(
            lambda v: isinstance(v, str) and v.strip().lower() in words
        ).to_numpy(dtype=bool)
        return slow
    found = np.array([v.strip().lower() in words for v in distinct] + [False], dtype=bool)
    hit: np.ndarray = found[codes]  # code -1 (missing): the last, False
    return hit


def _all_strings(series: pd.Series, distinct: np.ndarray) -> bool:
    """Whether every present value is a string (the values a factorization keeps
    apart exactly as Python's equality does)."""
    return isinstance(series.dtype, pd.StringDtype) or all(isinstance(v, str) for v in distinct)


def _coerce_strings(series: pd.Series, where: _Where, text_file: bool) -> CoercedColumn:
    n = len(series)
    if isinstance(series.dtype, pd.StringDtype):
        return _coerce_string_dtype(series, where, text_file)
    obj = series.to_numpy(dtype=object, na_value=None)
    missing = pd.isna(series).to_numpy().copy()
    if text_file:
        missing |= np.fromiter((v == "" for v in obj), dtype=bool, count=n)
    out = np.empty(n, dtype=object)
    for i, v in enumerate(obj):
        out[i] = None if missing[i] else _as_string(v, where, i)
    return CoercedColumn(out, missing)


def _coerce_string_dtype(series: pd.Series, where: _Where, text_file: bool) -> CoercedColumn:
    """:func:`_coerce_strings` of a column of strings: each distinct value checked once
    (in order of first appearance, so the first bad one found is the first in the
    column), the rows given the checked values by their codes."""
    obj = series.to_numpy(dtype=object, na_value=None)
    codes, distinct = pd.factorize(obj)
    missing = codes < 0
    checked = np.empty(len(distinct) + 1, dtype=object)
    for k, v in enumerate(distinct):
        if text_file and v == "":
            checked[k] = None
            continue
        if "\x00" in v:
            raise where.fail(
                int(np.flatnonzero(codes == k)[0]), "the text holds a NUL character (\\x00)"
            )
        checked[k] = v
    checked[-1] = None
    out = checked[codes]
    if text_file:  # an empty field of a text file is missing too
        missing = missing | np.array([v is None for v in checked], dtype=bool)[codes]
    return CoercedColumn(out, missing)


def _as_string(v: Any, where: _Where, i: int) -> str:
    """A string column's value ``v`` (row ``i``) as the string stored."""
    if isinstance(v, str):
        if "\x00" in v:
            raise where.fail(i, "the text holds a NUL character (\\x00)")
        return v
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return repr(float(v))
    raise where.fail(i, f"{v!r} is not a string")


def _coerce_numbers(series: pd.Series, where: _Where) -> CoercedColumn:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise where.fail(0, "a boolean is not a number")
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        return CoercedColumn(values, np.isnan(values))
    obj = series.to_numpy(dtype=object)
    n = len(series)
    values = np.empty(n, dtype="float64")
    missing = np.zeros(n, dtype=bool)
    for i, v in enumerate(obj):
        if _is_missing_scalar(v):
            values[i] = np.nan
            missing[i] = True
        elif isinstance(v, bool | np.bool_):
            raise where.fail(i, f"{v!r} is a boolean, not a number")
        else:
            try:
                values[i] = float(v.strip() if isinstance(v, str) else v)
            except (TypeError, ValueError):
                raise where.fail(i, f"{v!r} is not a number") from None
    return CoercedColumn(values, missing)


def _coerce_integers(series: pd.Series, where: _Where) -> CoercedColumn:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise where.fail(0, "a boolean is not an integer")
    if pd.api.types.is_integer_dtype(dtype):
        missing = pd.isna(series).to_numpy()
        ints = series.to_numpy(dtype="int64", na_value=0)
        return CoercedColumn(ints, missing)
    floats = _coerce_numbers(series, where)
    values, missing = floats.values, floats.missing
    bad = ~missing & ((values != np.floor(values)) | ~np.isfinite(values))
    if bad.any():
        row = _first(bad)
        raise where.fail(row, f"{series.iloc[row]!r} is not an integer")
    exact: dict[int, int] = {}
    if not pd.api.types.is_numeric_dtype(dtype):
        exact = _exact_big_integers(series.to_numpy(dtype=object), values, missing)
    too_big = ~missing & (np.abs(values) >= 2.0**63)
    for k, big in exact.items():
        too_big[k] = not -(2**63) <= big < 2**63
    if too_big.any():
        row = _first(too_big)
        raise where.fail(row, f"{series.iloc[row]!r} is out of the 64-bit range")
    ints = np.where(missing | (np.abs(values) >= 2.0**63), 0, values).astype("int64")
    for k, big in exact.items():
        ints[k] = big
    return CoercedColumn(ints, missing)


def _exact_big_integers(obj: np.ndarray, values: np.ndarray, missing: np.ndarray) -> dict[int, int]:
    """Python ints and digit strings beyond 2**53, by row, kept exact rather than via
    float."""
    exact: dict[int, int] = {}
    for j in np.flatnonzero(~missing & (np.abs(values) >= 2.0**53)):
        given = obj[j]
        try:
            exact[int(j)] = int(given.strip() if isinstance(given, str) else given)
        except (TypeError, ValueError):
            exact[int(j)] = int(values[j])
    return exact


def _coerce_booleans(series: pd.Series, where: _Where) -> CoercedColumn:
    if pd.api.types.is_bool_dtype(series.dtype):
        missing = pd.isna(series).to_numpy()
        return CoercedColumn(series.to_numpy(dtype=bool, na_value=False), missing)
    obj = series.to_numpy(dtype=object)
    n = len(series)
    values = np.zeros(n, dtype=bool)
    missing = np.zeros(n, dtype=bool)
    for i, v in enumerate(obj):
        if _is_missing_scalar(v):
            missing[i] = True
        else:
            values[i] = _as_boolean(v, where, i)
    return CoercedColumn(values, missing)


def _as_boolean(v: Any, where: _Where, i: int) -> bool:
    """A boolean column's value ``v`` (row ``i``, not missing) as true or false."""
    if isinstance(v, bool | np.bool_) or (
        isinstance(v, int | float | np.integer | np.floating) and v in (0, 1)
    ):
        return bool(v)
    word = v.strip().lower() if isinstance(v, str) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise where.fail(i, f"{v!r} is not true or false")


#: How a numeric or boolean column is converted, by its type.
_COERCE_NUMERIC: dict[str, Callable[[pd.Series, _Where], CoercedColumn]] = {
    "number": _coerce_numbers,
    "integer": _coerce_integers,
    "boolean": _coerce_booleans,
}


def label_to_text(values: np.ndarray, typ: str) -> list[str]:
    """Labels as stored: exact, and typed back by :func:`labels_from_text`."""
    if typ == "number":
        return list(map(repr, values.astype(float).tolist()))
    if typ == "integer":
        return list(map(str, values.astype("int64").tolist()))
    if typ == "boolean":
        return ["true" if v else "false" for v in values.tolist()]
    return list(map(str, values.tolist()))


def labels_from_text(texts: Sequence[str], typ: str | None) -> np.ndarray:
    if typ == "number":
        return np.array(texts, dtype=object).astype(np.float64)
    if typ == "integer":
        return np.array([int(t) for t in texts], dtype=np.int64)
    if typ == "boolean":
        return np.array([t == "true" for t in texts], dtype=bool)
    return np.array(texts, dtype=object)
