"""Reading pattern files (CSV, Parquet, JSONL) into DataFrames, with errors that
name the file, the row and the field."""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from trenches.errors import InvalidInput
from trenches.patterns.inputs import MISSING_WORDS

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
FORMATS[".ndjson"] = "jsonl"


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot tell the format from the extension {path.suffix!r}; "
            "use .csv, .parquet or .jsonl",
            file=str(path),
        )
    return fmt


def read_file(path: str | os.PathLike[str], string_columns: set[str] | None = None) -> pd.DataFrame:
    """Read a whole pattern file. ``string_columns`` are read as text, never as numbers,
    so that codes like "007" keep their zeros."""
    name = str(path)
    with _reading(name):
        p, fmt = _readable(path)
        if fmt == "csv":
            df = _read_csv(p, name, string_columns or set())
        elif fmt == "parquet":
            df = _read_parquet(p, name)
        else:
            df = _read_jsonl(p, name)
    if len(df.columns) == 0:
        raise InvalidInput("the file has no columns", file=name)
    if len(df) == 0:
        raise InvalidInput("the file has a header but no data rows", file=name)
    return df


def file_columns(path: str | os.PathLike[str]) -> list[str] | None:
    """The column names of a CSV file (its header) or a Parquet file (its schema), read
    without reading a row: a file whose columns are wrong is refused before the work of
    parsing it. ``None`` for JSON lines, whose keys only the whole file tells."""
    name = str(path)
    with _reading(name):
        p, fmt = _readable(path)
        if fmt == "csv":
            with _fields_as_long_as(p):
                return _csv_header(p, name)
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                return list(pq.read_schema(p).names)
            except (pa.ArrowInvalid, OSError) as e:
                raise InvalidInput(f"not a readable Parquet file: {e}", file=name) from None
        return None


