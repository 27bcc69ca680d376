"""What the request log does not store, and how it says so: rows **rejected** (set
aside in the rejected file with the reason, so that one bad row neither blocks the log
nor is lost) and items **dropped** (no room in memory nor in the spool: counted, and
warned of once a burst). Both reach ``on_lost(reason, n)``, e.g. a metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from trenches.db import faults
from trenches.requests import records
from trenches.requests.records import Logged
from trenches.serving import spool
from trenches.serving.batches import Batch

log = logging.getLogger("trenches.serve.requests")


class Losses:
    """The request log's rejected file (``rejected_path``) and its count of drops.

    ``stopping``: set once the log stops (its ``stop`` reports drops itself);
    ``max_queue`` and ``spool_path`` are named in the warning of a burst of drops.
    """

    def __init__(
        self,
        rejected_path: Path,
        *,
        on_lost: Callable[[str, int], None] | None,
        stopping: threading.Event,
        max_queue: int,
        spool_path: Path,
    ) -> None:
        self.rejected_path = rejected_path
        self._on_lost = on_lost
        self._stopping = stopping
        self._max_queue = max_queue
        self._spool_path = spool_path
        self._rejected_lock = threading.Lock()  # the writer and request threads set aside
        self._lost_lock = threading.Lock()
        #: Rows and spool lines set aside; items dropped, and the last error why.
        self.rejected = 0
        self.dropped = 0
        self.drop_error: BaseException | None = None
        self._burst = -1  # dropped since the warning of this burst; -1: no burst

    # --- setting rows aside ---------------------------------------------------------------

    def reject(self, batch: Batch, e: BaseException) -> None:
        """Set aside rows that cannot be written (the database refused them with ``e``,
        or a spool line cannot carry them)."""
        reason = faults.reason(e)
        for kind, row in batch.records():
            log.error(
                "request log: %s %s cannot be written (%s); it is kept in %s",
                kind,
                row[0],
                reason,
                self.rejected_path,
            )
        self.set_aside([records.encode_anyhow(k, row) for k, row in batch.records()], reason)

    def reject_item(self, item: Logged, e: BaseException) -> None:
        """Set aside an item that cannot be made a row (a value of the wrong type)."""
        kind = item.shape.kind
        reason = faults.reason(e)
        log.error(
            "request log: %s %s cannot be logged (%s); it is kept in %s",
            kind,
            item.request_id,
            reason,
            self.rejected_path,
        )
        self.set_aside([records.encode_anything(kind, item.fields())], reason)

    def set_aside(self, lines: list[bytes], reason: str) -> None:
        """Append records (spool lines) to the rejected file with ``reason``; counted as
        dropped if it cannot be written."""
        with self._rejected_lock:
            error = spool.append_to(
                self.rejected_path, [spool.rejected_line(r, reason) for r in lines]
            )
        if error is not None:
            log.error("request log: cannot write %s: %s", self.rejected_path, error)
            self.drop(len(lines), error)
            return
        self.rejected += len(lines)
        if self._on_lost is not None:
            self._on_lost("rejected", len(lines))

    # --- dropping what there is no room for -----------------------------------------------

    def drop(self, n: int, error: BaseException) -> None:
        """Count ``n`` items lost for want of room; warn once a burst."""
        with self._lost_lock:
            self.dropped += n
            self.drop_error = error
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

    @property
    def in_burst(self) -> bool:
        """Items were dropped since logging last went through."""
        return self._burst >= 0

    def resume(self) -> None:
        """Logging goes through again: end the burst of drops, saying how many."""
        with self._lost_lock:
            burst, self._burst = self._burst, -1
        if burst > 0:
            log.warning("request log: logging again; %d were dropped meanwhile", burst)
