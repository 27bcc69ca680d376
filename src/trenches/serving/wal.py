"""The request log's write-ahead files: each request (and feedback) a server answers is
appended to one before its answer leaves, so that a server killed with SIGKILL loses
none that it answered.

The lines are the spool files' (:mod:`.spool`): a first line naming the database, then
a record a line. A server writes them to segments under its spool folder
(``requests-<pid>-<start>-wal<k>.jsonl``), each claimed with a lock while the server
lives. Records leave memory for the database in the order they came, so the oldest
``n`` records of the segments are settled (stored, spooled or set aside) when the
writer has settled ``n``; a segment all of whose records are settled is deleted. A
segment left by a server that died is a spool file like any other: the next server
of the store loads it (inserting or ignoring on the request id, so a record stored
before its segment was deleted is not stored twice).

A line is written with one ``write`` before the answer leaves: the kernel holds it
even if the process dies at once. The writer thread syncs the segments to disk at
every round (at most every ``interval`` of the log, a quarter of a second by default),
so a machine that loses power loses at most the requests answered since.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from trenches.requests.records import REQUEST, Row, Shape
from trenches.serving import spool

log = logging.getLogger("trenches.serve.requests")

#: Records a segment takes before the next one is started.
SEGMENT_RECORDS = 4096


@dataclass(frozen=True)
class Made:
    """A record whose row was made on the request path (for its write-ahead line): the
    writer stores the row as it is."""

    shape: Shape
    row: Row

    @property
    def n(self) -> int:
        """Input rows of a request; 1 for feedback."""
        if self.shape is REQUEST:
            return int(self.row[REQUEST.columns.index("n")])
        return 1


class _Segment:
    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.size = size
        self.records = 0  # appended, whether written or not
        self.unsettled = 0
        self.dirty = False


class WriteAhead:
    """The write-ahead segments of one request log (see the module's notes). Appends
    (from request threads) and settling (from the writer) come under the log's own
    lock; syncing, from the writer alone."""

    def __init__(self, folder: Path, stamp: str, store_url: str) -> None:
        self._folder = folder
        self._prefix = f"requests-{stamp}-wal"
        self._store_url = store_url
        self._segments: deque[_Segment] = deque()
        self._next = 0
        #: Records that could not be written ahead (a full disk): kept in memory only.
        self.unwritten = 0

    def owns(self, path: Path) -> bool:
        """Whether ``path`` is one of this log's segments (never loaded by it)."""
        return path.name.startswith(self._prefix)

    def append(self, line: bytes | None) -> None:
        """Write one record's ``line`` ahead (None: a record no line can carry, counted
        all the same, in its place among the records)."""
        segment = self._current()
        if segment is None:
            self.unwritten += 1
            return
        segment.records += 1
        segment.unsettled += 1
        if line is None:
            return
        _, segment.size, error = spool.append(segment.fd, [line], segment.size)
        if error is not None:
            self.unwritten += 1
            log.error("request log: cannot write ahead to %s: %s", segment.path, error)
        else:
            segment.dirty = True

    def settle(self, n: int) -> None:
        """The oldest ``n`` records appended are settled: delete the segments that
        hold nothing else."""
        while n > 0 and self._segments:
            segment = self._segments[0]
            taken = min(n, segment.unsettled)
            segment.unsettled -= taken
            n -= taken
            if segment.unsettled == 0:
                self._segments.popleft()
                self._delete(segment)

    def sync(self) -> None:
        """Sync the segments written since the last sync to disk."""
        for segment in list(self._segments):
            if segment.dirty:
                segment.dirty = False
                try:
                    os.fsync(segment.fd)
                except OSError as e:
                    log.error("request log: cannot sync %s: %s", segment.path, e)

    def close(self) -> None:
        """At a stop: every segment synced and closed, those with nothing unsettled
        deleted (the others are loaded by the next server)."""
        while self._segments:
            segment = self._segments.popleft()
            if segment.unsettled == 0:
                self._delete(segment)
                continue
            with contextlib.suppress(OSError):
                os.fsync(segment.fd)
            os.close(segment.fd)

    def _current(self) -> _Segment | None:
        last = self._segments[-1] if self._segments else None
        if last is not None and last.records < SEGMENT_RECORDS:
            return last
        path = self._folder / f"{self._prefix}{self._next}.jsonl"
        self._next += 1
        try:
            fd, size = spool.open_claimed(path, self._store_url)
        except OSError as e:
            log.error("request log: cannot write ahead to %s: %s", path, e)
            return None
        segment = _Segment(path, fd, size)
        self._segments.append(segment)
        return segment

    @staticmethod
    def _delete(segment: _Segment) -> None:
        segment.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(segment.fd)