@contextmanager
def _reading(name: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        # A name too long, no permission, a device that fails: the file is not there
        # to be read, whatever the reason.
        raise InvalidInput(f"cannot read it: {e.strerror or e}", file=name) from None


def _readable(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The file and its format, or ``InvalidInput`` when it is not there to read."""
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise InvalidInput("no such file", file=name)
    if p.is_dir():
        raise InvalidInput("is a folder, not a file", file=name)
    fmt = file_format(p)
    if p.stat().st_size == 0:
        raise InvalidInput("the file is empty", file=name)
    return p, fmt


@contextmanager
def _fields_as_long_as(p: Path) -> Iterator[None]:
    """Let the csv module read fields as long as the file itself: by default it refuses
    any field over 128 KiB, and a long text is a normal text. The limit is the module's
    (the process's) own, so it is put back afterwards."""
    before = csv.field_size_limit()
    csv.field_size_limit(max(before, min(p.stat().st_size + 1, 2**62)))
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _read_csv(p: Path, name: str, string_columns: set[str]) -> pd.DataFrame:
    with _fields_as_long_as(p):
        return _read_csv_fields(p, name, string_columns)


def _csv_header(p: Path, name: str) -> list[str]:
    with p.open("rb") as fb:
        first = fb.readline()
    try:
        header = next(csv.reader([first.decode("utf-8-sig")]), [])
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the header is not UTF-8 text ({e.reason})", file=name) from None
    except csv.Error as e:
        raise InvalidInput(f"cannot read the header: {e}", file=name) from None
    if not header or all(h.strip() == "" for h in header):
        raise InvalidInput("the file is empty", file=name)
    counts = Counter(header)
    dupes = sorted(h for h, n in counts.items() if n > 1)
    if dupes:
        raise InvalidInput(f"column {dupes[0]!r} appears more than once in the header", file=name)
    return header


def _read_csv_fields(p: Path, name: str, string_columns: set[str]) -> pd.DataFrame:
    header = _csv_header(p, name)
    try:
        # Everything is read as text and typed here: pandas' own float parser is not
        # always correctly rounded, and a number must read back bit for bit. Only an
        # empty field is missing at this point: "NA" is a fine string (Namibia).
        raw = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            engine="c",
        )
    except pd.errors.ParserError as e:
        raise _csv_error(p, name, len(header), e) from None
    except UnicodeDecodeError as e:
        raise _utf8_error(p, name, e) from None
    # pandas pads a row with too few fields; a missing field is an error here.
    short = _first_ragged_row(p, len(header))
    if short is not None:
        raise short.with_file(name)
    return pd.DataFrame({c: raw[c] if c in string_columns else _typed(raw[c]) for c in raw.columns})


class _Ragged:
    def __init__(self, row: int, line: int, found: int, width: int) -> None:
        self.row, self.line, self.found, self.width = row, line, found, width

    def with_file(self, name: str) -> InvalidInput:
        return InvalidInput(
            f"expected {self.width} fields, found {self.found} (line {self.line} of the file)",
            file=name,
            row=self.row,
        )


def _first_ragged_row(p: Path, width: int) -> _Ragged | None:
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row_number, row in enumerate(reader, start=1):
            if len(row) != width and row:
                return _Ragged(row_number, reader.line_num, len(row), width)
    return None


def _utf8_error(p: Path, name: str, e: UnicodeDecodeError) -> InvalidInput:
    with p.open("rb") as f:
        f.readline()
        for row_number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                return InvalidInput(f"not UTF-8 text ({bad.reason})", file=name, row=row_number)
    return InvalidInput(f"not UTF-8 text ({e.reason})", file=name)


_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_BOOLEAN = {"true": True, "false": False}


def _typed(column: pd.Series) -> pd.Series:
    """A text column as integers, floats or booleans when every value is one (or a word
    for missing), else left as text.

    Floats go through Python's ``float``, which is correctly rounded: a value written
    with ``repr`` reads back exactly.
    """
    present = column.dropna()
    if len(present) == 0:
        return column.astype("float64")
    values = present.to_numpy(dtype=object)
    words = np.array([v.strip().lower() for v in values], dtype=object)
    missing_word = np.isin(words, list(MISSING_WORDS))
    if missing_word.all():
        return pd.Series(np.nan, index=column.index, dtype="float64")
    kept = values[~missing_word]
    kept_words = words[~missing_word]
    index = present.index[~missing_word]
    if all(w in _BOOLEAN for w in kept_words):
        out = pd.Series(pd.NA, index=column.index, dtype="boolean")
        out[index] = [_BOOLEAN[w] for w in kept_words]
        return out if out.isna().any() else out.astype(bool)
    if all(_INTEGER.match(v) for v in kept):
        ints = [int(v) for v in kept]
        if all(-(2**63) <= i < 2**63 for i in ints):
            out = pd.Series(pd.NA, index=column.index, dtype="Int64")
            out[index] = ints
            return out if out.isna().any() else out.astype("int64")
        return column
    try:
        floats = kept.astype(np.float64)
    except ValueError:
        return column
    out = pd.Series(np.nan, index=column.index, dtype="float64")
    out[index] = floats
    return out


def _csv_error(p: Path, name: str, width: int, e: Exception) -> InvalidInput:
    # pandas names the line but not always the data row; find the first row whose
    # field count is wrong with the csv module, which counts the same way.
    try:
        ragged = _first_ragged_row(p, width)
    except csv.Error as err:
        return InvalidInput(f"malformed CSV: {err}", file=name)
    if ragged is not None:
        return ragged.with_file(name)
    return InvalidInput(f"malformed CSV: {e}", file=name)


def _read_parquet(p: Path, name: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInput(f"not a readable Parquet file: {e}", file=name) from None
    # Nullable integer and boolean columns stay integers and booleans (not floats).
    mapping = {
        t: pd.Int64Dtype()
        for t in (
            pa.int8(),
            pa.int16(),
            pa.int32(),
            pa.int64(),
            pa.uint8(),
            pa.uint16(),
            pa.uint32(),
        )
    }
    mapping[pa.bool_()] = pd.BooleanDtype()
    # A block a column, not one 2-D block for all the numbers: their columns are then
    # Arrow's own memory, not a copy that faults in as much again (0.7 s against 7 s
    # for 10 million rows of 20 numbers here), and Arrow's is let go as it goes.
    frame = table.to_pandas(types_mapper=mapping.get, split_blocks=True, self_destruct=True)
    del table
    for c in frame.columns:
        dtype = frame[c].dtype
        if isinstance(dtype, pd.Int64Dtype | pd.BooleanDtype) and not frame[c].isna().any():
            frame[c] = frame[c].astype("int64" if isinstance(dtype, pd.Int64Dtype) else bool)
    return frame


def _read_jsonl(p: Path, name: str) -> pd.DataFrame:
    records = []
    blank_at = None
    with p.open("rb") as f:
        for row_number, line in enumerate(f, start=1):
            if not line.strip():
                blank_at = blank_at or row_number
                continue
            if blank_at is not None:
                # Rows are counted as lines; a blank line inside the file would
                # shift every later row number, so it is refused.
                raise InvalidInput("blank line inside the file", file=name, row=blank_at)
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise InvalidInput(f"not valid JSON: {e}", file=name, row=row_number) from None
            if not isinstance(record, dict):
                raise InvalidInput(
                    f"each line must be a JSON object, found {type(record).__name__}",
                    file=name,
                    row=row_number,
                )
            records.append(record)
    if not records:
        raise InvalidInput("the file has no records", file=name)
    names = list(dict.fromkeys(k for r in records for k in r))
    return pd.DataFrame({k: _json_column([r.get(k) for r in records]) for k in names})


def _json_column(values: list[object]) -> pd.Series:
    """One JSONL field across records; integers stay exact, nulls keep their type."""
    present = [v for v in values if v is not None]
    has_null = len(present) < len(values)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(values, dtype="boolean" if has_null else bool)
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(2**63) <= v < 2**63 for v in present):  # type: ignore[operator]
            return pd.Series(values, dtype="Int64" if has_null else "int64")
        return pd.Series(values, dtype=object)
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    return pd.Series(values, dtype=object)
