"""The request log's writes: a batch of rows stored in one transaction, and when it
fails, the search for the rows at fault.

A failed batch is written again in halves, down to the rows at fault. A row is set
aside at once when the error is about a value (a constraint, an integer the column
cannot hold); when the error could be the database's as well as the row's, only after
it failed :data:`TRIES` times while other rows were stored. Errors that are the
database's or its disk's (locked, unreachable, full) never set a row aside: the rows
wait, and are retried, for as long as it takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from trenches.db import faults
from trenches.db.engine import write
from trenches.requests import records

log = logging.getLogger("trenches.serve.requests")

#: Failed writes of a batch, for an error that may be about its rows, before its rows
#: are written apart (and those that still fail while others are stored set aside).
TRIES = 3


@dataclass
class Batch:
    """Stored rows of both shapes (JSON already made): what a failed write keeps."""

    requests: list[tuple[Any, ...]] = field(default_factory=list)
    feedback: list[tuple[Any, ...]] = field(default_factory=list)
    #: Failed writes of these rows for an error that may be theirs, and when the first
    #: of them failed.
    tries: int = 0
    since: float = 0.0

    def __len__(self) -> int:
        return len(self.requests) + len(self.feedback)

    def append(self, kind: str, row: tuple[Any, ...]) -> None:
        (self.requests if kind == records.REQUEST.kind else self.feedback).append(row)

    def add(self, other: Batch) -> None:
        self.requests += other.requests
        self.feedback += other.feedback

    def halves(self) -> tuple[Batch, Batch]:
        mid = len(self) // 2
        r, f = self.requests, self.feedback
        parts: tuple[tuple[list[Any], list[Any]], ...]
        if mid <= len(r):
            parts = (r[:mid], []), (r[mid:], f)
        else:
            parts = (r, f[: mid - len(r)]), ([], f[mid - len(r) :])
        a, b = (Batch(rs, fs, self.tries, self.since) for rs, fs in parts)
        return a, b

    def records(self) -> Iterator[tuple[str, tuple[Any, ...]]]:
        for r in self.requests:
            yield records.REQUEST.kind, r
        for f in self.feedback:
            yield records.FEEDBACK.kind, f


class BatchWriter:
    """Stores batches in the database ``engine``, one transaction each.

    ``reject(batch, error)`` sets aside rows at fault; ``recovered()`` is called when
    the database takes writes again after failing them. ``spool_dir`` and
    ``rejected_path`` are named in what it logs.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        reject: Callable[[Batch, BaseException], None],
        recovered: Callable[[], None],
        spool_dir: Path,
        rejected_path: Path,
    ) -> None:
        self.engine = engine
        self._reject = reject
        self._on_recovered = recovered
        self._spool_dir = spool_dir
        self._rejected_path = rejected_path
        #: Rows stored, and failed writes (retried).
        self.written = 0
        self.failures = 0
        self._outage = False
        #: The last write failed for the database's fault.
        self.away_now = False
        self._stored_at = 0.0  # monotonic time of the last write that went through

    def store(self, batch: Batch) -> Batch | None:
        """Write ``batch`` in one transaction; returns what is left to write (None when
        every row is stored or set aside)."""
        self.away_now = False
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
                if batch.tries < TRIES:
                    self.failures += 1
                    return batch
            return self._store_apart(batch, e)
        self._recovered()
        return None

    def _store_apart(self, batch: Batch, error: BaseException) -> Batch | None:
        """After ``batch`` failed with ``error``: write it in halves, and the halves
        that fail in halves, down to single rows; rows at fault are set aside, the
        others stored. Returns what is left to write (the database went away)."""
        left = Batch(tries=batch.tries, since=batch.since)
        suspects: list[tuple[Batch, BaseException]] = []
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
            elif batch.tries >= TRIES:
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
                self.failures += 1
            return left
        self._recovered()
        return None

    def _attempt(self, batch: Batch) -> BaseException | None:
        try:
            self._write(batch)
        except Exception as e:
            return e
        return None

    def _write(self, batch: Batch) -> None:
        with write(self.engine) as conn:
            records.insert(conn, batch.requests, batch.feedback)
        self.written += len(batch)
        self._stored_at = time.monotonic()

    def _failed(self, e: BaseException) -> None:
        self.failures += 1
        if not self._outage:
            log.warning(
                "request log: cannot write to the database (%s); requests wait in memory "
                "(then in %s) and are retried",
                e,
                self._spool_dir,
            )
        self._outage = True
        self.away_now = True

    def _recovered(self) -> None:
        if self._outage:
            log.info("request log: the database takes writes again")
            self._outage = False
            self._on_recovered()
