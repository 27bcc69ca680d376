"""The request log's files: spool files (records waiting for the database) and
rejected files (records set aside, each with the reason), one JSON object a line.

A spool file starts with a line naming its database (``{"kind": "store", "url": ...}``),
then one record a line, as :mod:`trenches.requests.records` encodes it:
``{"kind": "request", ...}`` or ``{"kind": "feedback", ...}``, with the fields of
``served_requests`` and ``feedback``. A rejected file holds the same records, each
followed by a tab and ``{"error": "the reason"}``.

Records are appended whole: a write that fails part-way (a full disk) is cut back to
the end of the last whole record, so a file ends in half a record only if its process
was killed while writing it; a reader sets such a tail aside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import orjson

from trenches.requests import records
from trenches.serving.batches import Batch

try:  # POSIX: a spool file is claimed with a lock its writer holds while alive
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("trenches.serve.requests")

#: Bytes written at once when appending many records.
_CHUNK = 256 * 1024


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


def open_claimed(path: Path, store_url: str) -> tuple[int, int]:
    """Open the spool file ``path`` for appending (made, with its folder, if missing)
    and claim it; its first line, naming the database ``store_url``, written if it is
    new. The descriptor and the file's size; OSError if it cannot be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    claim(fd)
    size = os.fstat(fd).st_size
    if size == 0:
        _, size, error = append(fd, [header(store_url)], 0)
        if error is not None:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise error
    return fd, size


class SpoolFile:
    """This process's spool file (``path``): records wait in it for the database.

    Opened and claimed on the first append, with a first line naming its database
    (``store_url``); loaded back by this process from where its last loading stopped.
    Appends come from request threads and the writer; loading, from the writer.
    """

    def __init__(self, path: Path, store_url: str) -> None:
        self.path = path
        self._store_url = store_url
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0  # bytes of whole records
        self._loaded = 0  # bytes already stored
        #: Records in it not yet stored.
        self.waiting = 0

    def append(self, lines: Sequence[bytes]) -> tuple[int, OSError | None]:
        """Append whole ``lines``, as many as there is room for: the number appended,
        and the error that stopped the rest, if one did."""
        with self._lock:
            try:
                fd = self._fd if self._fd is not None else self._open()
                done, self._size, error = append(fd, lines, self._size)
            except OSError as e:
                done, error = 0, e
            self.waiting += done
        return done, error

    def _open(self) -> int:
        """Open (and claim) the file, with its first line written."""
        self._fd, self._size = open_claimed(self.path, self._store_url)
        return self._fd

    def close(self) -> int:
        """Sync and close the file, deleted if no record waits in it; the number of
        records that wait in it."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return 0
            try:
                os.fsync(fd)
            except OSError as e:
                log.error("request log: cannot sync the spool file %s: %s", self.path, e)
            finally:
                os.close(fd)
            if not self.waiting:  # a first line, and no room for more
                self.path.unlink(missing_ok=True)
            return self.waiting

    def unloaded(self) -> tuple[int, int] | None:
        """The bytes not loaded back yet (from, to), or None when the file is closed."""
        with self._lock:
            return None if self._fd is None else (self._loaded, self._size)

    def stored(self, position: int, n: int) -> None:
        """``n`` records, up to byte ``position``, are stored (or set aside)."""
        with self._lock:
            self._loaded = position
            self.waiting -= n

    def finish(self) -> bool:
        """After loading back: close and delete the file if everything in it is stored;
        False when records were appended meanwhile (it stays open)."""
        with self._lock:
            assert self._fd is not None
            if self._size != self._loaded:
                return False
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
            self._loaded = self.waiting = 0
            return True


Read = tuple[Batch | None, int, list[tuple[bytes, str]]]


def read_batches(fh: IO[bytes], end: int | None, store_url: str, size: int) -> Iterator[Read]:
    """Batches of up to ``size`` records of the spool file ``fh``, read up to byte
    ``end``: each with the position after its last line and the lines among them that
    cannot be read (with the reason). A single None batch if the file belongs to
    another database than ``store_url``."""
    batch, bad = Batch(), []
    number = 0
    name = Path(str(fh.name)).name
    while end is None or fh.tell() < end:
        line = fh.readline()
        if not line:
            break
        number += 1
        if not line.endswith(b"\n"):
            why = "cut short (its process stopped while writing it)"
            bad.append((line, f"{name}, line {number}: {why}"))
            break
        if not line.strip():
            continue
        url = header_url(line) if number == 1 else None
        if url is not None:
            if url != store_url:
                yield None, fh.tell(), []
                return
            continue
        try:
            batch.append(*records.decode(line))
        except Exception as e:
            bad.append((line, f"{name}, line {number} cannot be read: {e}"))
        if len(batch) >= size:
            yield batch, fh.tell(), bad
            batch, bad = Batch(), []
    if len(batch) or bad:
        yield batch, fh.tell(), bad
