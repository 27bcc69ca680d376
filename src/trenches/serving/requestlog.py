"""The request log: every served prediction, and feedback on it, written to the store
off the request path.

``put`` appends to an in-memory queue and returns. A writer thread takes the queue in
batches and writes each batch in one transaction, through an engine of its own whose
busy timeout is short: a locked or unreachable database makes a batch fail within
about a second; the batch is kept and retried with backoff, never dropped.

Memory is bounded: while the database stays away the queue fills to ``max_queue``
items (those the writer holds included); past that, ``put`` appends to a JSON-lines
spool file of this process (``requests-<pid>-<start>.jsonl`` under ``spool_dir``; see
:mod:`.spool`), and when that cannot be written either (a full disk), drops the item:
drops are counted (``stats``, the ``on_lost`` callback) and logged once a burst. Spool files
are loaded back (written to the database, then deleted) when the database answers
again, by the next log that starts, and at a graceful stop. Loading back
inserts-or-ignores on ``request_id`` (and on request, row and time for feedback), so a
file loaded twice, or a crash between the insert and the delete, stores nothing twice.
``stop`` writes everything; what it cannot write before its timeout goes to the spool
file, and what does not fit there is counted and logged as dropped.

A row that cannot be written is set aside in ``rejected-<pid>-<start>.jsonl`` with the
reason, so that one bad row neither blocks the log nor is lost, whatever the error:
a failed batch is written again in halves, down to the rows at fault. A row is set
aside at once when the error is about a value (a constraint, an integer the column
cannot hold); when the error could be the database's as well as the row's, only after
it failed :data:`_TRIES` times while other rows were stored. Errors that are the
database's or its disk's (locked, unreachable, full) never set a row aside: the rows
wait, and are retried, for as long as it takes. So do spool lines: a line that cannot
be read, or whose row cannot be written, is set aside and the rest of its file loaded.
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
from trenches.db import faults
from trenches.db import schema as t
from trenches.db.engine import bulk_insert, insert_ignore_many, make_engine, write
from trenches.serving import spool

log = logging.getLogger("trenches.serve.requests")

_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_REQUEST_COLUMNS = spool.COLUMNS["request"]
_FEEDBACK_COLUMNS = spool.COLUMNS["feedback"]
#: Seconds between retries of a failed batch: doubled after each failure, up to the max.
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 5.0
#: Failed writes of a batch, for an error that may be about its rows, before its rows
#: are written apart (and those that still fail while others are stored set aside).
_TRIES = 3


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
    #: Failed writes of these rows for an error that may be theirs, and when the first
    #: of them failed.
    tries: int = 0
    since: float = 0.0

    def __len__(self) -> int:
        return len(self.requests) + len(self.feedback)

    def add(self, other: _Batch) -> None:
        self.requests += other.requests
        self.feedback += other.feedback

    def halves(self) -> tuple[_Batch, _Batch]:
        mid = len(self) // 2
        r, f = self.requests, self.feedback
        parts: tuple[tuple[list[Any], list[Any]], ...]
        if mid <= len(r):
            parts = (r[:mid], []), (r[mid:], f)
        else:
            parts = (r, f[: mid - len(r)]), ([], f[mid - len(r) :])
        a, b = (_Batch(rs, fs, self.tries, self.since) for rs, fs in parts)
        return a, b

    def records(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        for r in self.requests:
            yield "request", r
        for f in self.feedback:
            yield "feedback", f


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


# --- the log ------------------------------------------------------------------------------


class RequestLog:
    """Writes served requests and feedback to the store in batches, off the request path.

    ``url``: the store's database (anything :func:`trenches.open` takes). ``batch``:
    rows per transaction; ``interval``: seconds the writer waits for a batch to fill;
    ``max_queue``: items held in memory before ``put`` spills to the spool file;
    ``busy_timeout``: seconds a write waits for a lock before it fails and is retried;
    ``on_lost(reason, n)``: called when ``n`` items are ``"dropped"`` (no room in memory
    nor in the spool) or ``"rejected"`` (set aside), e.g. to count them in a metric.
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
        on_lost: Callable[[str, int], None] | None = None,
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
        self._rejected_lock = threading.Lock()  # the writer and request threads set aside

        self._queue: deque[LoggedRequest | LoggedFeedback] = deque()
        self._room = threading.Lock()  # puts check the bound and append as one
        self._pending: _Batch | None = None  # taken off the queue, not yet stored
        self._taking = 0  # items between the queue and the pending batch
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._closed = False
        self._thread: threading.Thread | None = None

        self._spool_lock = threading.Lock()
        self._spool_fd: int | None = None
        self._spool_size = 0  # bytes of whole records in this process's spool file
        self._spool_waiting = 0  # records in it not yet stored
        self._spool_loaded = 0  # bytes of this process's spool file already stored
        self._spool_due = True  # look for spool files (from before, or spilled since)
        self._outage = False
        self._away_now = False  # the last write failed for the database's fault
        self._stored_at = 0.0  # monotonic time of the last write that went through

        self._written = 0
        self._spilled = 0
        self._loaded_back = 0
        self._rejected = 0
        self._failures = 0
        self._on_lost = on_lost
        self._lost_lock = threading.Lock()
        self._dropped = 0
        self._burst = -1  # dropped since the warning of this burst; -1: no burst
        self._drop_error: BaseException | None = None

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
        database and never raises because of it. Past ``max_queue`` items in memory
        it goes to the spool file, and if that cannot be written, it is dropped."""
        with self._room:
            fits = not self._closed and self._held() < self._max_queue
            if fits:
                self._queue.append(item)
        if not fits:
            self._spill([item])
            return
        if self._burst >= 0:
            self._resume()
        if len(self._queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _held(self) -> int:
        pending = self._pending
        return len(self._queue) + self._taking + (len(pending) if pending is not None else 0)

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
                leftover.add(pending)
        self._spill_queue(leftover)
        self._close_spool()
        self._engine.dispose()
        if self._dropped:
            log.error(
                "request log: stopped; %d requests and feedback were dropped, neither "
                "stored nor spooled in %s (%s)",
                self._dropped,
                self._spool_dir,
                self._drop_error,
            )

    def _close_spool(self) -> None:
        with self._spool_lock:
            fd, self._spool_fd = self._spool_fd, None
            if fd is None:
                return
            try:
                os.fsync(fd)
            except OSError as e:
                log.error("request log: cannot sync the spool file %s: %s", self._spool_path, e)
            finally:
                os.close(fd)
            if not self._spool_waiting:  # a first line, and no room for more
                self._spool_path.unlink(missing_ok=True)
                return
        log.warning(
            "request log: %d requests and feedback wait in %s; the next server of this "
            "store loads them",
            self._spool_waiting,
            self._spool_path,
        )

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: queued (in memory now), written (rows stored), spilled
        (rows sent to the spool file), loaded_back (spooled rows stored), rejected
        (rows and spool lines set aside in the rejected file), dropped (neither stored
        nor spooled: no room in memory nor on disk), failures (failed writes,
        retried)."""
        return {
            "queued": self._held(),
            "written": self._written,
            "spilled": self._spilled,
            "loaded_back": self._loaded_back,
            "rejected": self._rejected,
            "dropped": self._dropped,
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
                trouble = self._step()
            except Exception:
                # A bug must not end the writer, or what it holds would never be stored.
                log.exception("request log: unexpected error in the writer")
                self._failures += 1
                trouble = True
            if trouble is None:
                return
            if trouble:
                self._sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _MIN_BACKOFF
        # Stopping, and the database is still away: nothing stays in memory.
        leftover = self._pending or _Batch()
        self._pending = None
        self._spill_queue(leftover)

    def _step(self) -> bool | None:
        """One round of the writer: True if a write failed (back off before the next),
        None when it is stopping and everything is written."""
        pending = self._pending
        if pending is None:
            pending = self._pending = self._take(self._batch)
        elif pending.tries >= _TRIES and len(pending) < self._batch:
            # Rows that failed even alone: written with others, whether the fault is
            # theirs or the database's shows.
            more = self._take(self._batch - len(pending))
            if more is not None:
                pending.add(more)
        self._taking = 0
        if pending is not None:
            self._pending = self._store(pending)
            return self._pending is not None
        if self._spool_due:
            return not self._load_spools()
        return None if self._stopping.is_set() else False

    def _spill_queue(self, leftover: _Batch) -> None:
        """Spool ``leftover`` and everything still queued."""
        items: list[LoggedRequest | LoggedFeedback] = []
        while self._queue:
            items.append(self._queue.popleft())
        leftover.add(self._to_batch(items))
        if len(leftover):
            self._spill_batch(leftover)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.is_set():
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._stopping.wait(seconds)

    def _take(self, most: int) -> _Batch | None:
        items: list[LoggedRequest | LoggedFeedback] = []
        while self._queue and len(items) < most:
            items.append(self._queue.popleft())
            self._taking += 1
        batch = self._to_batch(items, polite=True)
        return batch if len(batch) else None

    def _to_batch(
        self, items: list[LoggedRequest | LoggedFeedback], *, polite: bool = False
    ) -> _Batch:
        """The rows of ``items``; an item that cannot be made a row is set aside."""
        batch = _Batch()
        rows = 0
        for item in items:
            # Let the request threads have the GIL every 64 input rows: without this, a
            # put can wait for the writer's whole batch to be serialised (a batch of
            # large requests held it for tens of milliseconds).
            rows += item.n if isinstance(item, LoggedRequest) and isinstance(item.n, int) else 1
            if polite and rows >= 64:
                rows = 0
                time.sleep(0)
            try:
                if isinstance(item, LoggedFeedback):
                    batch.feedback.append(_feedback_row(item))
                else:
                    batch.requests.append(_request_row(item))
            except Exception as e:
                self._reject_item(item, e)
        return batch

    # --- writing, and finding the rows at fault -------------------------------------------

    def _store(self, batch: _Batch) -> _Batch | None:
        """Write ``batch`` in one transaction; returns what is left to write (None when
        every row is stored or set aside)."""
        self._away_now = False
        try:
            self._write(batch)
        except Exception as e:
            fault = faults.whose(e)
            if fault == "away":
                self._failed(e)
                return batch
            if fault == "unsure":
                if batch.tries == 0:
                    batch.since = time.monotonic()
                    log.warning(
                        "request log: a write failed (%s); it is retried, and a row that "
                        "keeps failing while others are stored is set aside in %s",
                        faults.reason(e),
                        self._rejected_path,
                    )
                batch.tries += 1
                if batch.tries < _TRIES:
                    self._failures += 1
                    return batch
            return self._store_apart(batch, e)
        self._recovered()
        return None

    def _store_apart(self, batch: _Batch, error: BaseException) -> _Batch | None:
        """After ``batch`` failed with ``error``: write it in halves, and the halves
        that fail in halves, down to single rows; rows at fault are set aside, the
        others stored. Returns what is left to write (the database went away)."""
        left = _Batch(tries=batch.tries, since=batch.since)
        suspects: list[tuple[_Batch, BaseException]] = []
        todo = [batch]  # a stack: the last part is written next
        while todo:
            part = todo.pop()
            e = error if part is batch else self._attempt(part)
            if e is None:
                continue
            fault = faults.whose(e)
            if fault == "away":
                self._failed(e)
                for p in (part, *reversed(todo)):
                    left.add(p)
                break
            if len(part) > 1:
                a, b = part.halves()
                todo += [b, a]
            elif fault == "row":
                self._reject(part, e)
            elif batch.tries >= _TRIES:
                suspects.append((part, e))
            else:
                left.add(part)  # tried again whole, then apart if it keeps failing
        for part, e in suspects:
            # The database took other rows since these first failed: the fault is theirs.
            if self._stored_at > batch.since:
                self._reject(part, e)
            else:
                left.add(part)
        if len(left):
            if not self._outage:  # else counted as the database's failure
                self._failures += 1
            return left
        self._recovered()
        return None

    def _attempt(self, batch: _Batch) -> BaseException | None:
        try:
            self._write(batch)
        except Exception as e:
            return e
        return None

    def _write(self, batch: _Batch) -> None:
        self._transaction(batch)
        self._written += len(batch)
        self._stored_at = time.monotonic()

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
        self._away_now = True

    def _recovered(self) -> None:
        if self._outage:
            log.info("request log: the database takes writes again")
            self._outage = False
            self._spool_due = True  # what was spilled meanwhile, and files of dead peers

    # --- setting rows aside ---------------------------------------------------------------

    def _reject(self, batch: _Batch, e: BaseException) -> None:
        """Set aside rows that cannot be written (the database refused them with ``e``,
        or a spool line cannot carry them)."""
        reason = faults.reason(e)
        for kind, row in batch.records():
            log.error(
                "request log: %s %s cannot be written (%s); it is kept in %s",
                kind,
                row[0],
                reason,
                self._rejected_path,
            )
        self._set_aside([spool.encode_anyhow(kind, row) for kind, row in batch.records()], reason)

    def _reject_item(self, item: LoggedRequest | LoggedFeedback, e: BaseException) -> None:
        """Set aside an item that cannot be made a row (a value of the wrong type)."""
        kind = "feedback" if isinstance(item, LoggedFeedback) else "request"
        fields = dict(item.__dict__)
        if isinstance(item, LoggedRequest):
            try:
                fields["inputs"] = item.inputs()
            except Exception as ie:
                fields["inputs"] = f"{type(ie).__name__}: {ie}"
        reason = faults.reason(e)
        log.error(
            "request log: %s %s cannot be logged (%s); it is kept in %s",
            kind,
            item.request_id,
            reason,
            self._rejected_path,
        )
        self._set_aside([spool.encode_anything(kind, fields)], reason)

    def _set_aside(self, records: list[bytes], reason: str) -> None:
        lines = [spool.rejected_line(r, reason) for r in records]
        with self._rejected_lock:
            error = spool.append_to(self._rejected_path, lines)
        if error is not None:
            log.error("request log: cannot write %s: %s", self._rejected_path, error)
            self._drop(len(records), error)
            return
        self._rejected += len(records)
        if self._on_lost is not None:
            self._on_lost("rejected", len(records))

    # --- dropping what there is no room for -----------------------------------------------

    def _drop(self, n: int, error: BaseException) -> None:
        """Count ``n`` items lost for want of room; warn once a burst."""
        with self._lost_lock:
            self._dropped += n
            self._drop_error = error
            first = self._burst < 0
            self._burst = max(self._burst, 0) + n
        if first and not self._stopping.is_set():  # when stopping, stop() says how many
            log.warning(
                "request log: memory holds the most it may (%d requests) and the spool "
                "file %s cannot be written (%s): requests and feedback are dropped, and "
                "counted, until there is room",
                self._max_queue,
                self._spool_path,
                error,
            )
        if self._on_lost is not None:
            self._on_lost("dropped", n)

    def _resume(self) -> None:
        with self._lost_lock:
            burst, self._burst = self._burst, -1
        if burst > 0:
            log.warning("request log: logging again; %d were dropped meanwhile", burst)

    # --- spilling and loading back ----------------------------------------------------------

    def _spill(self, items: list[LoggedRequest | LoggedFeedback]) -> None:
        try:
            self._spill_batch(self._to_batch(items))
        except Exception as e:  # a bug: never the caller's problem
            log.exception("request log: cannot spool a request")
            self._drop(len(items), e)

    def _encode(self, batch: _Batch) -> list[bytes]:
        """Spool lines of ``batch``; a row JSON lines cannot carry is set aside."""
        lines = []
        for kind, row in batch.records():
            try:
                lines.append(spool.encode(kind, row))
            except TypeError as e:
                one = _Batch()
                (one.requests if kind == "request" else one.feedback).append(row)
                self._reject(one, e)
        return lines

    def _spill_batch(self, batch: _Batch) -> None:
        """Append ``batch`` to this process's spool file: whole records, as many as
        there is room for; the rest is dropped."""
        lines = self._encode(batch)
        if not lines:
            return
        with self._spool_lock:
            try:
                if self._spool_fd is None:
                    self._open_spool()
                assert self._spool_fd is not None
                done, self._spool_size, error = spool.append(
                    self._spool_fd, lines, self._spool_size
                )
            except OSError as e:
                done, error = 0, e
        with self._spool_lock:
            self._spool_waiting += done
        self._spilled += done
        if done:
            self._spool_due = True
        if error is not None:
            self._drop(len(lines) - done, error)
        elif self._burst >= 0:
            self._resume()

    def _open_spool(self) -> None:
        """Open (and claim) this process's spool file, with its first line written."""
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._spool_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        spool.claim(fd)
        size = os.fstat(fd).st_size
        if size == 0:
            _, size, error = spool.append(fd, [spool.header(self._store_url)], 0)
            if error is not None:
                os.close(fd)
                self._spool_path.unlink(missing_ok=True)
                raise error
        self._spool_fd, self._spool_size = fd, size

    def _load_spools(self) -> bool:
        """Store the spool files in ``spool_dir``: this process's, and those no live
        process holds. False (and ``_spool_due`` left set) if some could not be."""
        self._spool_due = False
        try:
            paths = sorted(self._spool_dir.glob("requests-*.jsonl"))
        except OSError:
            paths = []
        done = True
        for path in paths:
            if self._load_own() if path == self._spool_path else self._load_other(path):
                continue
            self._spool_due = True
            done = False
            if self._away_now or self._past_deadline():
                break  # else a row of that file is not settled yet: on to the next file
        return done

    def _load_batch(self, batch: _Batch, bad: list[tuple[bytes, str]]) -> bool:
        """Store one batch read from a spool file, and set aside its file's ``bad``
        lines; False if the database is away or a row cannot be settled yet (the batch
        stays in the file). Retried as a queued batch is, without waiting for others."""
        before = self._written
        left = self._store(batch) if len(batch) else None
        backoff = _MIN_BACKOFF
        while left is not None and not self._away_now and left.tries < _TRIES:
            if self._past_deadline():
                break
            self._sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            left = self._store(left)
        self._loaded_back += self._written - before
        if left is not None:
            return False
        for line, reason in bad:
            log.error("request log: %s; it is kept in %s", reason, self._rejected_path)
            self._set_aside([line], reason)
        return True

    def _load_own(self) -> bool:
        with self._spool_lock:
            if self._spool_fd is None:
                return True
            end = self._spool_size
        with self._spool_path.open("rb") as fh:
            fh.seek(self._spool_loaded)
            for batch, position, bad in self._read_batches(fh, end):
                assert batch is not None
                if self._past_deadline() or not self._load_batch(batch, bad):
                    return False
                with self._spool_lock:
                    self._spool_loaded = position
                    self._spool_waiting -= len(batch) + len(bad)
        with self._spool_lock:
            assert self._spool_fd is not None
            if self._spool_size == self._spool_loaded:
                self._spool_path.unlink(missing_ok=True)
                os.close(self._spool_fd)
                self._spool_fd = None
                self._spool_loaded = self._spool_waiting = 0
            else:
                self._spool_due = True  # spilled to meanwhile
        return True

    def _load_other(self, path: Path) -> bool:
        try:
            fh = path.open("rb")
        except OSError:
            return True  # loaded and deleted by another process meanwhile
        with fh:
            if not spool.claim(fh.fileno()):
                return True  # its process is alive and will load it itself
            for batch, _, bad in self._read_batches(fh, None):
                if batch is None:
                    return True  # another store's: left for a server of that store
                if self._past_deadline() or not self._load_batch(batch, bad):
                    return False
            path.unlink(missing_ok=True)
            log.info("request log: loaded back %s", path.name)
        return True

    def _read_batches(
        self, fh: IO[bytes], end: int | None
    ) -> Iterator[tuple[_Batch | None, int, list[tuple[bytes, str]]]]:
        """Batches of the lines of ``fh`` up to byte ``end``, each with the position
        after its last line and the lines among them that cannot be read (with the
        reason); a single None if the file belongs to another store."""
        batch, bad = _Batch(), []
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
            url = spool.header_url(line) if number == 1 else None
            if url is not None:
                if url != self._store_url:
                    yield None, fh.tell(), []
                    return
                continue
            try:
                kind, row = spool.parse(line)
            except Exception as e:
                bad.append((line, f"{name}, line {number} cannot be read: {e}"))
            else:
                (batch.requests if kind == "request" else batch.feedback).append(row)
            if len(batch) >= self._batch:
                yield batch, fh.tell(), bad
                batch, bad = _Batch(), []
        if len(batch) or bad:
            yield batch, fh.tell(), bad
