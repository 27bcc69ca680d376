"""The input files of a scoring job, cut into slices of rows that a task reads by itself
(by path: a local file or any fsspec URL, ``s3://...``), so that no row goes through
the scheduler and no file has to fit in memory.

A Parquet file is cut by row numbers, from its footer alone. A CSV or JSON lines file
is scanned once for where its rows end (a newline outside double quotes; blank lines
are not rows), a few MiB at a time with NumPy: a slice is then a range of bytes that
starts on a row, so a quoted field that holds a newline stays whole, and every row
knows its number for the errors that name it.
"""

from __future__ import annotations

import csv
import glob
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson

from trenches.errors import InvalidInput
from trenches.patterns.ingest import FORMATS

#: Bytes scanned at a time for the ends of rows.
_BLOCK = 1 << 22
_NEWLINE, _QUOTE, _CR = 10, 34, 13


@dataclass(frozen=True)
class Slice:
    """Rows ``first_row`` to ``first_row + rows - 1`` (counted from 1, as a person
    counts data rows) of the file ``path``: bytes ``start`` to ``stop`` of a CSV or
    JSON lines file, or those rows of a Parquet file."""

    path: str
    format: str
    first_row: int
    rows: int
    start: int
    stop: int
    #: A CSV file's column names (its header, which the slice does not hold).
    header: tuple[str, ...] | None = None

    @property
    def last_row(self) -> int:
        return self.first_row + self.rows - 1

    @property
    def where(self) -> str:
        """The slice's rows, for a message."""
        return f"rows {self.first_row} to {self.last_row}"


@dataclass(frozen=True)
class InputFile:
    """One input file: its columns (None for JSON lines, whose keys only its rows
    tell), its rows and the slices it is read in."""

    path: str
    format: str
    columns: tuple[str, ...] | None
    rows: int
    slices: tuple[Slice, ...]


