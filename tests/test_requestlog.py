"""The request log (RequestLog: batches, a locked database, the spool) and
``store.requests``: listing, feedback, and requests made patterns; and their CLI."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sqlalchemy import func, select, update

import trenches
from trenches import timestamps
from trenches.db import schema as t
from trenches.db.engine import read, write
from trenches.errors import InvalidInput, NotFound
from trenches.serving.metrics import Metrics
from trenches.serving.requestlog import LoggedFeedback, LoggedRequest, RequestLog

from conftest import full_disk, make_frame
from conftest import run_cli as cli

COLUMNS = ["radius", "texture", "grade"]


@pytest.fixture
def versions(store: trenches.Store) -> list[trenches.ModelVersion]:
    """Two versions of ``clf`` trained on dataset ``tumours`` (radius, texture, grade)."""
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(make_frame(200).drop(columns=["site"]), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    out = []
    for c in (0.1, 1.0):
        with store.run(f"C={c}", snapshot=snap, capture_code=False) as run:
            out.append(run.log_model(LogisticRegression(C=c).fit(X, y), "clf"))
    return out


def request(version_id: int, i: int, *, n: int = 1) -> LoggedRequest:
    data = [[10.0 + i % 7 + k / 10, 20.0 - k, 1 + (i + k) % 3] for k in range(n)]
    return LoggedRequest(
        request_id=f"req-{i}",
        version_id=version_id,
        endpoint="predict",
        n=n,
        inputs=lambda: {"columns": COLUMNS, "data": data},
        outputs={
            "labels": ["benign"] * n,
            "scores": np.array([[0.75, 0.25]] * n),
            "values": None,
        },
        latency_us=850 + i,
        received_at=timestamps.now_us(),
    )


def count(store: trenches.Store, table: Any) -> int:
    with read(store.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@contextmanager
def locked(store: trenches.Store) -> Iterator[None]:
    """Another connection holds the lock a writer of the log needs: the whole SQLite
    file (BEGIN EXCLUSIVE), or the table on PostgreSQL (LOCK TABLE)."""
    if store.location.sqlite_path is not None:
        db = sqlite3.connect(store.location.sqlite_path, timeout=30, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            db.rollback()
            db.close()
        return
    import psycopg

    url = store.location.db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE served_requests IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def wait_for(condition: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- the writer ----------------------------------------------------------------------------


def test_every_request_of_a_burst_is_stored_after_a_graceful_stop(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    log = RequestLog(store.location.db_url, tmp_path / "spool")
    log.start()
    v = versions[0].id
    for i in range(5000):
        log.put(request(v, i, n=1 + i % 3))
    log.put(LoggedFeedback("req-7", 1, "malignant", 4.0, "biopsy", timestamps.now_us()))
    log.stop()
    assert count(store, t.served_requests) == 5000
    assert log.stats == {
        "queued": 0,
        "written": 5001,
        "spilled": 0,
        "loaded_back": 0,
        "rejected": 0,
        "dropped": 0,
        "failures": 0,
        "moved": 0,  # fewer than the 50,000 a move waits for
    }
    with read(store.engine) as conn:
        row = conn.execute(
            select(t.served_requests).where(t.served_requests.c.request_id == "req-7")
        ).one()
        fb = conn.execute(select(t.feedback)).one()
    assert (row.version_id, row.endpoint, row.n, row.latency_us) == (v, "predict", 2, 857)
    assert orjson.loads(row.inputs) == {
        "columns": COLUMNS,
        "data": [[10.0, 20.0, 2], [10.1, 19.0, 3]],
    }
    assert orjson.loads(row.outputs) == {
        "labels": ["benign", "benign"],
        "scores": [[0.75, 0.25], [0.75, 0.25]],
        "values": None,
    }
    assert (fb.request_id, fb.row, orjson.loads(fb.label), fb.rating, fb.comment) == (
        "req-7",
        1,
        "malignant",
        4.0,
        "biopsy",
    )
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_puts_return_while_the_database_is_locked_and_are_stored_after(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    log = RequestLog(
        store.location.db_url, tmp_path / "spool", batch=50, interval=0.05, busy_timeout=0.25
    )
    log.start()
    v = versions[0].id
    with locked(store):
        # Requests keep coming for about 3 s while the database cannot be written.
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 3.0:
            for _ in range(50):
                log.put(request(v, i))
                i += 1
            time.sleep(0.01)
        # Every put has returned, and the lock is still held: nothing was written.
        during = log.stats
        assert during["written"] == 0 and during["failures"] >= 1
        assert during["queued"] == i
    wait_for(lambda: log.stats["written"] == i)
    log.stop()
    assert count(store, t.served_requests) == i
    assert log.stats["spilled"] == 0


def test_stopping_while_locked_spools_the_rest_and_the_next_log_loads_it_once(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    v = versions[0].id
    with locked(store):
        log = RequestLog(store.location.db_url, spool, interval=0.05, busy_timeout=0.2)
        log.start()
        for i in range(300):
            log.put(request(v, i))
        for i in range(3):
            log.put(LoggedFeedback(f"req-{i}", 0, "benign", None, None, timestamps.now_us()))
        log.stop(timeout=0.5)
        files = list(spool.glob("requests-*.jsonl"))
        assert len(files) == 1
        assert len(files[0].read_bytes().splitlines()) == 1 + 303  # a header, then rows
        assert log.stats["spilled"] == 303 and log.stats["written"] == 0
    assert count(store, t.served_requests) == 0
    # The same rows twice: as if a crash came between storing a file and deleting it.
    shutil.copy(files[0], spool / "requests-1-1.jsonl")
    again = RequestLog(store.location.db_url, spool)
    again.start()
    again.stop()
    assert again.stats["loaded_back"] == 606
    assert not list(spool.glob("*.jsonl"))
    assert count(store, t.served_requests) == 300
    assert count(store, t.feedback) == 3


def test_a_full_queue_spills_to_the_spool_and_comes_back(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    log = RequestLog(store.location.db_url, spool, batch=5, max_queue=10)
    for i in range(100):
        log.put(request(versions[0].id, i))
    assert log.stats["queued"] == 10 and log.stats["spilled"] == 90
    # the spool file, and the write-ahead file of the ten queued
    assert len([p for p in spool.glob("requests-*.jsonl") if "-wal" not in p.name]) == 1
    assert len(list(spool.glob("requests-*-wal*.jsonl"))) == 1
    log.start()
    log.stop()
    assert log.stats["loaded_back"] == 90
    assert count(store, t.served_requests) == 100
    assert not list(spool.glob("*.jsonl"))


@pytest.mark.sqlite_only
def test_a_row_the_database_refuses_is_set_aside_and_the_rest_stored(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    store = sqlite_store
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(make_frame(60).drop(columns=["site"]), source="expert")
    X = ds.patterns().drop(columns="label")
    version = store.models.register(
        LogisticRegression().fit(X, ds.patterns()["label"]), "clf", X=X, dataset="tumours"
    )
    spool = tmp_path / "spool"
    log = RequestLog(store.location.db_url, spool)
    log.start()
    for i in range(20):
        log.put(request(version.id if i != 5 else 999_999, i))  # no version 999999
    log.stop()
    assert count(store, t.served_requests) == 19
    rejected = list(spool.glob("rejected-*.jsonl"))
    assert len(rejected) == 1
    line = rejected[0].read_text().strip()
    assert '"request_id":"req-5"' in line and "FOREIGN KEY" in line
    assert log.stats["rejected"] == 1


#: One past the largest integer a database column holds (SQLite INTEGER, PostgreSQL BIGINT).
BIG = 2**63


def set_aside(spool: Path) -> list[tuple[bytes, str]]:
    """The records in the spool folder's rejected files, each with the reason given."""
    out = []
    for path in sorted(spool.glob("rejected-*.jsonl")):
        for line in path.read_bytes().splitlines():
            record, _, reason = line.rpartition(b"\t")
            out.append((record, orjson.loads(reason)["error"]))
    return out


