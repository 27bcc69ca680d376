"""``trenches compact``: inline predictions move into the Iceberg table, small files
merge, replaced snapshots and unreached files go, and nothing anyone reads changes,
even when the compaction is killed on the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

import trenches
from trenches import predictions
from trenches.db import schema as t
from trenches.db.engine import read, write

from conftest import baseline_predictor, make_frame


def _fill(store: trenches.Store, predictors: int, batches: int, size: int) -> list[int]:
    """``predictors`` baselines, each with ``batches`` blocks of ``size`` predictions
    (with ``INLINE_ROWS`` patched by the caller, to the table or inline)."""
    ds = store.datasets.create("d", task="classification", label="label")
    ds.add(make_frame(20), source="expert")
    made = []
    rng = np.random.default_rng(0)
    for i in range(predictors):
        with write(store.engine) as conn:
            made.append(baseline_predictor(conn, f"b{i}", ds.id, ["a", "b", "c"]))
    for j in range(batches):
        for p in made:
            ids = np.arange(j * size + 1, (j + 1) * size + 1)
            scores = rng.random((size, 3))
            with write(store.engine) as conn:
                predictions.write_block(
                    conn,
                    p,
                    predictions.Block(
                        ids,
                        label_index=scores.argmax(axis=1),
                        scores=scores,
                        correct=rng.random(size) < 0.5,
                        loss=rng.random(size),
                    ),
                )
    return made


def _everything(store: trenches.Store, made: list[int]) -> list[list[object]]:
    out = []
    with read(store.engine) as conn:
        for p in made:
            found = predictions.read(conn, p)
            out.append(
                [
                    found.pattern_ids.tolist(),
                    found.label_index.tolist(),  # type: ignore[union-attr]
                    _plain(found.scores),
                    found.correct.tolist(),  # type: ignore[union-attr]
                    _plain(found.loss),
                ]
            )
    return out


def _predictions_of(done: trenches.Compaction) -> trenches.TableCompaction:
    [table] = [t for t in done.tables if t.table == "predictions"]
    return table


def _plain(a: np.ndarray | None) -> object:
    """Numbers as lists, NaN as None (NaN is not equal to itself)."""
    assert a is not None
    return np.where(np.isnan(a), None, a).tolist()


def _inline(store: trenches.Store) -> int:
    with read(store.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(t.prediction_blocks)).scalar_one())


def _parquet_files(store: trenches.Store) -> set[str]:
    """The Parquet files under the table's folder (local or on S3), by path under the
    artifacts location."""
    from trenches.tables.io import file_system

    fs = file_system(store.artifacts.root)
    return {p for p in fs.find("tables/predictions") if p.endswith(".parquet")}


def test_compact_moves_merges_and_removes_and_every_read_stays_the_same(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 30)
    made = _fill(store, predictors=3, batches=4, size=40)  # 12 appends to the table
    monkeypatch.setattr(predictions, "INLINE_ROWS", 10**9)
    extra = _fill_more(store, made)  # and 6 inline blocks
    before = _everything(store, made)
    assert _inline(store) == extra

    kept = store.compact()  # the default: nothing replaced long enough ago goes
    assert kept.predictions_moved == extra * 5
    assert _inline(store) == 0
    table = _predictions_of(kept)
    assert (table.table, table.partitions_merged, table.files_after) == ("predictions", 3, 3)
    assert table.files_removed == 0 and table.snapshots_expired == 0
    assert _everything(store, made) == before

    gone = store.compact(older_than="0s")
    table = _predictions_of(gone)
    assert table.snapshots_expired > 0 and table.files_removed > 0
    assert _everything(store, made) == before
    on_disk = _parquet_files(store)
    assert len(on_disk) == 3, "one file per predictor is all that is left"
    with read(store.engine) as conn:
        reached = predictions.tables.of(conn).files(conn, "predictions")
    assert {f.removeprefix("trenches:///") for f in reached} == on_disk


def _fill_more(store: trenches.Store, made: list[int]) -> int:
    """Two more inline blocks per predictor, of 5 predictions each: returns how many."""
    n = 0
    for p in made:
        for start in (9_000, 9_100):
            with write(store.engine) as conn:
                predictions.write_block(
                    conn,
                    p,
                    predictions.Block(
                        np.arange(start, start + 5),
                        label_index=np.zeros(5, dtype=np.int32),
                        correct=np.ones(5, dtype=bool),
                    ),
                )
            n += 1
    return n


def test_compact_on_the_command_line_says_what_it_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trenches.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    monkeypatch.setattr(predictions, "INLINE_ROWS", 30)
    with trenches.open(tmp_path / ".trenches") as store:
        _fill(store, predictors=2, batches=2, size=40)
    with pytest.raises(SystemExit) as done:
        main(["compact", "--older-than", "0s", "--json"])
    assert done.value.code in (0, None)


def test_compact_refuses_a_span_it_cannot_read(
    sqlite_store: trenches.Store,
) -> None:
    with pytest.raises(trenches.InvalidInput, match="--older-than"):
        sqlite_store.compact(older_than="three days")


@pytest.mark.slow
def test_a_compaction_killed_at_any_point_leaves_every_read_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    monkeypatch.setattr(predictions, "INLINE_ROWS", 30)
    folder = tmp_path / "store"
    with trenches.open(folder) as store:
        made = _fill(store, predictors=30, batches=3, size=40)
        before = _everything(store, made)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = 0
    for delay in (1.5, 2.5, 3.5):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trenches",
                "--store",
                str(folder),
                "compact",
                "--older-than",
                "0s",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(delay)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.communicate()
        with trenches.open(folder, create=False) as store:
            assert _everything(store, made) == before
    assert killed, "every compaction ended before it could be killed"
    with trenches.open(folder, create=False) as store:
        done = store.compact(older_than="0s")
        assert _everything(store, made) == before
        assert _predictions_of(done).files_after == 30
        as_json = json.loads(json.dumps(trenches.to_json(done)))
        assert "predictions" in {t["table"] for t in as_json["tables"]}
