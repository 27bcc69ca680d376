"""A process killed (SIGKILL) in the middle of a large import leaves the store as it was
before that import, and the store keeps working (DESIGN.md, invariant 7)."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import trenches
from trenches.patterns.imports import CHUNK_ROWS

from conftest import PostgresServer

COLUMNS = [f"f{i}" for i in range(20)]
BIG_ROWS = 400_000  # eight chunks: seconds of work after the first one is written


def wide_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(COLUMNS))), columns=COLUMNS)
    frame["label"] = rng.choice(["a", "b"], n)
    return frame


@pytest.fixture(scope="module")
def big_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert BIG_ROWS >= 4 * CHUNK_ROWS, "the import must have chunks left after the kill"
    path = tmp_path_factory.mktemp("kill") / "big.parquet"
    wide_frame(BIG_ROWS, seed=42).to_parquet(path)
    return path


_IMPORTER = textwrap.dedent(
    """
    import sys

    import trenches

    store = trenches.open(sys.argv[1], create=False)
    ds = store.datasets.get("wide")
    print("started", flush=True)
    ds.add_file(
        sys.argv[2],
        source="crowd",
        note="the big one",
        progress=lambda rows: print("chunk", rows, flush=True),
    )
    print("committed", flush=True)
    """
)


def _snapshot_of(store: trenches.Store) -> dict[str, Any]:
    ds = store.datasets.get("wide")
    return {
        "summary": trenches.to_json(ds.summary()),
        "patterns": ds.patterns(include_inactive=True),
        "info": ds.pattern_info(include_inactive=True),
    }


def _kill_mid_import(location: str, parquet: Path, tmp_path: Path) -> None:
    """Run the import in a child process and SIGKILL it once a chunk is encoded, inside
    its transaction and its write lock."""
    env = {k: v for k, v in os.environ.items() if k != "TRENCHES_DB_URL"}
    env["TRENCHES_ARTIFACTS"] = str(tmp_path / "artifacts")
    proc = subprocess.Popen(
        [sys.executable, "-c", _IMPORTER, location, str(parquet)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not ready:
                continue
            line = proc.stdout.readline()
            if line == "":
                break
            seen.append(line.strip())
            if line.startswith("chunk"):
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None and not any(s.startswith("chunk") for s in seen):
            proc.kill()
        out, err = proc.communicate(timeout=60)
    seen += out.split()
    assert any(s.startswith("chunk") for s in seen), f"the import never wrote a chunk:\n{err}"
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    assert "committed" not in seen, "the import finished before the kill; make the file larger"


def _kill_test(location: str, parquet: Path, tmp_path: Path) -> None:
    with trenches.open(location) as store:
        ds = store.datasets.create("wide", task="classification", label="label")
        ds.add(wide_frame(500, seed=1), source="expert", created_at="2026-01-05")
        before = _snapshot_of(store)

    _kill_mid_import(location, parquet, tmp_path)

    with trenches.open(location, create=False) as store:
        after = _snapshot_of(store)
        assert after["summary"] == before["summary"]
        pd.testing.assert_frame_equal(after["patterns"], before["patterns"])
        pd.testing.assert_frame_equal(after["info"], before["info"])
        # The store is not broken: new work goes in, and counts add up.
        ds = store.datasets.get("wide")
        result = ds.add(wide_frame(300, seed=2), source="expert")
        assert result.rows == 300
        assert len(ds.patterns()) == 800
        assert ds.summary().imports == 2
        assert ds.snapshot().verify()


@pytest.mark.slow
def test_kill_during_a_large_import_leaves_the_sqlite_store_as_it_was(
    big_parquet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "artifacts"))
    folder = tmp_path / "store"

    _kill_test(str(folder), big_parquet, tmp_path)
    con = sqlite3.connect(folder / "trenches.db")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.mark.slow
def test_kill_during_a_large_import_leaves_the_postgresql_store_as_it_was(
    big_parquet: Path, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "artifacts"))
    _kill_test(pg_url, big_parquet, tmp_path)
