"""The request log: every served prediction, and feedback on it, written to the store
off the request path.

``put`` writes the record to the log's write-ahead file (:mod:`.wal`: a killed server
loses none it answered), appends it to an in-memory queue and returns. A writer thread
takes the queue in batches and writes each batch in one transaction, through an engine
of its own whose busy timeout is short: a locked or unreachable database makes a batch
fail within about a second; the batch is kept and retried with backoff, never dropped.

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

The rows are written staged: each request with its inputs and outputs as JSON text in
its ``served_requests`` row. Every ``move_rows`` requests written, or ``move_seconds``
after the first not moved yet, the writer moves the staged requests of the store (its
own and other servers') into the request log's Iceberg tables
(:mod:`trenches.requests.stored`), one transaction a move; a move that fails leaves
them staged, to be moved by the next one (or by ``trenches compact``).

A row that cannot be written is set aside in ``rejected-<pid>-<start>.jsonl`` with the
reason, so that one bad row neither blocks the log nor is lost, whatever the error
(:mod:`.batches` finds the rows at fault); errors that are the database's or its
disk's never set a row aside. So do spool lines: a line that cannot be read, or whose
row cannot be written, is set aside and the rest of its file loaded.

Requests and feedback are records of :mod:`trenches.requests.records`, the codec that
the spool files and the readers of ``store.requests`` share.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from trenches import config, tables, timestamps
from trenches.db import faults
from trenches.db.engine import make_engine
from trenches.requests import records, stored
from trenches.requests.records import Logged, LoggedFeedback, LoggedRequest
from trenches.serving import spool
from trenches.serving.batches import TRIES, Batch, BatchWriter
from trenches.serving.losses import Losses
from trenches.serving.wal import Made, WriteAhead

__all__ = ["LoggedFeedback", "LoggedRequest", "RequestLog"]

log = logging.getLogger("trenches.serve.requests")

#: Seconds between retries of a failed batch: doubled after each failure, up to the max.
_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 5.0


class RequestLog:
    """Writes served requests and feedback to the store in batches, off the request path.

    ``url``: the store's database (anything :func:`trenches.open` takes). ``batch``:
    rows per transaction; ``interval``: seconds the writer waits for a batch to fill;
    ``max_queue``: items held in memory before ``put`` spills to the spool file;
    ``busy_timeout``: seconds a write waits for a lock before it fails and is retried;
    ``tables_root``: where the store keeps its tables (its artifacts location; by
    default the one ``url`` resolves to); ``move_rows``, ``move_seconds``: when staged
    requests are moved into the tables (see the module's notes); ``moves`` False: never
    by this log (a mover process does, :mod:`.mover`);
    ``on_lost(reason, n)``: called when ``n`` items are ``"dropped"`` (no room in memory
    nor in the spool) or ``"rejected"`` (set aside), e.g. to count them in a metric.
    """

    def __init__(  # noqa: PLR0913
        self,
        url: str,
        spool_dir: Path,
        *,
        batch: int = 1000,
        interval: float = 0.25,
        max_queue: int = 50_000,
        busy_timeout: float = 1.0,
        on_lost: Callable[[str, int], None] | None = None,
        tables_root: str | None = None,
        move_rows: int = stored.MOVE_ROWS,
        move_seconds: float = stored.MOVE_SECONDS,
        write_ahead: bool = True,
        moves: bool = True,
    ) -> None:
        location = config.resolve(url)
        engine = make_engine(location.db_url, busy_timeout=busy_timeout)
        tables.bind(engine, tables_root or location.artifacts)
        self._moves = moves
        self._move_rows = max(1, int(move_rows))
        self._move_seconds = move_seconds
        self._unmoved = 0  # requests written since the last move
        self._unmoved_since = 0.0  # when the first of them was
        self._moved = 0
        self._spool_dir = Path(spool_dir)
        self._batch = max(1, int(batch))
        self._interval = interval
        self._max_queue = max(0, int(max_queue))
        self._busy_timeout = busy_timeout
        stamp = f"{os.getpid()}-{timestamps.now_us()}"
        # The first line of a spool file names its database: a spool folder shared by
        # servers of different stores loads each file into its own store only.
        self._store_url = engine.url.render_as_string(hide_password=True)
        self._spool = spool.SpoolFile(self._spool_dir / f"requests-{stamp}.jsonl", self._store_url)
        self._wal = WriteAhead(self._spool_dir, stamp, self._store_url) if write_ahead else None
        self._unsettled = 0  # items taken into the pending batch, to settle with it
        self._stopping = threading.Event()
        self._losses = Losses(
            self._spool_dir / f"rejected-{stamp}.jsonl",
            on_lost=on_lost,
            stopping=self._stopping,
            max_queue=self._max_queue,
            spool_path=self._spool.path,
        )
        self._db = BatchWriter(
            engine,
            reject=self._losses.reject,
            recovered=self._recovered,
            spool_dir=self._spool_dir,
            rejected_path=self._losses.rejected_path,
        )

        self._queue: deque[Logged | Made] = deque()
        self._room = threading.Lock()  # puts check the bound and append as one
        self._pending: Batch | None = None  # taken off the queue, not yet stored
        self._taking = 0  # items between the queue and the pending batch
        self._wake = threading.Event()
        self._deadline = float("inf")
        self._closed = False
        self._thread: threading.Thread | None = None

        self._spool_due = True  # look for spool files (from before, or spilled since)
        self._spilled = 0
        self._loaded_back = 0

    # --- the interface the server uses ----------------------------------------------------

    def start(self) -> None:
        """Start the writer thread. Spool files left by earlier processes are loaded
        back by it as soon as the database takes writes, so starting never waits."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="trenches-request-log", daemon=True)
        self._thread.start()

    def put(self, item: Logged) -> None:
        """Log one request or feedback: an append to the queue; never blocks on the
        database and never raises because of it. Past ``max_queue`` items in memory
        it goes to the spool file, and if that cannot be written, it is dropped. With
        write-ahead on, it is first written to this log's write-ahead file (:mod:`.wal`)."""
        queued: Logged | Made = item
        line = None
        if self._wal is not None:
            queued, line = _ahead(item)
        with self._room:
            fits = not self._closed and self._held() < self._max_queue
            if fits:
                if self._wal is not None:
                    self._wal.append(line)
                self._queue.append(queued)
        if not fits:
            self._spill([queued])
            return
        if self._losses.in_burst:
            self._losses.resume()
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
        leftover = Batch()
        if self._thread.is_alive():
            # The writer is stuck in the driver (a hung network): keep its batch too. If
            # its write does go through, loading the spool back stores nothing twice.
            log.error("request log: the writer did not finish; spooling what it held")
            pending = self._pending
            if pending is not None:
                leftover.add(pending)
        self._spill_queue(leftover)
        self._close_spool()
        if self._wal is not None:
            self._wal.close()
        self._db.engine.dispose()
        if self._losses.dropped:
            log.error(
                "request log: stopped; %d requests and feedback were dropped, neither "
                "stored nor spooled in %s (%s)",
                self._losses.dropped,
                self._spool_dir,
                self._losses.drop_error,
            )

    def _close_spool(self) -> None:
        waiting = self._spool.close()
        if waiting:
            log.warning(
                "request log: %d requests and feedback wait in %s; the next server of this "
                "store loads them",
                waiting,
                self._spool.path,
            )

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: queued (in memory now), written (rows stored), spilled
        (rows sent to the spool file), loaded_back (spooled rows stored), rejected
        (rows and spool lines set aside in the rejected file), dropped (neither stored
        nor spooled: no room in memory nor on disk), failures (failed writes,
        retried), moved (staged requests this writer moved into the tables)."""
        return {
            "queued": self._held(),
            "written": self._db.written,
            "spilled": self._spilled,
            "loaded_back": self._loaded_back,
            "rejected": self._losses.rejected,
            "dropped": self._losses.dropped,
            "failures": self._db.failures,
            "moved": self._moved,
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
                self._db.failures += 1
                trouble = True
            if self._wal is not None:
                self._wal.sync()
            if trouble is None:
                return
            if trouble:
                self._sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            else:
                backoff = _MIN_BACKOFF
        # Stopping, and the database is still away: nothing stays in memory.
        leftover = self._pending or Batch()
        self._pending = None
        self._spill_queue(leftover)

    def _step(self) -> bool | None:
        """One round of the writer: True if a write failed (back off before the next),
        None when it is stopping and everything is written."""
        pending = self._pending
        if pending is None:
            pending = self._pending = self._take(self._batch)
        elif pending.tries >= TRIES and len(pending) < self._batch:
            # Rows that failed even alone: written with others, whether the fault is
            # theirs or the database's shows.
            more = self._take(self._batch - len(pending))
            if more is not None:
                pending.add(more)
        self._taking = 0
        if pending is not None:
            requests = len(pending.requests)
            self._pending = self._db.store(pending)
            if self._pending is None:
                self._settle()
            if self._pending is None and requests:
                if not self._unmoved:
                    self._unmoved_since = time.monotonic()
                self._unmoved += requests
            if self._pending is None and self._move_due():
                self._move()
            return self._pending is not None
        if self._spool_due:
            return not self._load_spools()
        return None if self._stopping.is_set() else False

    def _move_due(self) -> bool:
        if not self._moves:
            return False
        if self._unmoved >= self._move_rows:
            return True
        waited = time.monotonic() - self._unmoved_since
        return self._unmoved > 0 and waited >= self._move_seconds

    def _move(self) -> None:
        """Move the store's staged requests into the tables; on failure they stay
        staged, and the next write tries again after ``move_seconds``."""
        try:
            # Another server's move under way moves this one's staged requests too.
            self._moved += stored.move_all(self._db.engine, wait=False)
        except Exception as e:
            log.warning(
                "request log: staged requests could not be moved into the tables (%s); "
                "they stay in the database and are moved later",
                faults.reason(e),
            )
            self._unmoved_since = time.monotonic()
            return
        self._unmoved = 0

    def _spill_queue(self, leftover: Batch) -> None:
        """Spool ``leftover`` and everything still queued (settled, once spooled)."""
        items: list[Logged | Made] = []
        while self._queue:
            items.append(self._queue.popleft())
        self._unsettled += len(items)
        leftover.add(self._to_batch(items))
        if len(leftover) == 0 or self._spill_batch(leftover):
            self._settle()

    def _settle(self) -> None:
        """The items taken off the queue since the last settling are stored (or set
        aside, or spooled): their write-ahead lines are no longer needed."""
        n, self._unsettled = self._unsettled, 0
        if self._wal is not None and n:
            with self._room:
                self._wal.settle(n)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.is_set():
            time.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
        else:
            self._stopping.wait(seconds)

    def _take(self, most: int) -> Batch | None:
        items: list[Logged | Made] = []
        while self._queue and len(items) < most:
            items.append(self._queue.popleft())
            self._taking += 1
        self._unsettled += len(items)
        batch = self._to_batch(items, polite=True)
        if not len(batch) and items and self._pending is None:
            # Every one set aside, and nothing older waits: settled. (Behind a pending
            # batch, they are settled with it: the write-ahead file settles in order.)
            self._settle()
        return batch if len(batch) else None

    def _to_batch(self, items: list[Logged | Made], *, polite: bool = False) -> Batch:
        """The rows of ``items``; an item that cannot be made a row is set aside."""
        batch = Batch()
        rows = 0
        for item in items:
            # Let the request threads have the GIL every 64 input rows: without this, a
            # put can wait for the writer's whole batch to be serialised (a batch of
            # large requests held it for tens of milliseconds).
            n = item.n if isinstance(item, LoggedRequest | Made) else 1
            rows += n if isinstance(n, int) else 1
            if polite and rows >= 64:
                rows = 0
                time.sleep(0)
            if isinstance(item, Made):  # its row made already, for its write-ahead line
                batch.append(item.shape.kind, item.row)
                continue
            try:
                batch.append(item.shape.kind, item.to_row())
            except Exception as e:
                self._losses.reject_item(item, e)
        return batch

    def _recovered(self) -> None:
        self._spool_due = True  # what was spilled meanwhile, and files of dead peers

    # --- spilling and loading back ----------------------------------------------------------

    def _spill(self, items: list[Logged | Made]) -> None:
        try:
            self._spill_batch(self._to_batch(items))
        except Exception as e:  # a bug: never the caller's problem
            log.exception("request log: cannot spool a request")
            self._losses.drop(len(items), e)

    def _encode(self, batch: Batch) -> list[bytes]:
        """Spool lines of ``batch``; a row JSON lines cannot carry is set aside."""
        lines = []
        for kind, row in batch.records():
            try:
                lines.append(records.encode(kind, row))
            except TypeError as e:
                one = Batch()
                one.append(kind, row)
                self._losses.reject(one, e)
        return lines

    def _spill_batch(self, batch: Batch) -> bool:
        """Append ``batch`` to this process's spool file: whole records, as many as
        there is room for; the rest is dropped. Whether all of it was spooled."""
        lines = self._encode(batch)
        if not lines:
            return True
        done, error = self._spool.append(lines)
        self._spilled += done
        if done:
            self._spool_due = True
        if error is not None:
            self._losses.drop(len(lines) - done, error)
        elif self._losses.in_burst:
            self._losses.resume()
        return error is None

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
            if self._wal is not None and self._wal.owns(path):
                continue  # this log's own write-ahead segments: settled as it writes
            if self._load_own() if path == self._spool.path else self._load_other(path):
                continue
            self._spool_due = True
            done = False
            if self._db.away_now or self._past_deadline():
                break  # else a row of that file is not settled yet: on to the next file
        return done

    def _load_batch(self, batch: Batch, bad: list[tuple[bytes, str]]) -> bool:
        """Store one batch read from a spool file, and set aside its file's ``bad``
        lines; False if the database is away or a row cannot be settled yet (the batch
        stays in the file). Retried as a queued batch is, without waiting for others."""
        before = self._db.written
        left = self._db.store(batch) if len(batch) else None
        backoff = _MIN_BACKOFF
        while left is not None and not self._db.away_now and left.tries < TRIES:
            if self._past_deadline():
                break
            self._sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            left = self._db.store(left)
        self._loaded_back += self._db.written - before
        if left is not None:
            return False
        for line, reason in bad:
            log.error("request log: %s; it is kept in %s", reason, self._losses.rejected_path)
            self._losses.set_aside([line], reason)
        return True

    def _load_own(self) -> bool:
        unloaded = self._spool.unloaded()
        if unloaded is None:
            return True
        start, end = unloaded
        with self._spool.path.open("rb") as fh:
            fh.seek(start)
            for batch, position, bad in spool.read_batches(fh, end, self._store_url, self._batch):
                assert batch is not None
                if self._past_deadline() or not self._load_batch(batch, bad):
                    return False
                self._spool.stored(position, len(batch) + len(bad))
        if not self._spool.finish():
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
            for batch, _, bad in spool.read_batches(fh, None, self._store_url, self._batch):
                if batch is None:
                    return True  # another store's: left for a server of that store
                if self._past_deadline() or not self._load_batch(batch, bad):
                    return False
            path.unlink(missing_ok=True)
            log.info("request log: loaded back %s", path.name)
        return True


def _ahead(item: Logged) -> tuple[Logged | Made, bytes | None]:
    """The item to queue and its write-ahead line: its row made now, stored as made;
    None for a row that cannot be one (the writer sets the item aside as before)."""
    try:
        row = item.to_row()
        return Made(item.shape, row), records.encode(item.shape.kind, row)
    except Exception:
        return item, None
