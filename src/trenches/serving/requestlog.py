"""The request log: every served prediction, and feedback on it, written to the store
off the request path.

``put`` appends to an in-memory queue and returns. A writer thread takes the queue in
batches and writes each batch in one transaction, through an engine of its own whose
busy timeout is short: a locked or unreachable database makes a batch fail within
about a second; the batch is kept and retried with backoff, never dropped.

Memory is bounded: while the database stays away the queue fills to ``max_queue``;
past that, ``put`` appends to a JSON-lines spool file of this process
(``requests-<pid>-<start>.jsonl`` under ``spool_dir``). Spool files are loaded back
(written to the database, then deleted) when the database answers again, by the next
log that starts, and at a graceful stop. Loading back inserts-or-ignores on
``request_id`` (and on request, row and time for feedback), so a file loaded twice, or
a crash between the insert and the delete, stores nothing twice. ``stop`` writes
everything; what it cannot write before its timeout goes to the spool file.

A row the database refuses for good (a request id longer than the column, a version
that does not exist) is set aside in ``rejected-<pid>-<start>.jsonl`` with the reason,
so one bad row neither blocks the log nor is lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import select

from trenches import config, timestamps
from trenches.db import schema as t
from trenches.db.engine import bulk_insert, insert_ignore_many, make_engine, write

try:  # POSIX: a spool file is claimed with a lock its writer holds while alive
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("trenches.serve.requests")

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_REQUEST_COLUMNS = (
    "request_id",
    "version_id",
    "endpoint",
    "n",
    "inputs",
    "outputs",
    "latency_us",
    "received_at",
)
_FEEDBACK_COLUMNS = ("request_id", "row", "label", "rating", "comment", "created_at")
#: Seconds between retries of a failed batch: doubled after each failure, up to the max.
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 5.0


class _Refused(Exception):
    """The database refuses a row for good (a constraint, a value too long): retrying
    the same row would fail forever."""


def _refused(e: BaseException) -> bool:
    # Through SQLAlchemy or straight from the driver's cursor (bulk paths): DB-API
    # drivers all name these two classes the same.
    return any(c.__name__ in ("IntegrityError", "DataError") for c in type(e).__mro__)


@dataclass
class LoggedRequest:
    """One served request, as the server hands it to the log."""

    request_id: str
    version_id: int
    endpoint: str  # "v2" | "invocations" | "predict"
    n: int
    #: Called by the writer, not on the request path: {"columns": [...], "data": [[...]]}.
    inputs: Callable[[], dict[str, Any]]
    #: {"labels": list | None, "scores": np.ndarray | None, "values": list | None}
    outputs: dict[str, Any]
    latency_us: int
    received_at: int  # µs since the epoch


@dataclass
class LoggedFeedback:
    """A true label or a rating for one row of a served request."""

    request_id: str
    row: int
    label: Any  # a JSON value or None
    rating: float | None
    comment: str | None
    created_at: int


@dataclass
class _Batch:
    """Rows ready for the database (JSON already made): what a failed write keeps."""

    requests: list[tuple[Any, ...]] = field(default_factory=list)
    feedback: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.requests) + len(self.feedback)

    def split(self) -> Iterator[_Batch]:
        for r in self.requests:
            yield _Batch(requests=[r])
        for f in self.feedback:
            yield _Batch(feedback=[f])


def _default(value: Any) -> Any:
    # What orjson cannot write by itself: numpy views and scalars, anything else as text.
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=_JSON).decode()


def _request_row(item: LoggedRequest) -> tuple[Any, ...]:
    try:
        inputs = _dumps(item.inputs())
    except Exception as e:  # the request is kept, even if its inputs cannot be
        log.error("request %s: its inputs could not be logged: %r", item.request_id, e)
        inputs = _dumps({"columns": [], "data": [], "error": f"{type(e).__name__}: {e}"})
    try:
        outputs = _dumps(item.outputs)
    except Exception as e:
        log.error("request %s: its outputs could not be logged: %r", item.request_id, e)
        outputs = _dumps({"labels": None, "scores": None, "values": None, "error": str(e)})
    return (
        item.request_id,
        int(item.version_id),
        item.endpoint,
        int(item.n),
        inputs,
        outputs,
        int(item.latency_us),
        int(item.received_at),
    )


def _feedback_row(item: LoggedFeedback) -> tuple[Any, ...]:
    return (
        item.request_id,
        int(item.row),
        None if item.label is None else _dumps(item.label),
        None if item.rating is None else float(item.rating),
        item.comment,
        int(item.created_at),
    )


def _to_batch(items: list[LoggedRequest | LoggedFeedback], *, polite: bool = False) -> _Batch:
    batch = _Batch()
    rows = 0
    for item in items:
        # Let the request threads have the GIL every 64 input rows: without this, a put
        # can wait for the writer's whole batch to be serialised (a batch of large
        # requests held it for tens of milliseconds).
        rows += item.n if isinstance(item, LoggedRequest) else 1
        if polite and rows >= 64:
            rows = 0
            time.sleep(0)
        if isinstance(item, LoggedFeedback):
            batch.feedback.append(_feedback_row(item))
        else:
            batch.requests.append(_request_row(item))
    return batch


# --- the spool file: one JSON object a line ---------------------------------------------


def _spool_lines(batch: _Batch) -> list[bytes]:
    out = []
    for rid, version_id, endpoint, n, inputs, outputs, latency_us, received_at in batch.requests:
        record = {
            "kind": "request",
            "request_id": rid,
            "version_id": version_id,
            "endpoint": endpoint,
            "n": n,
            "inputs": orjson.Fragment(inputs),
            "outputs": orjson.Fragment(outputs),
            "latency_us": latency_us,
            "received_at": received_at,
        }
        out.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    for rid, row, label, rating, comment, created_at in batch.feedback:
        record = {
            "kind": "feedback",
            "request_id": rid,
            "row": row,
            "label": None if label is None else orjson.Fragment(label),
            "rating": rating,
            "comment": comment,
            "created_at": created_at,
        }
        out.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
    return out


def _parse_line(line: bytes, batch: _Batch) -> None:
    """Add one spool line to ``batch``; raises ValueError (or KeyError) if malformed."""
    d = orjson.loads(line)
    if d["kind"] == "request":
        batch.requests.append(
            (
                str(d["request_id"]),
                int(d["version_id"]),
                str(d["endpoint"]),
                int(d["n"]),
                orjson.dumps(d["inputs"]).decode(),
                orjson.dumps(d["outputs"]).decode(),
                int(d["latency_us"]),
                int(d["received_at"]),
            )
        )
    elif d["kind"] == "feedback":
        label = d["label"]
        batch.feedback.append(
            (
                str(d["request_id"]),
                int(d["row"]),
                None if label is None else orjson.dumps(label).decode(),
                None if d["rating"] is None else float(d["rating"]),
                d["comment"],
                int(d["created_at"]),
            )
        )
    else:
        raise ValueError(f"unknown kind {d['kind']!r}")


def _header(url: str) -> bytes:
    return orjson.dumps({"kind": "store", "url": url}, option=orjson.OPT_APPEND_NEWLINE)


def _claim(fh: IO[bytes]) -> bool:
    """Lock a spool file for this process; False when a live process holds it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


