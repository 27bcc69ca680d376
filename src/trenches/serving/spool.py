"""The request log's files: spool files (records waiting for the database) and
rejected files (records set aside, each with the reason), one JSON object a line.

A spool file starts with a line naming its database (``{"kind": "store", "url": ...}``),
then one record a line: ``{"kind": "request", ...}`` or ``{"kind": "feedback", ...}``,
with the columns of ``served_requests`` and ``feedback``. A rejected file holds the
same records, each followed by a tab and ``{"error": "the reason"}``.

Records are appended whole: a write that fails part-way (a full disk) is cut back to
the end of the last whole record, so a file ends in half a record only if its process
was killed while writing it; a reader sets such a tail aside.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

try:  # POSIX: a spool file is claimed with a lock its writer holds while alive
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The columns of a record of each kind, in the order of its row tuple; the fields
#: holding JSON text are written as JSON, not as a string.
COLUMNS = {
    "request": (
        "request_id",
        "version_id",
        "endpoint",
        "n",
        "inputs",
        "outputs",
        "latency_us",
        "received_at",
    ),
    "feedback": ("request_id", "row", "label", "rating", "comment", "created_at"),
}
_JSON_FIELDS = frozenset({"inputs", "outputs", "label"})
#: Bytes written at once when appending many records.
_CHUNK = 256 * 1024


def encode(kind: str, row: Sequence[Any]) -> bytes:
    """One record as a spool line. Raises TypeError for a value JSON lines cannot
    carry back exactly (an integer beyond 64 bits)."""
    record: dict[str, Any] = {"kind": kind}
    for name, value in zip(COLUMNS[kind], row, strict=True):
        as_json = name in _JSON_FIELDS and value is not None
        record[name] = orjson.Fragment(value) if as_json else value
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


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
    """One record as a line of a rejected file: as a spool line if it can be one, else
    with :func:`encode_anything`."""
    with contextlib.suppress(TypeError):  # not a spool line: written field by field
        return encode(kind, row)
    fields = {}
    for name, value in zip(COLUMNS[kind], row, strict=False):
        if name in _JSON_FIELDS and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = orjson.loads(value)
        fields[name] = value
    return encode_anything(kind, fields)


def parse(line: bytes) -> tuple[str, tuple[Any, ...]]:
    """A spool line back as (kind, row tuple); raises ValueError, KeyError or TypeError
    if it is malformed."""
    d = orjson.loads(line)
    kind = d["kind"]
    if kind == "request":
        return kind, (
            str(d["request_id"]),
            int(d["version_id"]),
            str(d["endpoint"]),
            int(d["n"]),
            orjson.dumps(d["inputs"]).decode(),
            orjson.dumps(d["outputs"]).decode(),
            int(d["latency_us"]),
            int(d["received_at"]),
        )
    if kind == "feedback":
        label = d["label"]
        return kind, (
            str(d["request_id"]),
            int(d["row"]),
            None if label is None else orjson.dumps(label).decode(),
            None if d["rating"] is None else float(d["rating"]),
            d["comment"],
            int(d["created_at"]),
        )
    raise ValueError(f"unknown kind {kind!r}")


def header(url: str) -> bytes:
    """The first line of a spool file: the database its records belong to."""
    return orjson.dumps({"kind": "store", "url": url}, option=orjson.OPT_APPEND_NEWLINE)


def header_url(line: bytes) -> str | None:
    """The database a first line names, or None if it is a record, not a header."""
    if not line.startswith(b'{"kind":"store"'):
        return None
    try:
        return str(orjson.loads(line).get("url"))
    except ValueError:
        return ""


def rejected_line(record: bytes, reason: str) -> bytes:
    """A line of a rejected file: the record, a tab, and the reason."""
    return record.rstrip(b"\n") + b"\t" + orjson.dumps({"error": reason}) + b"\n"


def claim(fd: int) -> bool:
    """Lock a spool file for this process; False when a live process holds it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _chunks(lines: Sequence[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += len(line)
        if size >= _CHUNK:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def append(fd: int, lines: Sequence[bytes], size: int) -> tuple[int, int, OSError | None]:
    """Append whole ``lines`` to the file open (``O_APPEND``) at ``fd``, now ``size``
    bytes long: as many as there is room for. A write that fails part-way (a full disk)
    is cut back to the end of the last whole line. Returns the number of lines written,
    the file's new size, and the error that stopped the rest, if one did."""
    done = 0
    for chunk in _chunks(lines):
        if _write_whole(fd, b"".join(chunk), size) is None:
            size += sum(map(len, chunk))
            done += len(chunk)
            continue
        for line in chunk:  # no room for all: for how many?
            error = _write_whole(fd, line, size)
            if error is not None:
                return done, size, error
            size += len(line)
            done += 1
    return done, size, None


def _write_whole(fd: int, data: bytes, size: int) -> OSError | None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as e:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        return e
    return None


def append_to(path: Path, lines: Sequence[bytes]) -> OSError | None:
    """Append whole ``lines`` to the file at ``path`` (made if missing, with its
    folder): all of them, or (on an error, returned) none."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        return e
    try:
        size = os.fstat(fd).st_size
        done, _, error = append(fd, lines, size)
        if error is not None and done:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
    finally:
        os.close(fd)
    if error is not None and size == 0:
        path.unlink(missing_ok=True)
    return error
