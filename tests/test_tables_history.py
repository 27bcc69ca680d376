"""A table's Iceberg history stays short (trenches.tables.history): each commit forgets
the oldest snapshots beyond the newest few that only appends followed, every read
stays the same, a merge's predecessors are left to ``trenches compact``, and a reader
that loaded the table before its snapshot was forgotten still reads it after a
compaction."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation

import trenches
from trenches import predictions, tables
from trenches.db.engine import read, write
from trenches.tables import history

from conftest import baseline_predictor, make_frame


def _predictor(store: trenches.Store) -> int:
    ds = store.datasets.create("d", task="classification", label="label")
    ds.add(make_frame(20), source="expert")
    with write(store.engine) as conn:
        return baseline_predictor(conn, "b", ds.id, ["a", "b", "c"])


def _append(store: trenches.Store, predictor: int, start: int, n: int = 10) -> None:
    """One commit of ``n`` predictions to the table (``INLINE_ROWS`` is patched low)."""
    ids = np.arange(start, start + n)
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                ids,
                label_index=ids % 3,
                scores=np.full((n, 3), 1 / 3),
                correct=ids % 2 == 0,
                loss=np.ones(n),
            ),
        )


def _table(store: trenches.Store) -> Table:
    with read(store.engine) as conn:
        table = tables.of(conn).load(conn, "predictions")
    assert table is not None
    return table


def _ids(store: trenches.Store, predictor: int) -> list[int]:
    with read(store.engine) as conn:
        return predictions.read(conn, predictor).pattern_ids.tolist()


@pytest.fixture
def few(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 5)
    monkeypatch.setattr(history, "KEPT", 4)
    return 4


def test_a_table_keeps_its_newest_snapshots_and_every_row(store: trenches.Store, few: int) -> None:
    predictor = _predictor(store)
    for k in range(12):
        _append(store, predictor, 100 * k)
        metadata = _table(store).metadata
        assert len(metadata.snapshots) == min(k + 1, few + 1)
    assert [e.snapshot_id for e in metadata.snapshot_log][-1] == metadata.current_snapshot_id
    assert _ids(store, predictor) == [i for k in range(12) for i in range(100 * k, 100 * k + 10)]


def test_a_merge_and_what_came_before_it_are_left_to_compact(
    store: trenches.Store, few: int
) -> None:
    predictor = _predictor(store)
    for k in range(3):
        _append(store, predictor, 100 * k)
    store.compact()  # merges the predictor's files: a replace, nothing expired yet
    metadata = _table(store).metadata
    merged = [s.snapshot_id for s in metadata.snapshots if s.summary.operation != Operation.APPEND]
    assert merged
    for k in range(3, 12):
        _append(store, predictor, 100 * k)
    kept = {s.snapshot_id for s in _table(store).metadata.snapshots}
    assert set(merged) <= kept  # the merge and the three appends it replaced stay
    assert len(kept) == 3 + 1 + (few + 1)
    assert len(_ids(store, predictor)) == 120


def test_a_reader_of_a_forgotten_snapshot_still_reads_it_after_a_compaction(
    store: trenches.Store, few: int
) -> None:
    """A compaction removes the files of forgotten snapshots written before its cut-off,
    except what a metadata file written since reaches: here every data and manifest
    file is made four days old, and the reader loaded the table a moment ago."""
    predictor = _predictor(store)
    for k in range(3):
        _append(store, predictor, 100 * k)
    reader = _table(store)  # loaded now; its snapshot is about to be forgotten
    for k in range(3, 3 + few + 2):
        _append(store, predictor, 100 * k)
    assert reader.metadata.current_snapshot_id not in {
        s.snapshot_id for s in _table(store).metadata.snapshots
    }
    if not Path(store.artifacts.root).is_dir():
        pytest.skip("the files' times are set on a local folder (S3 keeps its own)")
    old = time.time() - 4 * 86_400
    for path in Path(store.artifacts.root).rglob("tables/predictions/*/*"):
        if not path.name.endswith(".metadata.json"):
            os.utime(path, (old, old))
    store.compact()
    assert len(reader.scan().to_arrow()) == 30


def test_compact_expires_many_snapshots_in_one_change(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 5)
    monkeypatch.setattr(history, "KEPT", 10**6)  # commits keep everything here
    predictor = _predictor(store)
    for k in range(60):
        _append(store, predictor, 100 * k, n=6)
    assert len(_table(store).metadata.snapshots) == 60
    done = store.compact(older_than="0s")
    [table] = [t for t in done.tables if t.table == "predictions"]
    assert table.snapshots_expired >= 59
    assert len(_ids(store, predictor)) == 360