# --- the log ------------------------------------------------------------------------------


class RequestLog:
    """Writes served requests and feedback to the store in batches, off the request path.

    ``url``: the store's database (anything :func:`trenches.open` takes). ``batch``:
    rows per transaction; ``interval``: seconds the writer waits for a batch to fill;
    ``max_queue``: items held in memory before ``put`` spills to the spool file;
    ``busy_timeout``: seconds a write waits for a lock before it fails and is retried.
    """

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        *,
        batch: int = 1000,
        interval: float = 0.25,
        max_queue: int = 50_000,
        busy_timeout: float = 1.0,
    ) -> None:
        self._engine = make_engine(config.resolve(url).db_url, busy_timeout=busy_timeout)
        self._spool_dir = Path(spool_dir)
        self._batch = max(1, int(batch))
        self._interval = interval
        self._max_queue = max(0, int(max_queue))
        self._busy_timeout = busy_timeout
        stamp = f"{os.getpid()}-{timestamps.now_us()}"
        self._spool_path = self._spool_dir / f"requests-{stamp}.jsonl"
        # The first line of a spool file names its database: a spool folder shared by
        # servers of different stores loads each file into its own store only.
        self._store_url = self._engine.url.render_as_string(hide_password=True)
        self._rejected_path = self._spool_dir / f"rejected-{stamp}.jsonl"

        self._queue: deque[LoggedRequest | LoggedFeedback] = deque()
        self._pending: _Batch | None = None  # taken off the queue, not yet stored
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._closed = False
        self._thread: threading.Thread | None = None

        self._spool_lock = threading.Lock()
        self._spool_fh: IO[bytes] | None = None
        self._spool_loaded = 0  # bytes of this process's spool file already stored
        self._spool_due = True  # look for spool files (from before, or spilled since)
        self._outage = False

        self._written = 0
        self._spilled = 0
        self._loaded_back = 0
        self._failures = 0

    # --- the interface the server uses ----------------------------------------------------

    def start(self) -> None:
        """Start the writer thread. Spool files left by earlier processes are loaded
        back by it as soon as the database takes writes, so starting never waits."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="trenches-request-log", daemon=True)
        self._thread.start()

    def put(self, item: LoggedRequest | LoggedFeedback) -> None:
        """Log one request or feedback: an append to the queue; never blocks on the
        database and never raises because of it."""
        if self._closed or len(self._queue) >= self._max_queue:
            try:
                self._spill([item])
            except Exception:  # never the caller's problem; memory still holds it
                log.exception("request log: cannot spool a request")
                self._failures += 1
                self._queue.append(item)
            return
        self._queue.append(item)
        if len(self._queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything to the database, waiting up to ``timeout`` seconds; what
        cannot be written by then goes to the spool file, to be loaded back later."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        # A write in flight at the deadline ends within the busy timeout.
        self._thread.join(timeout + self._busy_timeout + 5)
        self._closed = True
        leftover = _Batch()
        if self._thread.is_alive():
            # The writer is stuck in the driver (a hung network): keep its batch too. If
            # its write does go through, loading the spool back stores nothing twice.
            log.error("request log: the writer did not finish; spooling what it held")
            pending = self._pending
            if pending is not None:
                leftover.requests += pending.requests
                leftover.feedback += pending.feedback
        self._spill_queue(leftover)
        with self._spool_lock:
            if self._spool_fh is not None:
                self._spool_fh.flush()
                os.fsync(self._spool_fh.fileno())
                self._spool_fh.close()
                self._spool_fh = None
        self._engine.dispose()

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: queued (in memory now), written (rows stored), spilled
        (rows sent to the spool file), loaded_back (spooled rows stored), failures
        (failed writes, refused rows, unreadable spool lines)."""
        pending = self._pending
        return {
            "queued": len(self._queue) + (len(pending) if pending is not None else 0),
            "written": self._written,
            "spilled": self._spilled,
            "loaded_back": self._loaded_back,
            "failures": self._failures,
        }

    # --- the writer thread ----------------------------------------------------------------

    def _past_deadline(self) -> bool:
        return self._stopping.is_set() and time.monotonic() >= self._deadline

    def _run(self) -> None:
        backoff = _MIN_BACKOFF
        while not self._past_deadline():
            if (
                self._pending is None
                and not self._stopping.is_set()
                and len(self._queue) < self._batch
            ):
                self._wake.wait(self._interval)
                self._wake.clear()
            try:
                if self._pending is None:
                    self._pending = self._take()
                if self._pending is not None:
                    self._pending = self._store(self._pending)
                elif self._spool_due:
                    self._load_spools()
                elif self._stopping.is_set():
                    return
                else:
                    continue
                trouble = self._outage
            except Exception:
                # A bug must not end the writer, or what it holds would never be stored.
                log.exception("request log: unexpected error in the writer")
                self._failures += 1
                trouble = True
            if trouble:
                self._sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _MIN_BACKOFF
        # Stopping, and the database is still away: nothing stays in memory.
        leftover = self._pending or _Batch()
        self._pending = None
        self._spill_queue(leftover)

    def _spill_queue(self, leftover: _Batch) -> None:
        """Spool ``leftover`` and everything still queued."""
        items: list[LoggedRequest | LoggedFeedback] = []
        while self._queue:
            items.append(self._queue.popleft())
        more = _to_batch(items)
        leftover.requests += more.requests
        leftover.feedback += more.feedback
        if len(leftover):
            self._spill_batch(leftover)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.is_set():
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._stopping.wait(seconds)

    def _take(self) -> _Batch | None:
        items: list[LoggedRequest | LoggedFeedback] = []
        while self._queue and len(items) < self._batch:
            items.append(self._queue.popleft())
        return _to_batch(items, polite=True) if items else None

    def _store(self, batch: _Batch) -> _Batch | None:
        """Write ``batch`` in one transaction; returns what is left to write (None when
        all is stored). Rows the database refuses for good are set aside."""
        try:
            self._write(batch)
        except _Refused:
            # Some row is refused: write one row at a time to keep all the others.
            rest = list(batch.split())
            while rest:
                one = rest[0]
                try:
                    self._write(one)
                except _Refused as e:
                    self._reject(one, e.__cause__ or e)
                except Exception as e:
                    self._failed(e)
                    left = _Batch()
                    for b in rest:
                        left.requests += b.requests
                        left.feedback += b.feedback
                    return left
                rest.pop(0)
            self._recovered()
            return None
        except Exception as e:
            self._failed(e)
            return batch
        self._recovered()
        return None

    def _write(self, batch: _Batch) -> None:
        try:
            self._transaction(batch)
        except Exception as e:
            if _refused(e):
                raise _Refused(str(e)) from e
            raise
        self._written += len(batch)

    def _transaction(self, batch: _Batch) -> None:
        with write(self._engine) as conn:
            insert_ignore_many(
                conn, t.served_requests, _REQUEST_COLUMNS, batch.requests, key=("request_id",)
            )
            if batch.feedback:
                # Feedback has no natural key: (request, row, time) is taken as one, so a
                # spool loaded twice or a retried commit adds nothing.
                f = t.feedback.c
                ids = sorted({r[0] for r in batch.feedback})
                seen = {
                    tuple(r)
                    for r in conn.execute(
                        select(f.request_id, f.row, f.created_at).where(f.request_id.in_(ids))
                    )
                }
                fresh = []
                for r in batch.feedback:
                    key = (r[0], r[1], r[5])
                    if key not in seen:
                        seen.add(key)
                        fresh.append(r)
                bulk_insert(conn, t.feedback, _FEEDBACK_COLUMNS, fresh)

    def _failed(self, e: BaseException) -> None:
        self._failures += 1
        if not self._outage:
            log.warning(
                "request log: cannot write to the database (%s); requests wait in memory "
                "(then in %s) and are retried",
                e,
                self._spool_dir,
            )
        self._outage = True

    def _recovered(self) -> None:
        if self._outage:
            log.info("request log: the database takes writes again")
            self._outage = False
            self._spool_due = True  # what was spilled meanwhile, and files of dead peers

    def _reject(self, batch: _Batch, e: BaseException) -> None:
        self._failures += 1
        reason = str(getattr(e, "orig", None) or e).strip()
        log.error(
            "request log: the database refuses a row (%s); it is kept in %s",
            reason,
            self._rejected_path,
        )
        try:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
            with self._rejected_path.open("ab") as fh:
                for line in _spool_lines(batch):
                    fh.write(line[:-1] + b"\t" + orjson.dumps({"error": reason}) + b"\n")
        except OSError as oe:
            log.error("request log: cannot write %s: %s", self._rejected_path, oe)

    # --- spilling and loading back ----------------------------------------------------------

    def _spill(self, items: list[LoggedRequest | LoggedFeedback]) -> None:
        self._spill_batch(_to_batch(items), items)

    def _spill_batch(
        self, batch: _Batch, items: list[LoggedRequest | LoggedFeedback] | None = None
    ) -> None:
        lines = _spool_lines(batch)
        try:
            with self._spool_lock:
                if self._spool_fh is None:
                    self._spool_dir.mkdir(parents=True, exist_ok=True)
                    fh = self._spool_path.open("ab")
                    _claim(fh)
                    if fh.tell() == 0:
                        fh.write(_header(self._store_url))
                    self._spool_fh = fh
                self._spool_fh.writelines(lines)
                self._spool_fh.flush()
        except OSError as e:
            # No room on disk either: memory is the last place that loses nothing.
            self._failures += 1
            log.error("request log: cannot write the spool file %s: %s", self._spool_path, e)
            if items is not None and not self._closed:
                self._queue.extend(items)
            return
        self._spilled += len(batch)
        self._spool_due = True

    def _load_spools(self) -> None:
        """Store the spool files in ``spool_dir``: this process's, and those no live
        process holds. Leaves ``_spool_due`` set if the database failed meanwhile."""
        self._spool_due = False
        try:
            paths = sorted(self._spool_dir.glob("requests-*.jsonl"))
        except OSError:
            paths = []
        for path in paths:
            ok = self._load_own() if path == self._spool_path else self._load_other(path)
            if not ok:
                self._spool_due = True
                return

    def _load_own(self) -> bool:
        with self._spool_lock:
            if self._spool_fh is None:
                return True
            end = self._spool_fh.tell()
        with self._spool_path.open("rb") as fh:
            fh.seek(self._spool_loaded)
            for batch, position in self._read_batches(fh, end):
                assert batch is not None
                if self._past_deadline() or self._store(batch) is not None:
                    return False
                self._loaded_back += len(batch)
                self._spool_loaded = position
        with self._spool_lock:
            assert self._spool_fh is not None
            if self._spool_fh.tell() == self._spool_loaded:
                self._spool_path.unlink(missing_ok=True)
                self._spool_fh.close()
                self._spool_fh = None
                self._spool_loaded = 0
            else:
                self._spool_due = True  # spilled to meanwhile
        return True

    def _load_other(self, path: Path) -> bool:
        try:
            fh = path.open("rb")
        except OSError:
            return True  # loaded and deleted by another process meanwhile
        with fh:
            if not _claim(fh):
                return True  # its process is alive and will load it itself
            for batch, _ in self._read_batches(fh, None):
                if batch is None:
                    return True  # another store's: left for a server of that store
                if self._past_deadline() or self._store(batch) is not None:
                    return False
                self._loaded_back += len(batch)
            path.unlink(missing_ok=True)
            log.info("request log: loaded back %s", path.name)
        return True

    def _read_batches(self, fh: IO[bytes], end: int | None) -> Iterator[tuple[_Batch | None, int]]:
        """Batches of the lines of ``fh`` up to byte ``end``, each with the position
        after its last line; a single None if the file belongs to another store."""
        batch = _Batch()
        number = 0
        while end is None or fh.tell() < end:
            line = fh.readline()
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            if number == 1 and line.startswith(b'{"kind":"store"'):
                if orjson.loads(line).get("url") != self._store_url:
                    yield None, fh.tell()
                    return
                continue
            try:
                _parse_line(line, batch)
            except (ValueError, KeyError, TypeError) as e:
                # A line cut short by a crash: what it held never reached the disk whole.
                self._failures += 1
                log.error("request log: %s, line %d is unreadable (%s)", fh.name, number, e)
            if len(batch) >= self._batch:
                yield batch, fh.tell()
                batch = _Batch()
        if len(batch):
            yield batch, fh.tell()
