"""How a pattern's inputs are typed, checked, stored and keyed.

A dataset's input schema is a list of columns, each of one type:

``number``   float64; NaN is a missing value
``integer``  int64, with missing values allowed
``boolean``  true / false, with missing values allowed
``string``   a short string (a category, a code); kept exactly as given
``text``     free text (the dataset's ``--text`` column); kept exactly as given

Storage, per pattern: the numeric columns (number, integer, boolean) are packed
as 8-byte little-endian slots followed by a missing-value bitmap (one bit a slot,
set when missing) in ``patterns.num``; the string and text columns are a JSON
array in ``patterns.obj``. Both encode and decode a whole column block at a time
with NumPy, which is what makes imports and training-data reads fast.

The *input key* is a salted BLAKE2b hash of the normalised inputs: text is NFKC
normalised, case-folded and its white space collapsed; numbers are rounded to 36
bits of mantissa (about 11 significant digits) and -0.0 becomes 0.0. The split of
a pattern is a pure function of its input key, so exact and near-exact duplicates
always land in the same split. This normalisation is part of the stored data's
meaning and must never change.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pandas as pd

from trenches.errors import InvalidInput

ColumnType = Literal["number", "integer", "boolean", "string", "text"]
COLUMN_TYPES: tuple[str, ...] = ("number", "integer", "boolean", "string", "text")
NUMERIC_TYPES = frozenset({"number", "integer", "boolean"})
LABEL_TYPES = frozenset({"number", "integer", "boolean", "string"})

#: Strings that mean "missing" in a numeric or boolean column of a text file.
MISSING_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})

_KEY_MANTISSA_BITS_DROPPED = 52 - 36
_CANONICAL_MISSING = np.uint64(0x7FF8_0000_0000_0001)


@dataclass(frozen=True)
class InputColumn:
    """One input column of a dataset."""

    name: str
    type: ColumnType

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "type": self.type}


@dataclass(frozen=True)
class InputSchema:
    """The input columns of a dataset, in storage order."""

    columns: tuple[InputColumn, ...]

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

    def to_json(self) -> str:
        return orjson.dumps([c.to_json() for c in self.columns]).decode()

    @classmethod
    def from_json(cls, text: str) -> InputSchema:
        return cls(tuple(InputColumn(d["name"], d["type"]) for d in orjson.loads(text)))

    @classmethod
    def parse(cls, spec: str) -> InputSchema:
        """Parse ``"radius:number,name:string"`` (the CLI's ``--schema``)."""
        cols = []
        for part in spec.split(","):
            if not part.strip():
                continue
            name, sep, typ = part.partition(":")
            typ = typ.strip()
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


def _fail(file: str | None, offset: int, idx: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(message, file=file, row=offset + idx + 1, field=field)


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
    n = len(series)
    if typ in ("string", "text"):
        obj = series.to_numpy(dtype=object, na_value=None)
        missing = pd.isna(series).to_numpy().copy()
        if text_file:
            missing |= np.fromiter((v == "" for v in obj), dtype=bool, count=n)
        out = np.empty(n, dtype=object)
        for i, v in enumerate(obj):
            if missing[i]:
                out[i] = None
            elif isinstance(v, str):
                if "\x00" in v:
                    raise _fail(file, offset, i, field, "the text holds a NUL character (\\x00)")
                out[i] = v
            elif isinstance(v, bool | np.bool_):
                out[i] = "true" if v else "false"
            elif isinstance(v, int | np.integer):
                out[i] = str(int(v))
            elif isinstance(v, float | np.floating):
                out[i] = repr(float(v))
            else:
                raise _fail(file, offset, i, field, f"{v!r} is not a string")
        return CoercedColumn(out, missing)

    dtype = series.dtype
    if typ == "number":
        if pd.api.types.is_bool_dtype(dtype):
            raise _fail(file, offset, 0, field, "a boolean is not a number")
        if pd.api.types.is_numeric_dtype(dtype):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            return CoercedColumn(values, np.isnan(values))
        obj = series.to_numpy(dtype=object)
        values = np.empty(n, dtype="float64")
        missing = np.zeros(n, dtype=bool)
        for i, v in enumerate(obj):
            if _is_missing_scalar(v):
                values[i] = np.nan
                missing[i] = True
            elif isinstance(v, bool | np.bool_):
                raise _fail(file, offset, i, field, f"{v!r} is a boolean, not a number")
            else:
                try:
                    values[i] = float(v.strip() if isinstance(v, str) else v)
                except (TypeError, ValueError):
                    raise _fail(file, offset, i, field, f"{v!r} is not a number") from None
        return CoercedColumn(values, missing)

    if typ == "integer":
        if pd.api.types.is_bool_dtype(dtype):
            raise _fail(file, offset, 0, field, "a boolean is not an integer")
        if pd.api.types.is_integer_dtype(dtype):
            missing = pd.isna(series).to_numpy()
            ints = series.to_numpy(dtype="int64", na_value=0)
            return CoercedColumn(ints, missing)
        floats = coerce(series, "number", file=file, offset=offset, field=field)
        values, missing = floats.values, floats.missing
        bad = ~missing & ((values != np.floor(values)) | ~np.isfinite(values))
        if bad.any():
            row = _first(bad)
            raise _fail(file, offset, row, field, f"{series.iloc[row]!r} is not an integer")
        obj = series.to_numpy(dtype=object)
        exact: dict[int, int] = {}
        if not pd.api.types.is_numeric_dtype(dtype):
            # Python ints and digit strings beyond 2**53 are kept exact, not via float.
            for j in np.flatnonzero(~missing & (np.abs(values) >= 2.0**53)):
                given = obj[j]
                try:
                    exact[int(j)] = int(given.strip() if isinstance(given, str) else given)
                except (TypeError, ValueError):
                    exact[int(j)] = int(values[j])
        too_big = ~missing & (np.abs(values) >= 2.0**63)
        for k, big in exact.items():
            too_big[k] = not -(2**63) <= big < 2**63
        if too_big.any():
            row = _first(too_big)
            raise _fail(
                file, offset, row, field, f"{series.iloc[row]!r} is out of the 64-bit range"
            )
        ints = np.where(missing | (np.abs(values) >= 2.0**63), 0, values).astype("int64")
        for k, big in exact.items():
            ints[k] = big
        return CoercedColumn(ints, missing)

    if typ == "boolean":
        if pd.api.types.is_bool_dtype(dtype):
            missing = pd.isna(series).to_numpy()
            return CoercedColumn(series.to_numpy(dtype=bool, na_value=False), missing)
        obj = series.to_numpy(dtype=object)
        values = np.zeros(n, dtype=bool)
        missing = np.zeros(n, dtype=bool)
        for i, v in enumerate(obj):
            if _is_missing_scalar(v):
                missing[i] = True
            elif isinstance(v, bool | np.bool_) or (
                isinstance(v, int | float | np.integer | np.floating) and v in (0, 1)
            ):
                values[i] = bool(v)
            elif isinstance(v, str) and v.strip().lower() in _TRUE:
                values[i] = True
            elif isinstance(v, str) and v.strip().lower() in _FALSE:
                values[i] = False
            else:
                raise _fail(file, offset, i, field, f"{v!r} is not true or false")
        return CoercedColumn(values, missing)

    raise InvalidInput(f"unknown column type {typ!r}", field=field)


# --- encoding -----------------------------------------------------------------


@dataclass
class EncodedInputs:
    """Inputs of a chunk of patterns, ready to store and key."""

    num: list[bytearray] | None
    obj: list[str] | None
    keys: list[bytearray]


def _rows_as_bytes(block: np.ndarray) -> list[bytes]:
    """Each row of a 2-D uint8 array as one bytes object."""
    block = np.ascontiguousarray(block)
    rows = block.view(np.dtype((np.void, block.shape[1]))).ravel().tolist()
    return rows  # type: ignore[return-value]


def _normalise_text(s: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", s).casefold().split())


def _numeric_block(schema: InputSchema, cols: dict[str, CoercedColumn], n: int) -> np.ndarray:
    """(n, k) little-endian 8-byte slots as uint64, and missing slots zeroed."""
    numeric = schema.numeric
    block = np.zeros((n, len(numeric)), dtype="<u8")
    for j, col in enumerate(numeric):
        c = cols[col.name]
        if col.type == "number":
            block[:, j] = np.ascontiguousarray(c.values, dtype="<f8").view("<u8")
        else:
            block[:, j] = np.ascontiguousarray(c.values, dtype="<i8").view("<u8")
        block[c.missing, j] = 0
    return block


def encode(
    schema: InputSchema, cols: dict[str, CoercedColumn], n: int, salt: bytes
) -> EncodedInputs:
    """Encode a chunk of coerced columns and compute each pattern's input key."""
    numeric = schema.numeric
    strings = schema.strings
    num: list[bytearray] | None = None
    norm_rows: list[bytes] | None = None
    if numeric:
        k = len(numeric)
        block = _numeric_block(schema, cols, n)
        missing = np.column_stack([cols[c.name].missing for c in numeric])
        bitmap = np.packbits(missing, axis=1, bitorder="little")
        stored = np.concatenate([block.view(np.uint8).reshape(n, 8 * k), bitmap], axis=1)
        # bytearray, not bytes: Python's sqlite3 binds a bytearray without looking for an
        # adapter, which is a third of the cost of a row on the bulk path.
        num = list(map(bytearray, _rows_as_bytes(stored)))

        # The key: every slot as float64, mantissa rounded, missing canonical.
        floats = np.empty((n, k), dtype="<f8")
        for j, col in enumerate(numeric):
            floats[:, j] = cols[col.name].values.astype("<f8")
        floats[floats == 0] = 0.0  # -0.0 -> 0.0
        bits = floats.view("<u8")
        half = np.uint64(1 << (_KEY_MANTISSA_BITS_DROPPED - 1))
        mask = ~np.uint64((1 << _KEY_MANTISSA_BITS_DROPPED) - 1)
        finite = np.isfinite(floats)
        bits[finite] = (bits[finite] + half) & mask
        bits[~finite & ~missing] = floats[~finite & ~missing].view("<u8")
        bits[missing | np.isnan(floats)] = _CANONICAL_MISSING
        norm_rows = _rows_as_bytes(bits.view(np.uint8).reshape(n, 8 * k))

    obj: list[str] | None = None
    if strings:
        columns = [cols[c.name].values for c in strings]
        dumps = orjson.dumps
        obj = [dumps(list(row)).decode() for row in zip(*columns, strict=True)]
        norm = [
            [None if v is None else _normalise_text(v) for v in col_values]
            for col_values in columns
        ]
        norm_json = [dumps(list(row)) for row in zip(*norm, strict=True)]
        if norm_rows is None:
            norm_rows = norm_json
        else:
            norm_rows = [a + b for a, b in zip(norm_rows, norm_json, strict=True)]
    assert norm_rows is not None, "a dataset has at least one input column"
    # Copying a keyed hash object skips re-processing the key for every row.
    base = hashlib.blake2b(digest_size=16, key=salt)
    keys: list[bytearray] = []
    append, fresh = keys.append, base.copy
    for r in norm_rows:
        h = fresh()
        h.update(r)
        append(bytearray(h.digest()))
    return EncodedInputs(num, obj, keys)


def splits_of(keys: Sequence[bytes | bytearray], ratios: tuple[float, float, float]) -> np.ndarray:
    """0 train, 1 validation, 2 test: a pure function of each key and the ratios."""
    if not keys:
        return np.zeros(0, dtype=np.int8)
    head = np.frombuffer(b"".join(k[:8] for k in keys), dtype=">u8")
    u = head.astype(np.float64) / 2.0**64
    train, validation, _ = ratios
    return np.where(u < train, 0, np.where(u < train + validation, 1, 2)).astype(np.int8)


# --- decoding -----------------------------------------------------------------


def decode(
    schema: InputSchema, num: Sequence[bytes | None], obj: Sequence[str | None]
) -> pd.DataFrame:
    """Rebuild the input columns of many patterns, in schema order."""
    n = len(num)
    out: dict[str, Any] = {}
    numeric = schema.numeric
    if numeric:
        k = len(numeric)
        width = schema.num_width
        raw = np.frombuffer(b"".join(num), dtype=np.uint8).reshape(n, width)  # type: ignore[arg-type]
        slots = np.ascontiguousarray(raw[:, : 8 * k]).view("<u8").reshape(n, k)
        missing = np.unpackbits(raw[:, 8 * k :], axis=1, bitorder="little", count=k).astype(bool)
        for j, col in enumerate(numeric):
            m = missing[:, j]
            if col.type == "number":
                v = slots[:, j].view("<f8").copy()
                v[m] = np.nan
                out[col.name] = v
            elif col.type == "integer":
                ints = slots[:, j].view("<i8").copy()
                out[col.name] = pd.arrays.IntegerArray(ints, m) if m.any() else ints
            else:
                bools = slots[:, j].astype(bool)
                out[col.name] = pd.arrays.BooleanArray(bools, m) if m.any() else bools
    strings = schema.strings
    if strings:
        loads = orjson.loads
        rows = [loads(s) for s in obj]  # type: ignore[arg-type]
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in strings]
        for col, values in zip(strings, cols, strict=True):
            out[col.name] = np.array(values, dtype=object)
    return pd.DataFrame({c: out[c] for c in schema.names}, copy=False)


def label_to_text(values: np.ndarray, typ: str) -> list[str]:
    """Labels as stored: exact, and typed back by :func:`labels_from_text`."""
    if typ == "number":
        return list(map(repr, values.astype(float).tolist()))
    if typ == "integer":
        return list(map(str, values.astype("int64").tolist()))
    if typ == "boolean":
        return ["true" if v else "false" for v in values.tolist()]
    return [str(v) for v in values.tolist()]


def labels_from_text(texts: Sequence[str], typ: str | None) -> np.ndarray:
    if typ == "number":
        return np.array(texts, dtype=object).astype(np.float64)
    if typ == "integer":
        return np.array([int(t) for t in texts], dtype=np.int64)
    if typ == "boolean":
        return np.array([t == "true" for t in texts], dtype=bool)
    return np.array(texts, dtype=object)


def content_hashes(
    num: Sequence[bytes | bytearray | None],
    obj: Sequence[str | None],
    labels: Sequence[str],
    source: str,
    created_at: int,
) -> list[bytearray]:
    """Hash of what a training run sees of each pattern: exact inputs, label, source and
    time. ``num`` has a fixed width per dataset and JSON holds no raw U+001F, so the
    separators make the encoding unambiguous."""
    tail = b"\x1f" + source.encode() + b"\x1f" + str(created_at).encode()
    fresh = hashlib.blake2b(digest_size=16).copy
    encoded: dict[str, bytes] = {}  # classification labels repeat: encode each once
    out: list[bytearray] = []
    append = out.append
    for nb, ob, lb in zip(num, obj, labels, strict=True):
        lab = encoded.get(lb)
        if lab is None:
            lab = encoded.setdefault(lb, b"\x1f" + lb.encode() + tail)
        h = fresh()
        if nb is not None:
            h.update(nb)
        if ob is not None:
            h.update(ob.encode())
        h.update(lab)
        append(bytearray(h.digest()))
    return out
