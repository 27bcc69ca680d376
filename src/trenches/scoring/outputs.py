"""The output file of a scoring job, written a slice at a time under a temporary name
and renamed (or uploaded) when the last slice is in: the file appears whole or not at
all.

Every slice is written with the columns and types of the first (a column the first
slice had all null is text); a later slice whose values do not fit is an error naming
its file and column.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from trenches.errors import InvalidInput
from trenches.scoring.inputs import Slice, format_of


class Output:
    """The file ``path`` (``.parquet``, ``.csv`` or ``.jsonl``), being written:
    ``with Output(path) as out: out.write(table, part)``. A URL (``s3://...``) is
    written to a local temporary file and uploaded at the end: an object appears whole
    when its upload is done."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.format = format_of(self.path)
        self.remote = "://" in self.path
        if self.remote:
            made, name = tempfile.mkstemp(prefix="trenches-score-", suffix=".part")
            os.close(made)
            self.part = Path(name)
        else:
            where = Path(self.path)
            if not where.parent.is_dir():
                raise InvalidInput(
                    f"there is no folder {str(where.parent)!r} to write to", file=self.path
                )
            self.part = where.with_name(f".{where.name}.part")
        self.rows = 0
        self._schema: Any = None
        self._writer: Any = None
        self._file: Any = None

    def __enter__(self) -> Output:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._close()
            if exc is None:
                self._publish()
        finally:
            self.part.unlink(missing_ok=True)

    def _publish(self) -> None:
        """The written file under its name: renamed, or uploaded."""
        if not self.remote:
            os.replace(self.part, self.path)
            return
        import fsspec

        fs, there = fsspec.core.url_to_fs(self.path)
        try:
            fs.put_file(str(self.part), there)
        except OSError as e:
            raise InvalidInput(f"cannot write it: {e}", file=self.path) from None

    def write(self, table: Any, part: Slice) -> None:
        """Append the rows of ``table`` (an Arrow table), made of the rows of ``part``."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        if self._schema is None:
            self._schema = pa.schema(
                [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
            )
            if self.format == "parquet":
                self._writer = pq.ParquetWriter(self.part, self._schema)
            elif self.format == "csv":
                self._writer = pacsv.CSVWriter(self.part, self._schema)
            else:
                self._file = self.part.open("wb")
        table = self._fitted(table, part)
        if self._writer is not None:
            self._writer.write_table(table)
        else:
            rows = table.to_pylist()
            self._file.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        self.rows += table.num_rows

    def _fitted(self, table: Any, part: Slice) -> Any:
        """``table`` with the columns and types of the file's first slice."""
        import pyarrow as pa

        if table.schema.equals(self._schema):
            return table
        for want, got in zip(self._schema, table.schema, strict=True):
            if want.type == got.type:
                continue
            try:
                table = table.set_column(
                    table.schema.get_field_index(got.name), want, table[got.name].cast(want.type)
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise InvalidInput(
                    f"{part.where}: its values are of the type {got.type}, where the rows "
                    f"before were {want.type}; give files whose columns keep one type, or "
                    "a larger --chunk-size",
                    file=part.path,
                    field=got.name,
                ) from None
        return table

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
