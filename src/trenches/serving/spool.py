"""The request log's files: spool files (records waiting for the database) and
rejected files (records set aside, each with the reason), one JSON object a line.

A spool file starts with a line naming its database (``{"kind": "store", "url": ...}``),
then one record a line: ``{"kind": "request", ...}`` or ``{"kind": "feedback", ...}``,
with the columns of ``served_requests`` and ``feedback``. A rejected file holds the
same records, each followed by a tab and ``{"error": "the reason"}``.

A file that ends in half a record (its process was killed while writing it) is read
up to its last whole record; the tail is set aside.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
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
    try:
        return encode(kind, row)
    except TypeError:
        pass
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
