"""The request log's mover: a process of its own that ``trenches serve`` starts beside
its workers to move staged requests into the log's Iceberg tables
(:func:`trenches.requests.stored.move_all`).

A move reads, converts and writes tens of thousands of requests at a time: on a
worker's own writer thread it held the interpreter long enough to stall the answers
(a 64-connection p99 of 700 ms against 30-50 ms without it). Here it runs at a lower
CPU priority, never in the way of a worker's event loop; the workers' logs only write
their staged rows. It moves when ``move_rows`` requests are staged or the first of
them has waited ``move_seconds``, a few thousand a transaction, and ends with the
server (its parent).

    python -m trenches.serving.mover STORE PARENT_PID [--move-rows N] [--move-seconds S]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

log = logging.getLogger("trenches.serve.requests")

#: Seconds between looks at how many requests are staged.
LOOK = 1.0
#: Seconds the mover waits before it loads anything: the server is starting.
START = 3.0
#: Requests moved in one transaction, and seconds between two: the database's write
#: lock is the workers' logs' too (SQLite's is the whole database's), and a move of
#: 200,000 requests held it for seconds, back to back, while their queues grew.
CHUNK = 5_000
PAUSE = 0.1


def command(store: str, parent: int, move_rows: int, move_seconds: float) -> list[str]:
    """The command line of a mover for ``store`` (empty: the default store, as
    :func:`trenches.open` finds it) whose server is process ``parent``."""
    return [
        sys.executable,
        "-m",
        "trenches.serving.mover",
        store,
        str(parent),
        "--move-rows",
        str(move_rows),
        "--move-seconds",
        str(move_seconds),
    ]


def run(store: str, parent: int, move_rows: int, move_seconds: float) -> None:
    """Move staged requests until process ``parent`` is gone."""
    # Nothing is staged before the server answers: its start is left the machine.
    time.sleep(START)
    from trenches import config, tables
    from trenches.db import faults
    from trenches.db.engine import make_engine, read
    from trenches.requests import stored

    location = config.resolve(store or None)
    engine = make_engine(location.db_url, busy_timeout=5.0)
    tables.bind(engine, location.artifacts)
    stopping: list[int] = []
    # SIGTERM (the server stopping) ends the loop between moves, never inside one.
    signal.signal(signal.SIGTERM, lambda number, _: stopping.append(number))
    waiting_since: float | None = None
    while os.getppid() == parent and not stopping:
        time.sleep(LOOK)
        try:
            with read(engine) as conn:
                staged = stored.staged(conn)
            if not staged:
                waiting_since = None
                continue
            now = time.monotonic()
            waiting_since = waiting_since or now
            if staged >= move_rows or now - waiting_since >= move_seconds:
                stored.move_all(engine, wait=False, most=CHUNK, pause=PAUSE)
                waiting_since = None
        except Exception as e:  # the database away a while: the next look tries again
            log.warning("request log mover: %s; staged requests are moved later", faults.reason(e))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trenches.serving.mover")
    parser.add_argument("store")
    parser.add_argument("parent", type=int)
    parser.add_argument("--move-rows", type=int, required=True)
    parser.add_argument("--move-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.nice(10)  # the workers' answers first
    # Ctrl-C reaches the whole group: the server's SIGTERM, after its workers, ends this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run(args.store, args.parent, args.move_rows, args.move_seconds)


if __name__ == "__main__":
    main()