def matching(pattern: str) -> list[str]:
    """The files ``pattern`` (a path or URL, or a glob of them) names, sorted; none is
    an error naming the pattern, and so is a file whose format its suffix does not
    tell."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(pattern)
    try:
        if glob.has_magic(pattern):
            found = fs.glob(root, detail=True)
            paths = sorted(p for p, info in found.items() if info.get("type") == "file")
        else:
            paths = [root] if fs.isfile(root) else []
    except OSError as e:
        raise InvalidInput(f"cannot list it: {e}", file=pattern) from None
    if not paths:
        what = "no file matches it" if glob.has_magic(pattern) else "no such file"
        raise InvalidInput(what, file=pattern)
    remote = "://" in pattern
    named = [fs.unstrip_protocol(p) if remote else p for p in paths]
    for path in named:
        format_of(path)
    return named


def format_of(path: str) -> str:
    """The format of the file ``path`` (csv, parquet or jsonl), from its suffix."""
    suffix = PurePosixPath(path).suffix
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise InvalidInput(
            f"cannot tell the format from the extension {suffix!r}; use .csv, .parquet or .jsonl",
            file=path,
        )
    return fmt


def plan(path: str, rows: int) -> InputFile:
    """The file ``path`` cut into slices of up to ``rows`` rows: what a task reads."""
    import fsspec

    fmt = format_of(path)
    try:
        with fsspec.open(path, "rb") as f:
            if fmt == "parquet":
                return _plan_parquet(path, f, rows)
            return _plan_text(path, fmt, f, rows)
    except OSError as e:
        raise InvalidInput(f"cannot read it: {e}", file=path) from None


def _plan_parquet(path: str, f: Any, rows: int) -> InputFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(f)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInput(f"not a readable Parquet file: {e}", file=path) from None
    total = parquet.metadata.num_rows
    slices = tuple(
        Slice(path, "parquet", start + 1, min(rows, total - start), start, start + rows)
        for start in range(0, total, rows)
    )
    return InputFile(path, "parquet", tuple(parquet.schema_arrow.names), total, slices)


def _plan_text(path: str, fmt: str, f: Any, rows: int) -> InputFile:
    """Slices of a CSV or JSON lines file, from the ends of its rows."""
    scan = _Scan(quoted=fmt == "csv", header=fmt == "csv", every=rows)
    for block in iter(lambda: f.read(_BLOCK), b""):
        scan.feed(np.frombuffer(block, dtype=np.uint8))
    scan.close()
    header: tuple[str, ...] | None = None
    if fmt == "csv":
        f.seek(0)
        header = _csv_header(path, f.read(scan.data_start) if scan.data_start else b"")
    starts = [scan.data_start, *scan.cuts]
    stops = [*scan.cuts, scan.size]
    slices = tuple(
        Slice(path, fmt, k * rows + 1, min(rows, scan.rows - k * rows), a, b, header)
        for k, (a, b) in enumerate(zip(starts, stops, strict=True))
        if k * rows < scan.rows
    )
    return InputFile(path, fmt, header, scan.rows, slices)


class _Scan:
    """Where the rows of a text file end, a block of bytes at a time: a newline outside
    double quotes (``quoted``, CSV's rule; a quote within a field is written twice, so
    the count of quotes before a newline is even outside one), and not after a blank
    line. ``cuts``: the byte after every ``every``-th data row; with ``header``, the
    first row is the header and the data starts at ``data_start``."""

    def __init__(self, *, quoted: bool, header: bool, every: int) -> None:
        self.quoted, self.every = quoted, every
        self.want_header = header
        self.data_start = 0
        self.cuts: list[int] = []
        self.rows = 0
        self.size = 0
        self._odd = 0  # quotes seen so far, mod 2
        self._last_end = -1  # where the row before ended (its newline)
        self._last_byte = -1

    def feed(self, block: np.ndarray) -> None:
        at = np.flatnonzero(block == _NEWLINE)
        if self.quoted:
            quotes = block == _QUOTE
            if quotes.any():
                before = np.cumsum(quotes, dtype=np.int64)
                at = at[(before[at] + self._odd) % 2 == 0]
                self._odd = int(before[-1] + self._odd) % 2
            elif self._odd:  # the whole block is inside a quoted field
                at = at[:0]
        ends = at.astype(np.int64) + self.size
        starts = np.concatenate([[self._last_end + 1], ends[:-1] + 1])
        first = block[np.minimum(np.maximum(starts - self.size, 0), len(block) - 1)].astype(
            np.int16
        )
        first[starts < self.size] = self._last_byte
        blank = (ends == starts) | ((ends == starts + 1) & (first == _CR))
        self._rows_ending(ends[~blank])
        if len(ends):
            self._last_end = int(ends[-1])
        self.size += len(block)
        if len(block):
            self._last_byte = int(block[-1])

    def close(self) -> None:
        """The last row, when the file does not end with a newline."""
        start = self._last_end + 1
        if self.size > start and not (self.size == start + 1 and self._last_byte == _CR):
            self._rows_ending(np.array([self.size - 1], dtype=np.int64))
            if self.cuts and self.cuts[-1] >= self.size:
                self.cuts.pop()

    def _rows_ending(self, ends: np.ndarray) -> None:
        if self.want_header and len(ends):
            self.data_start = int(ends[0]) + 1
            self.want_header = False
            ends = ends[1:]
        numbers = np.arange(self.rows + 1, self.rows + 1 + len(ends))
        self.cuts += (ends[numbers % self.every == 0] + 1).tolist()
        self.rows += len(ends)


def _csv_header(path: str, data: bytes) -> tuple[str, ...]:
    """A CSV file's column names, from its first row."""
    if not data.strip():
        raise InvalidInput("the file is empty: it has no header", file=path)
    try:
        names = next(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")), [])
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the header is not UTF-8 text ({e.reason})", file=path) from None
    except csv.Error as e:
        raise InvalidInput(f"cannot read the header: {e}", file=path) from None
    seen = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"column {name!r} appears more than once in the header", file=path)
        seen.add(name)
    return tuple(names)