def test_rows_that_cannot_be_written_are_set_aside_and_the_rest_stored(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    # Whatever the database or its driver raises for a row (SQLite's OverflowError for
    # an integer past 64 bits, PostgreSQL's type errors, a value that is no number at
    # all), the row is set aside with the reason and the writer goes on.
    spool = tmp_path / "spool"
    log = RequestLog(store.location.db_url, spool, batch=50, interval=0.05)
    log.start()
    v = versions[0].id
    now = timestamps.now_us()
    slow = request(v, 1000)
    slow.latency_us = 2**64
    bad = [
        LoggedFeedback("req-3", BIG, "malignant", None, None, now),
        slow,
        LoggedFeedback("req-4", cast(Any, "two"), "malignant", None, None, now),
        LoggedFeedback("req-5", -BIG - 1, "malignant", None, None, now),
    ]
    for i in range(120):
        log.put(request(v, i))
        if i % 30 == 10:
            log.put(bad[i // 30])
    for i in range(3):
        log.put(LoggedFeedback(f"req-{i}", 0, "benign", None, None, now))
    wait_for(lambda: log.stats["written"] == 123, seconds=15)  # nothing waits behind them
    log.stop(timeout=5)
    assert count(store, t.served_requests) == 120
    assert count(store, t.feedback) == 3
    aside = set_aside(spool)
    assert sorted(orjson.loads(r)["request_id"] for r, _ in aside) == [
        "req-1000",
        "req-3",
        "req-4",
        "req-5",
    ]
    assert all(reason for _, reason in aside)
    assert log.stats["rejected"] == 4 and log.stats["queued"] == 0
    assert not list(spool.glob("requests-*.jsonl"))


_EDGES = [0, 1, 2**31 - 1, 2**31, 2**63 - 1, BIG, 2**64 - 1, 2**64, -1, -BIG, -BIG - 1]
_IDS = itertools.count()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    odd=st.lists(
        st.tuples(
            st.sampled_from(["row", "n", "latency_us", "received_at", "version_id"]),
            st.one_of(st.sampled_from(_EDGES), st.integers(-(2**70), 2**70)),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_integer_is_stored_or_set_aside_and_the_log_goes_on(
    store: trenches.Store,
    versions: list[trenches.ModelVersion],
    tmp_path: Path,
    odd: list[tuple[str, int]],
) -> None:
    k = next(_IDS)
    spool = tmp_path / f"spool-{k}"
    log = RequestLog(store.location.db_url, spool, batch=20, interval=0.02)
    log.start()
    v = versions[0].id
    odd_ids, good_ids = [], []
    for j, (name, value) in enumerate(odd):
        item: LoggedRequest | LoggedFeedback
        if name == "row":
            item = LoggedFeedback(f"odd-{k}-{j}", value, "benign", None, None, 1)
        else:
            item = request(v, j)
            setattr(item, name, value)
        item.request_id = f"odd-{k}-{j}"
        log.put(item)
        odd_ids.append(item.request_id)
        good = request(v, j)
        good.request_id = f"good-{k}-{j}"
        log.put(good)
        good_ids.append(good.request_id)
    log.stop(timeout=10)
    with read(store.engine) as conn:
        stored = set(conn.execute(select(t.served_requests.c.request_id)).scalars())
        stored |= set(conn.execute(select(t.feedback.c.request_id)).scalars())
    aside = [orjson.loads(r)["request_id"] for r, _ in set_aside(spool)]
    assert set(good_ids) <= stored
    # Each odd row is in the database or in the rejected file: one of the two, once.
    assert sorted([i for i in odd_ids if i in stored] + aside) == sorted(odd_ids)
    assert log.stats["queued"] == 0 and log.stats["spilled"] == 0


@contextmanager
def poisoned(store: trenches.Store, request_id: str) -> Iterator[None]:
    """Inserting request ``request_id`` fails with an operational error, the kind a
    locked or unreachable database raises too (a trigger: JSON SQLite cannot parse; a
    program limit on PostgreSQL); every other row is stored as usual."""
    if store.location.sqlite_path is not None:
        db = sqlite3.connect(store.location.sqlite_path, isolation_level=None)
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON served_requests "
            f"WHEN NEW.request_id = '{request_id}' BEGIN SELECT json('{{'); END"
        )
        try:
            yield
        finally:
            db.execute("DROP TRIGGER poison")
            db.close()
        return
    import psycopg

    url = store.location.db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.request_id = '{request_id}' THEN "
            "RAISE EXCEPTION 'row too big' USING ERRCODE = 'program_limit_exceeded'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON served_requests "
            "FOR EACH ROW EXECUTE FUNCTION poison()"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER poison ON served_requests")
            conn.execute("DROP FUNCTION poison()")


def test_a_row_that_keeps_failing_while_others_are_stored_is_set_aside(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    v = versions[0].id
    with poisoned(store, "req-poison"):
        log = RequestLog(store.location.db_url, spool, batch=20, interval=0.05)
        log.start()
        for i in range(60):
            log.put(request(v, i))
            if i == 25:
                poison = request(v, 0)
                poison.request_id = "req-poison"
                log.put(poison)
        wait_for(lambda: log.stats["written"] == 60, seconds=15)
        log.stop(timeout=5)
    assert count(store, t.served_requests) == 60
    aside = set_aside(spool)
    assert [orjson.loads(r)["request_id"] for r, _ in aside] == ["req-poison"]
    assert log.stats["rejected"] == 1


def test_a_spool_row_that_keeps_failing_after_an_outage_is_set_aside_and_the_rest_loaded(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    v = versions[0].id
    with locked(store):
        log = RequestLog(store.location.db_url, spool, interval=0.05, busy_timeout=0.2)
        log.start()
        for i in range(40):
            log.put(request(v, i))
            if i == 20:
                poison = request(v, 0)
                poison.request_id = "req-poison"
                log.put(poison)
        log.stop(timeout=0.5)
    [path] = spool.glob("requests-*.jsonl")
    dead = path.rename(spool / "requests-1-1.jsonl")  # as if left by a server that died
    with poisoned(store, "req-poison"):
        # A quiet server starts while the database is away, which comes back later.
        with locked(store):
            again = RequestLog(store.location.db_url, spool, interval=0.05, busy_timeout=0.2)
            again.start()
            wait_for(lambda: again.stats["failures"] >= 1)
        wait_for(lambda: not dead.exists(), seconds=15)
        again.stop(timeout=5)
    assert count(store, t.served_requests) == 40
    assert [orjson.loads(r)["request_id"] for r, _ in set_aside(spool)] == ["req-poison"]


def test_a_spool_with_bad_lines_loads_everything_else(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    v = versions[0].id
    now = timestamps.now_us()
    with locked(store):
        log = RequestLog(store.location.db_url, spool, interval=0.05, busy_timeout=0.2)
        log.start()
        for i in range(40):
            log.put(request(v, i))
            if i == 20:
                log.put(LoggedFeedback("req-3", BIG, "malignant", None, None, now))
        log.put(LoggedFeedback("req-1", 0, "benign", None, None, now))
        log.stop(timeout=0.5)
    assert log.stats["spilled"] == 42
    [path] = spool.glob("requests-*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    # A line mangled in the middle, one with an integer past 64 bits, and a tail cut
    # short by a crash.
    huge = orjson.loads(lines[5])
    huge["request_id"] = "req-huge"
    lines.insert(10, orjson.dumps(huge).replace(b'"n":1', b'"n":18446744073709551616') + b"\n")
    lines.insert(30, b'{"kind":"request","request_id":"req-x",,}\n')
    lines.append(lines[3][:45])
    dead = spool / "requests-1-1.jsonl"  # as if left by a server that died
    dead.write_bytes(b"".join(lines))
    path.unlink()

    again = RequestLog(store.location.db_url, spool, batch=10)
    again.start()
    again.stop(timeout=5)
    assert count(store, t.served_requests) == 40
    assert count(store, t.feedback) == 1
    assert not dead.exists()
    aside = set_aside(spool)
    reasons = {r.split(b'"request_id":"')[1].split(b'"')[0]: why for r, why in aside}
    assert sorted(reasons) == [b"req-2", b"req-3", b"req-huge", b"req-x"]
    assert "cut short" in reasons[b"req-2"] and "cannot be read" in reasons[b"req-x"]
    assert all(reasons.values())
    assert again.stats["rejected"] == 4 and again.stats["loaded_back"] == 41


@pytest.mark.sqlite_only
def test_spool_files_of_a_live_server_or_another_store_are_left_alone(
    sqlite_store: trenches.Store, tmp_path: Path
) -> None:
    import fcntl

    spool = tmp_path / "spool"
    spool.mkdir()
    line = {
        "kind": "request",
        "request_id": "req-x",
        "version_id": 1,
        "endpoint": "predict",
        "n": 1,
        "inputs": {"columns": ["a"], "data": [[1]]},
        "outputs": {"labels": [1], "scores": None, "values": None},
        "latency_us": 1,
        "received_at": 1,
    }
    other = spool / "requests-1-1.jsonl"
    other.write_bytes(
        orjson.dumps({"kind": "store", "url": "sqlite:////elsewhere/trenches.db"})
        + b"\n"
        + orjson.dumps(line)
        + b"\n"
    )
    live = spool / "requests-2-2.jsonl"
    live.write_bytes(orjson.dumps(line) + b"\n")
    with live.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        log = RequestLog(sqlite_store.location.db_url, spool)
        log.start()
        log.stop()
    assert other.exists() and live.exists()
    assert log.stats["loaded_back"] == 0


# --- a full disk ---------------------------------------------------------------------------


def fill(folder: Path) -> Path:
    """Fill the disk ``folder`` is on with one file, to the last byte it takes."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (1 << 16, 512, 1):
            with suppress(OSError):
                while True:
                    fh.write(b"\0" * size)
    return filler


def lost(metrics: Metrics, reason: str) -> float:
    """The value of trenches_request_log_lost_total for ``reason`` in /metrics' text."""
    text = metrics.render()[0].decode()
    for line in text.splitlines():
        if line.startswith(f'trenches_request_log_lost_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_with_the_database_locked_and_the_spool_disk_full_memory_stays_bounded(
    store: trenches.Store,
    versions: list[trenches.ModelVersion],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trenches.serve.requests")
    metrics = Metrics()
    v = versions[0].id
    with full_disk() as disk:
        fill(disk)
        with locked(store):
            log = RequestLog(
                store.location.db_url,
                disk / "spool",
                batch=20,
                interval=0.02,
                max_queue=100,
                busy_timeout=0.2,
                on_lost=metrics.log_lost,
            )
            log.start()
            most = 0
            for i in range(600):
                log.put(request(v, i))
                most = max(most, log.stats["queued"])
                if i % 100 == 0:
                    time.sleep(0.05)  # the writer takes its batches meanwhile
            held = log.stats
        assert most <= 100
        assert held["written"] == held["spilled"] == 0
        assert held["dropped"] == 600 - held["queued"] > 0
        assert lost(metrics, "dropped") == held["dropped"]
        drops = [r for r in caplog.records if "dropped, and counted" in r.getMessage()]
        assert len(drops) == 1 and drops[0].levelno == logging.WARNING
        # The database is back: what memory held is stored, and logging goes on.
        wait_for(lambda: log.stats["written"] == held["queued"])
        log.put(request(v, 1000))
        log.stop()
    assert count(store, t.served_requests) == held["queued"] + 1
    messages = [r.getMessage() for r in caplog.records]
    assert f"logging again; {held['dropped']} were dropped meanwhile" in "\n".join(messages)
    assert any(
        f"stopped; {held['dropped']} requests and feedback were dropped" in m for m in messages
    )


def test_stopping_on_a_full_disk_spools_whole_records_and_counts_the_rest(
    store: trenches.Store,
    versions: list[trenches.ModelVersion],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trenches.serve.requests")
    v = versions[0].id
    with full_disk(64) as disk:
        spool = disk / "spool"
        with locked(store):
            # The spool alone (the write-ahead file would fill the disk first).
            log = RequestLog(
                store.location.db_url,
                spool,
                interval=0.05,
                busy_timeout=0.2,
                write_ahead=False,
            )
            log.start()
            for i in range(600):  # about 150 kB of records: more than the disk holds
                log.put(request(v, i))
            log.stop(timeout=0.5)  # no traceback: the disk is full
        done = log.stats
        assert done["spilled"] > 0 and done["dropped"] > 0
        assert done["spilled"] + done["dropped"] == 600 and done["queued"] == 0
        assert any(
            f"stopped; {done['dropped']} requests and feedback were dropped" in r.getMessage()
            and r.levelno == logging.ERROR
            for r in caplog.records
        )
        [path] = spool.glob("requests-*.jsonl")
        assert path.read_bytes().endswith(b"\n")  # whole records only
        again = RequestLog(store.location.db_url, spool)
        again.start()
        again.stop()
    assert again.stats["loaded_back"] == done["spilled"] and again.stats["rejected"] == 0
    assert count(store, t.served_requests) == done["spilled"]


@pytest.mark.sqlite_only
def test_a_database_on_a_full_disk_keeps_the_rows_and_stores_them_when_there_is_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "artifacts"))
    with full_disk(2048) as disk, trenches.open(disk / "store") as store:
        ds = store.datasets.create("tumours", task="classification", label="label")
        ds.add(make_frame(60).drop(columns=["site"]), source="expert")
        X = ds.patterns().drop(columns="label")
        version = store.models.register(
            LogisticRegression().fit(X, ds.patterns()["label"]), "clf", X=X, dataset="tumours"
        )
        db = sqlite3.connect(store.location.sqlite_path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # a write must grow the files
        db.close()
        filler = fill(disk)
        spool = tmp_path / "spool"
        log = RequestLog(
            store.location.db_url, spool, batch=20, interval=0.02, max_queue=50, busy_timeout=0.2
        )
        log.start()
        for i in range(200):
            log.put(request(version.id, i))
        wait_for(lambda: log.stats["failures"] >= 3)  # "database or disk is full", retried
        held = log.stats
        assert held["written"] == held["rejected"] == held["dropped"] == 0
        assert held["queued"] <= 50 and held["queued"] + held["spilled"] == 200
        assert not list(spool.glob("rejected-*"))
        filler.unlink()
        wait_for(lambda: log.stats["written"] == 200)
        log.stop()
        assert count(store, t.served_requests) == 200
        assert log.stats["rejected"] == log.stats["dropped"] == 0


# --- store.requests ------------------------------------------------------------------------


@pytest.fixture
def logged(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> dict[str, Any]:
    """Three logged requests: a (1 row, clf@1), b (2 rows, clf@2), c (1 row, clf@1)."""
    X = store.datasets.get("tumours").patterns().drop(columns="label")
    rows = {"a": X.iloc[:1], "b": X.iloc[1:3], "c": X.iloc[3:4]}
    by = {"a": versions[0], "b": versions[1], "c": versions[0]}
    log = RequestLog(store.location.db_url, tmp_path / "spool")
    log.start()
    base = timestamps.parse("2026-03-01")
    assert base is not None
    for k, (name, frame) in enumerate(rows.items()):
        data = frame.to_numpy(dtype=object).tolist()
        log.put(
            LoggedRequest(
                request_id=name,
                version_id=by[name].id,
                endpoint="v2",
                n=len(frame),
                inputs=lambda frame=frame, data=data: {
                    "columns": list(frame.columns),
                    "data": data,
                },
                outputs={"labels": ["benign"] * len(frame), "scores": None, "values": None},
                latency_us=1500,
                received_at=base + k * 3_600_000_000,  # an hour apart
            )
        )
    log.stop()
    return {"X": X, "rows": rows}


def test_list_reads_requests_with_versions_times_and_feedback(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    frame = store.requests.list()
    assert list(frame.columns) == [
        "request_id",
        "version",
        "endpoint",
        "n",
        "inputs",
        "outputs",
        "latency_ms",
        "received_at",
        "arm",
        "shadow_of",
        "feedback",
    ]
    assert list(frame["request_id"]) == ["a", "b", "c"]
    assert frame["arm"].isna().all() and frame["shadow_of"].isna().all()  # no policy
    assert list(frame["version"]) == ["clf@1", "clf@2", "clf@1"]
    assert list(frame["n"]) == [1, 2, 1]
    assert frame["latency_ms"].tolist() == [1.5, 1.5, 1.5]
    assert frame["received_at"].iloc[0] == pd.Timestamp("2026-03-01", tz="UTC")
    assert frame["inputs"].iloc[1]["data"] == logged["rows"]["b"].to_numpy(dtype=object).tolist()
    assert frame["feedback"].isna().all()

    assert list(store.requests.list(limit=2)["request_id"]) == ["b", "c"]
    assert list(store.requests.list(version="clf@1")["request_id"]) == ["a", "c"]
    assert list(store.requests.list(version="clf")["request_id"]) == ["a", "b", "c"]
    window = store.requests.list(since="2026-03-01T00:30Z", until="2026-03-01T02:00Z")
    assert list(window["request_id"]) == ["b"]
    with pytest.raises(NotFound):
        store.requests.list(version="nope")

    store.requests.feedback("b", row=1, label="malignant", comment="biopsy")
    feedback = store.requests.list()["feedback"].iloc[1]
    assert [(f["row"], f["label"], f["comment"], f["pattern_id"]) for f in feedback] == [
        (1, "malignant", "biopsy", None)
    ]


def test_pages_of_the_log_go_back_from_the_newest_and_a_request_names_its_version(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    assert store.requests.count() == 3
    assert store.requests.count(version="clf@1") == 2
    assert store.requests.count(since="2026-03-01T00:30Z") == 2
    assert list(store.requests.list(limit=2, offset=1)["request_id"]) == ["a", "b"]
    assert list(store.requests.list(limit=1, offset=2)["request_id"]) == ["a"]
    assert store.requests.list(limit=5, offset=3).empty
    assert store.requests.served_by("b") == "clf@2"
    with pytest.raises(NotFound, match="no request 'zzz'"):
        store.requests.served_by("zzz")
    with pytest.raises(InvalidInput, match="offset -1"):
        store.requests.list(offset=-1)


def test_traffic_counts_requests_rows_and_latency_per_bucket(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    hour = 3_600_000_000
    frame = store.requests.traffic(every=hour)
    assert list(frame.columns) == [
        "start",
        "requests",
        "rows",
        "latency_ms_mean",
        "latency_ms_max",
    ]
    assert frame["start"].tolist() == [
        pd.Timestamp("2026-03-01T00:00", tz="UTC"),
        pd.Timestamp("2026-03-01T01:00", tz="UTC"),
        pd.Timestamp("2026-03-01T02:00", tz="UTC"),
    ]
    assert frame["rows"].tolist() == [1, 2, 1]
    assert frame["latency_ms_max"].tolist() == [1.5, 1.5, 1.5]
    # One bucket of a day holds them all; one version's only its own.
    (day,) = store.requests.traffic(every=24 * hour).itertuples()
    assert (day.requests, day.rows, day.latency_ms_mean) == (3, 4, 1.5)
    assert store.requests.traffic(version="clf@1", every=24 * hour)["requests"].tolist() == [2]
    # Without a width, the two hours of the log are cut into at most 48 buckets.
    chosen = store.requests.traffic()
    assert chosen["requests"].sum() == 3 and len(chosen) == 3
    assert store.requests.traffic(since="2999-01-01").empty
    with pytest.raises(InvalidInput, match="every 0"):
        store.requests.traffic(every=0)


def test_feedback_is_checked_before_it_is_stored(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    with pytest.raises(NotFound, match="no request 'zzz'"):
        store.requests.feedback("zzz", label="benign")
    with pytest.raises(InvalidInput, match="has 2 rows; there is no row 2"):
        store.requests.feedback("b", row=2, label="benign")
    with pytest.raises(InvalidInput, match=r"a label .* or a rating"):
        store.requests.feedback("a")
    with pytest.raises(InvalidInput, match="not a finite number"):
        store.requests.feedback("a", rating=float("nan"))
    assert count(store, t.feedback) == 0
    done = store.requests.feedback("a", rating=2)
    assert (done.request_id, done.row, done.rating, done.label) == ("a", 0, 2.0, None)
    assert [f.rating for f in store.requests.get_feedback("a")] == [2.0]


def _patterns(store: trenches.Store) -> int:
    """Every pattern stored, active or not: each is in one import's range."""
    b = t.import_batches.c
    with read(store.engine) as conn:
        return int(conn.execute(select(func.coalesce(func.sum(b.rows), 0))).scalar_one())


def test_to_patterns_stores_nothing_if_a_request_is_unknown_or_unlabelled(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    store.requests.feedback("a", label="malignant")
    store.requests.feedback("c", rating=1)  # a rating is no label
    before = _patterns(store)
    with pytest.raises(InvalidInput, match="no requests nope1, nope2 in the log"):
        store.requests.to_patterns(["a", "nope1", "nope2"])
    with pytest.raises(InvalidInput, match="request c has no feedback with a label"):
        store.requests.to_patterns(["a", "c"])
    with pytest.raises(InvalidInput, match="requests b, c have no feedback with a label"):
        store.requests.to_patterns(["a", "b", "c"])
    assert _patterns(store) == before
    with read(store.engine) as conn:
        assert conn.execute(select(t.feedback.c.pattern_id)).scalars().all() == [None, None]


def test_labelled_rows_become_production_patterns_once(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    store.requests.feedback("a", label="benign")
    store.requests.feedback("a", label="malignant")  # the newest label counts
    store.requests.feedback("b", row=1, label="malignant")
    before = _patterns(store)
    result = store.requests.to_patterns(["a", "b"])
    assert [(p.request_id, p.row, p.new) for p in result.patterns] == [
        ("a", 0, True),
        ("b", 1, True),
    ]
    assert result.dataset == ("tumours",) and result.problem_result is None
    assert _patterns(store) == before + 2
    ds = store.datasets.get("tumours")
    ids = [p.pattern_id for p in result.patterns]
    made = ds.patterns(ids=ids)
    rows = logged["rows"]
    expected = pd.concat([rows["a"], rows["b"].iloc[[1]]])
    assert made[COLUMNS].to_numpy().tolist() == expected[COLUMNS].to_numpy().tolist()
    assert list(made["label"]) == ["malignant", "malignant"]
    info = ds.pattern_info().loc[ids]
    assert set(info["source"]) == {"production"}
    # The newest labelled feedback of each row points at its pattern.
    linked = store.requests.get_feedback("a")
    assert [f.pattern_id for f in linked] == [None, ids[0]]

    again = store.requests.to_patterns(["b", "a"])
    assert again.created == ()
    assert [(p.request_id, p.pattern_id) for p in again.skipped] == [("b", ids[1]), ("a", ids[0])]
    assert _patterns(store) == before + 2


def test_a_run_cut_short_before_the_link_is_finished_not_repeated(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    store.requests.feedback("c", label="malignant")
    first = store.requests.to_patterns(["c"])
    # As if the process died after the import, before the feedback was linked.
    with write(store.engine) as conn:
        conn.execute(update(t.feedback).values(pattern_id=None))
    before = _patterns(store)
    second = store.requests.to_patterns(["c"])
    assert [p.pattern_id for p in second.patterns] == [p.pattern_id for p in first.patterns]
    assert _patterns(store) == before


def test_to_patterns_with_a_problem_backfills_every_version(
    store: trenches.Store, logged: dict[str, Any]
) -> None:
    store.problems.create("big-benign", dataset="tumours", title="Big tumours called benign")
    store.requests.feedback("a", label="malignant")
    store.requests.feedback("b", row=0, label="malignant")
    result = store.requests.to_patterns(["a", "b"], problem="big-benign")
    ids = tuple(p.pattern_id for p in result.patterns)
    assert store.problems.get("big-benign").positive == ids
    assert result.problem_result is not None
    assert (result.problem_result.added, result.problem_result.versions) == (2, 2)
    scores = store.problems.scores("big-benign")
    assert [(s.predictor, s.positive_total, s.missing) for s in scores] == [
        ("clf@1", 2, 0),
        ("clf@2", 2, 0),
    ]
    # Again: nothing new, and the problem holds them already.
    again = store.requests.to_patterns(["a", "b"], problem="big-benign")
    assert again.created == () and again.problem_result is not None
    assert again.problem_result.already == 2
    with pytest.raises(NotFound):
        store.requests.to_patterns(["a"], problem="no-such-problem")


# --- the command line ----------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_requests_commands(store: trenches.Store, logged: dict[str, Any]) -> None:
    at = ("--store", str(store.location.sqlite_path))
    code, out, err = cli(*at, "requests", "feedback", "a", "--label", "malignant")
    assert code == 0, err
    assert "feedback on a, row 0: label malignant" in out
    code, out, err = cli(*at, "requests", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [r["request_id"] for r in listed] == ["a", "b", "c"]
    assert listed[0]["received_at"] == "2026-03-01T00:00:00Z"
    assert listed[0]["feedback"][0]["label"] == "malignant"
    code, out, _ = cli(*at, "requests", "list", "--limit", "1", "--version", "clf@1")
    assert code == 0 and "clf@1" in out and " c " in f" {out} " and "benign" in out

    cli(*at, "problems", "create", "p", "--dataset", "tumours", "--title", "P")
    code, out, err = cli(*at, "requests", "to-patterns", "a", "--problem", "p", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert len(made["created"]) == 1 and made["problem_added"]["versions"] == 2
    code, out, err = cli(*at, "requests", "to-patterns", "a")
    assert code == 0 and "skipped" in err

    code, _, err = cli(*at, "requests", "to-patterns", "a", "nope")
    assert code == 2 and "no request nope in the log" in err
    code, _, err = cli(*at, "requests", "feedback", "a", "--row", "3", "--rating", "1")
    assert code == 2 and "there is no row 3" in err
    code, _, err = cli(*at, "requests", "list", "--since", "yesterday-ish")
    assert code == 2 and "is not a time" in err


def test_each_record_is_written_ahead_until_it_is_stored(
    store: trenches.Store, versions: list[trenches.ModelVersion], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    log = RequestLog(store.location.db_url, spool, batch=7)
    for i in range(20):
        log.put(request(versions[0].id, i))
    [ahead] = spool.glob("requests-*-wal*.jsonl")
    lines = ahead.read_bytes().splitlines()
    assert len(lines) == 21  # the database's line, then a record each, before any write
    assert b'"request_id":"req-19"' in lines[-1]
    log.start()
    log.stop()
    assert count(store, t.served_requests) == 20 and log.stats["spilled"] == 0
    assert not list(spool.glob("*.jsonl")), "stored: nothing is left ahead"
