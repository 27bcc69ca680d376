"""Reading pattern files (CSV, Parquet, JSONL) into DataFrames, with errors that
name the file, the row and the field."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from trenches.errors import InvalidInput

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
    p = Path(path)
    name = str(path)
    if not p.exists():
        raise InvalidInput("no such file", file=name)
    if p.is_dir():
        raise InvalidInput("is a folder, not a file", file=name)
    fmt = file_format(p)
    if p.stat().st_size == 0:
        raise InvalidInput("the file is empty", file=name)
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


def _read_csv(p: Path, name: str, string_columns: set[str]) -> pd.DataFrame:
    with p.open(newline="", encoding="utf-8") as f:
        try:
            header = next(csv.reader(f))
        except StopIteration:
            raise InvalidInput("the file is empty", file=name) from None
        except (UnicodeDecodeError, csv.Error) as e:
            raise InvalidInput(f"cannot read the header: {e}", file=name) from None
    if not header or all(h.strip() == "" for h in header):
        raise InvalidInput("the file is empty", file=name)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InvalidInput(f"column {dupes[0]!r} appears more than once in the header", file=name)
    try:
        # Everything is read as text, then typed here: pandas' own float parser is not
        # always correctly rounded, and a number must read back bit for bit.
        raw = pd.read_csv(
            p,
            dtype=str,
            keep_default_na=False,
            na_values=_NA_VALUES,
            encoding="utf-8",
            engine="c",
        )
    except pd.errors.ParserError as e:
        raise _csv_error(p, name, len(header), e) from None
    except UnicodeDecodeError as e:
        raise InvalidInput(f"not UTF-8 text ({e.reason})", file=name) from None
    return pd.DataFrame({c: raw[c] if c in string_columns else _typed(raw[c]) for c in raw.columns})


_NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_BOOLEAN = {"true": True, "false": False}


def _typed(column: pd.Series) -> pd.Series:
    """A text column as integers, floats or booleans when every value is one, else text.

    Floats go through Python's ``float``, which is correctly rounded: a value written
    with ``repr`` reads back exactly.
    """
    present = column.dropna()
    if len(present) == 0:
        return column.astype("float64")
    values = present.to_numpy(dtype=object)
    lowered = {v.strip().lower() for v in values[:1000]}
    if lowered <= _BOOLEAN.keys() and all(v.strip().lower() in _BOOLEAN for v in values):
        out = column.map(lambda v: _BOOLEAN[v.strip().lower()] if isinstance(v, str) else v)
        return out.astype("boolean") if column.isna().any() else out.astype(bool)
    if all(_INTEGER.match(v) for v in values):
        ints = [int(v) for v in values]
        if all(-(2**63) <= i < 2**63 for i in ints):
            dtype = "Int64" if column.isna().any() else "int64"
            return pd.Series(
                pd.array(
                    column.map(lambda v: int(v) if isinstance(v, str) else None), dtype="Int64"
                ),
                index=column.index,
            ).astype(dtype)
        return column
    try:
        floats = values.astype(np.float64)
    except ValueError:
        return column
    out = pd.Series(np.nan, index=column.index, dtype="float64")
    out[present.index] = floats
    return out


def _csv_error(p: Path, name: str, width: int, e: Exception) -> InvalidInput:
    # pandas names the line but not always the data row; find the first row whose
    # field count is wrong with the csv module, which counts the same way.
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        try:
            for row_number, row in enumerate(reader, start=1):
                if len(row) != width:
                    return InvalidInput(
                        f"expected {width} fields, found {len(row)} "
                        f"(line {reader.line_num} of the file)",
                        file=name,
                        row=row_number,
                    )
        except csv.Error as err:
            return InvalidInput(f"malformed CSV: {err}", file=name, row=reader.line_num - 1)
    return InvalidInput(f"malformed CSV: {e}", file=name)


def _read_parquet(p: Path, name: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInput(f"not a readable Parquet file: {e}", file=name) from None
    return table.to_pandas()


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
    return pd.DataFrame.from_records(records)