# --- reading a slice --------------------------------------------------------------------


def read(part: Slice, columns: Sequence[str] | None, *, needed: Sequence[str] = ()) -> Any:
    """The ``columns`` of a slice's rows (None: all of them) as an Arrow table: a CSV
    file's values as their text, a Parquet file's as its types, a JSON lines file's as
    Arrow infers them from the slice. A column of ``needed`` that the file does not
    have (for JSON lines: that no row of the slice has) is an error naming it; another
    missing from JSON lines rows is null."""
    import fsspec

    try:
        if part.format == "parquet":
            return _read_parquet(part, columns)
        with fsspec.open(part.path, "rb") as f:
            f.seek(part.start)
            data = f.read(part.stop - part.start)
    except OSError as e:
        raise InvalidInput(f"cannot read it: {e}", file=part.path) from None
    if part.format == "csv":
        return _read_csv(part, data, columns)
    return _read_jsonl(part, data, columns, needed)


def _read_parquet(part: Slice, columns: Sequence[str] | None) -> Any:
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    with fsspec.open(part.path, "rb") as f:
        try:
            parquet = pq.ParquetFile(f)
            meta = parquet.metadata
            groups, first, offset = [], None, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if offset + n > part.start and offset < part.start + part.rows:
                    groups.append(g)
                    first = offset if first is None else first
                offset += n
            table = parquet.read_row_groups(groups, columns=columns, use_threads=False)
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidInput(f"{part.where}: cannot read them: {e}", file=part.path) from None
    return table.slice(part.start - (first or 0), part.rows)


def _read_csv(part: Slice, data: bytes, columns: Sequence[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    assert part.header is not None
    bad: list[Any] = []

    def refuse(row: Any) -> str:
        bad.append(row)
        return "error"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=list(part.header), use_threads=False),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=refuse),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(part.header, pa.string()),
                include_columns=None if columns is None else list(columns),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError) as e:
        if bad:
            row = bad[0]
            at = None if row.number is None or row.number < 0 else part.first_row + row.number - 1
            raise InvalidInput(
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                file=part.path,
                row=at,
            ) from None
        reason = str(e).removeprefix("CSV conversion error to string: ")
        raise InvalidInput(f"{part.where}: malformed CSV: {reason}", file=part.path) from None
    if table.num_rows != part.rows:  # an unclosed quote runs to the end of the file
        raise InvalidInput(
            f"{part.where}: malformed CSV: {table.num_rows} rows read where the file has "
            f"{part.rows} (a quote left open?)",
            file=part.path,
        )
    return table


def _read_jsonl(
    part: Slice, data: bytes, columns: Sequence[str] | None, needed: Sequence[str]
) -> Any:
    import pyarrow as pa

    records: list[dict[str, Any]] = []
    for line in data.split(b"\n"):
        if line in (b"", b"\r"):
            continue
        row = part.first_row + len(records)
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise InvalidInput(f"not valid JSON: {e}", file=part.path, row=row) from None
        if not isinstance(record, dict):
            raise InvalidInput(
                f"each line must be a JSON object, found {type(record).__name__}",
                file=part.path,
                row=row,
            )
        records.append(record)
    names = list(dict.fromkeys(k for r in records for k in r)) if columns is None else columns
    for name in needed:
        if not any(name in r for r in records):
            raise InvalidInput(
                f"{part.where}: no row has the field the model takes", file=part.path, field=name
            )
    return pa.table({n: _json_array([r.get(n) for r in records]) for n in names})


def _json_array(values: list[Any]) -> Any:
    """One field of JSON lines rows as an Arrow array: of the type Arrow infers, or of
    the values' JSON text when they are of no one type."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values],
            pa.string(),
        )


def slices_of(files: Sequence[InputFile]) -> Iterator[Slice]:
    """Every slice of ``files``, in order."""
    for f in files:
        yield from f.slices
