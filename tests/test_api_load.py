"""20 clients at once on the team server, on SQLite and PostgreSQL: each with a token of
its own, importing patterns, giving feedback and making runs, for a minute on
PostgreSQL (the team server's database) and 20 seconds on SQLite; afterwards every
acknowledged write is in the store exactly once, and in the audit log once.

The load itself is ``bench/_load.py``, which ``bench/server.py`` also drives (longer,
against MLflow's tracking server); this test checks what it wrote, never its speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import test_api
import trenches
from test_api import Live

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import _load  # bench/_load.py: the load, shared with bench/server.py

#: The store as a team runs it: PostgreSQL with artifacts on S3, SQLite with a folder.
store = test_api.store

#: Seconds of load on PostgreSQL; ``bench/server.py --seconds`` runs the same load longer.
SECONDS = _load.SECONDS
#: On SQLite, whose one writer at a time the minute on PostgreSQL does not test, but
#: whose writes are the same code: long enough for every client to go round its loop
#: many times.
SQLITE_SECONDS = 20.0


@pytest.mark.slow
def test_twenty_clients_writing_at_once_lose_nothing_and_double_nothing(
    store: trenches.Store, tmp_path: Path
) -> None:
    seconds = SECONDS if store.location.db_url.startswith("postgresql") else SQLITE_SECONDS
    house = _load.house(store, tmp_path / "spool", seconds=seconds)
    assert len({w.token for w in house.writers}) == _load.CLIENTS == 20
    with Live(store) as live:
        tally = _load.drive(
            live.url, house.writers, seconds, _load.mixed(house.dataset, house.snapshot_id)
        )
    print(f"\n{_load.CLIENTS} clients, {tally.seconds:.1f} s on {store.location.db_url}:")
    for kind, f in tally.figures().items():
        print(
            f"  {kind:<12} {f['writes']:>6} writes  {f['per_s']:7.1f}/s  "
            f"p50 {f['p50_ms']:7.1f} ms  p99 {f['p99_ms']:7.1f} ms"
        )
    assert tally.failures == []
    assert tally.exhausted == []
    kinds = {w.kind for w in tally.done}
    assert kinds == set(_load.ACTIONS), kinds
    assert len(tally.of("run.end")) >= _load.CLIENTS  # every client got through its loop
    assert _load.check(store, house, tally) == []
