"""Predictions in the Iceberg table: a block of ``INLINE_ROWS`` or more is appended to
the table ``predictions`` (partitioned by predictor), a smaller one stays a row of SQL,
and every read gives the same answer whichever way each block was stored."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trenches
from trenches import prediction_commits, predictions, tables
from trenches.db import schema as t
from trenches.db.engine import read, write

from conftest import baseline_predictor, make_frame


def _predictor(store: trenches.Store, classes: list[str] | None = None) -> int:
    if "d" in store.datasets:
        ds = store.datasets["d"]
    else:
        ds = store.datasets.create("d", task="classification", label="label")
        ds.add(make_frame(20), source="expert")
    with write(store.engine) as conn:
        n = conn.execute(t.baselines.select()).all()
        return baseline_predictor(conn, f"b{len(n)}", ds.id, classes or ["no", "yes", "maybe"])


def _block(ids: np.ndarray, seed: int) -> predictions.Block:
    rng = np.random.default_rng(seed)
    n = len(ids)
    scores = rng.random((n, 3))
    loss = rng.random(n)
    loss[rng.random(n) < 0.2] = np.nan
    return predictions.Block(
        ids,
        label_index=scores.argmax(axis=1).astype(np.int32),
        scores=scores,
        correct=rng.random(n) < 0.5,
        loss=loss,
    )


def _same(a: predictions.Predictions, b: predictions.Predictions) -> None:
    assert np.array_equal(a.pattern_ids, b.pattern_ids)
    for name in ("label_index", "values", "correct"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y), name
    assert np.array_equal(a.loss, b.loss, equal_nan=True)
    assert (a.scores is None) == (b.scores is None)
    if a.scores is not None:
        assert np.array_equal(a.scores, b.scores, equal_nan=True)


def test_a_large_block_goes_to_the_table_and_reads_back_as_a_small_one_does(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    small, large = _predictor(store), _predictor(store)
    ids = np.random.default_rng(1).permutation(np.arange(1, 10_011))
    for predictor, inline_rows in ((small, 10**9), (large, 1000)):
        monkeypatch.setattr(predictions, "INLINE_ROWS", inline_rows)
        with write(store.engine) as conn:
            predictions.write_block(conn, predictor, _block(ids[:6000], 7))
            predictions.write_block(conn, predictor, _block(ids[6000:6010], 8))
            predictions.write_block(conn, predictor, _block(ids[6010:], 9))
    with read(store.engine) as conn:
        inline = conn.execute(
            t.prediction_blocks.select().where(t.prediction_blocks.c.predictor_id == large)
        ).all()
        assert [row.n for row in inline] == [10]  # the others are in the table
        _same(predictions.read(conn, small), predictions.read(conn, large))
        some = np.array([3, 4, 5000, 6001, 9999, 10_000, 20_000])
        _same(predictions.read_some(conn, small, some), predictions.read_some(conn, large, some))
        assert predictions.count(conn, large) == predictions.count(conn, small) == 10_010
        assert np.array_equal(predictions.predicted_ids(conn, large), np.arange(1, 10_011))
        only = predictions.read(conn, large, columns=("correct",))
        assert only.scores is None and only.label_index is None and only.correct is not None
    from trenches.tables.io import file_system

    files = file_system(store.artifacts.root).find("tables/predictions")
    assert any(f.endswith(".parquet") for f in files), "the large blocks are Parquet files"


def test_a_prediction_in_the_table_is_still_stored_once(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 2)
    predictor = _predictor(store)
    with write(store.engine) as conn:
        predictions.write_block(conn, predictor, _block(np.array([1, 2, 3]), 0))
    with pytest.raises(trenches.Conflict), write(store.engine) as conn:
        predictions.write_block(conn, predictor, _block(np.array([3, 4]), 0))
    with write(store.engine) as conn:
        stored = predictions.write_block(
            conn, predictor, _block(np.array([3, 4, 5]), 0), skip_existing=True
        )
    assert stored == 2
    with read(store.engine) as conn:
        assert list(predictions.read(conn, predictor).pattern_ids) == [1, 2, 3, 4, 5]


def test_a_write_that_fails_leaves_no_row_in_the_table(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 2)
    predictor = _predictor(store)
    with pytest.raises(RuntimeError), write(store.engine) as conn:
        predictions.write_block(conn, predictor, _block(np.arange(1, 50), 0))
        raise RuntimeError("the process fails before its transaction commits")
    with read(store.engine) as conn:
        assert len(predictions.read(conn, predictor)) == 0
        assert predictions.count(conn, predictor) == 0


def test_a_copied_store_folder_reads_its_tables_where_they_now_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRENCHES_ARTIFACTS", raising=False)
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    monkeypatch.setattr(predictions, "INLINE_ROWS", 2)
    with trenches.open(tmp_path / "here") as store:
        predictor = _predictor(store)
        with write(store.engine) as conn:
            predictions.write_block(conn, predictor, _block(np.arange(1, 30), 3))
        with read(store.engine) as conn:
            before = predictions.read(conn, predictor)
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    shutil.rmtree(tmp_path / "here")
    with trenches.open(tmp_path / "there", create=False) as store, read(store.engine) as conn:
        _same(predictions.read(conn, predictor), before)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    inline_rows=st.integers(1, 50),
    asked=st.lists(st.integers(1, 300), max_size=12),
)
def test_reads_do_not_depend_on_where_each_block_went(
    sqlite_store: trenches.Store,
    monkeypatch: pytest.MonkeyPatch,
    sizes: list[int],
    inline_rows: int,
    asked: list[int],
) -> None:
    store = sqlite_store
    ids = np.random.default_rng(len(sizes)).permutation(np.arange(1, 301))
    cuts = np.cumsum([0, *sizes])
    reference, mixed = _predictor(store), _predictor(store)
    for predictor, inline in ((reference, 10**9), (mixed, inline_rows)):
        monkeypatch.setattr(predictions, "INLINE_ROWS", inline)
        for i, (a, b) in enumerate(itertools.pairwise(cuts)):
            with write(store.engine) as conn:
                predictions.write_block(conn, predictor, _block(ids[a:b], i))
    written = predictions.joined_blocks(
        [_block(ids[a:b], i) for i, (a, b) in enumerate(itertools.pairwise(cuts))]
    )
    by_id = np.argsort(written.pattern_ids)
    with read(store.engine) as conn:
        whole = predictions.read(conn, mixed)
        _same(predictions.read(conn, reference), whole)
    # What was written, by ascending id, however the blocks' ids interleave.
    assert np.array_equal(whole.pattern_ids, written.pattern_ids[by_id])
    assert whole.label_index is not None and written.label_index is not None
    assert np.array_equal(whole.label_index, written.label_index[by_id])
    assert whole.scores is not None and written.scores is not None
    assert np.array_equal(whole.scores, written.scores[by_id])
    with read(store.engine) as conn:
        _same(
            predictions.read_some(conn, reference, asked),
            predictions.read_some(conn, mixed, asked),
        )
        assert predictions.count(conn, mixed) == cuts[-1]


def _parquet_files(store: trenches.Store) -> set[str]:
    from trenches.tables.io import file_system

    found = file_system(store.artifacts.root).find("tables/predictions")
    return {f for f in found if f.endswith(".parquet")}


def test_a_part_written_as_files_elsewhere_reads_back_once_committed(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Dask worker does with a part (writes the table's files) and the client
    then (commits them) stores what one process's write stores, and nothing is seen
    before the commit."""
    monkeypatch.setattr(predictions, "INLINE_ROWS", 1000)
    here, there = _predictor(store), _predictor(store)
    ids = np.random.default_rng(3).permutation(np.arange(1, 5001))
    block = _block(ids, 4)
    with write(store.engine) as conn:
        predictions.write_block(conn, here, block)
        prediction_commits.ready(conn)
    with read(store.engine) as conn:
        part = prediction_commits.write_part(conn, there, block, inline_below=1000)
        assert part.files and part.block is None
        assert predictions.count(conn, there) == 0  # written, not committed
    with write(store.engine) as conn:
        assert prediction_commits.commit_part(conn, there, part) == 5000
    with read(store.engine) as conn:
        _same(predictions.read(conn, here), predictions.read(conn, there))
    with read(store.engine) as conn:  # a small part comes back as its block
        small = prediction_commits.write_part(conn, there, _block(np.array([9, 8]), 5))
    assert small.files is None and small.block is not None


def test_a_part_committed_after_another_writer_keeps_the_first_predictions(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    predictor = _predictor(store)
    with write(store.engine) as conn:
        prediction_commits.ready(conn)
    with read(store.engine) as conn:
        part = prediction_commits.write_part(
            conn, predictor, _block(np.arange(1, 101), 6), inline_below=10
        )
    first = _block(np.arange(40, 61), 7)  # another process got there first
    with write(store.engine) as conn:
        predictions.write_block(conn, predictor, first)
    with write(store.engine) as conn:
        assert prediction_commits.commit_part(conn, predictor, part) == 79
    with read(store.engine) as conn:
        got = predictions.read(conn, predictor)
    assert list(got.pattern_ids) == list(range(1, 101))
    assert got.scores is not None and first.scores is not None
    assert np.array_equal(got.scores[39:60], first.scores)


def test_the_files_of_a_part_never_committed_are_removed_by_compact(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker lost after writing its part's files and before the client committed
    them leaves strays: no read sees them, and ``trenches compact`` removes them."""
    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    predictor = _predictor(store)
    with write(store.engine) as conn:
        predictions.write_block(conn, predictor, _block(np.arange(1, 51), 1))
    kept = _parquet_files(store)
    with read(store.engine) as conn:
        lost = prediction_commits.write_part(
            conn, predictor, _block(np.arange(51, 101), 2), inline_below=10
        )
    assert lost.files and _parquet_files(store) > kept
    with read(store.engine) as conn:
        assert list(predictions.read(conn, predictor).pattern_ids) == list(range(1, 51))
    store.compact(older_than="0s")
    left = {f.rsplit("/", 1)[-1] for f in _parquet_files(store)}
    assert not left & {f.file_path.rsplit("/", 1)[-1] for f in lost.files}
    with read(store.engine) as conn:
        assert list(predictions.read(conn, predictor).pattern_ids) == list(range(1, 51))


def test_parts_committed_together_are_one_commit_unless_another_writer_came_first(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster's client commits every part that came back since its last commit at
    once: one Iceberg commit for their files; when another process stored some of
    their predictions meanwhile, part by part, keeping the first predictions."""
    monkeypatch.setattr(predictions, "INLINE_ROWS", 10)
    together, apart = _predictor(store), _predictor(store)
    with write(store.engine) as conn:
        prediction_commits.ready(conn)
    spans = [(1, 41), (41, 81), (81, 86)]  # the last is small: a block

    def parts(predictor: int) -> list[prediction_commits.Part]:
        with read(store.engine) as conn:
            return [
                prediction_commits.write_part(
                    conn, predictor, _block(np.arange(a, b), a), inline_below=10
                )
                for a, b in spans
            ]

    def snapshots() -> int:
        with read(store.engine) as conn:
            table = tables.of(conn).load(conn, predictions.TABLE)
            assert table is not None
            return len(table.metadata.snapshots)

    first = parts(together)
    before = snapshots()
    with write(store.engine) as conn:
        assert prediction_commits.commit_parts(conn, together, first) == [40, 40, 5]
    assert snapshots() == before + 1
    later = parts(apart)
    with write(store.engine) as conn:
        predictions.write_block(conn, apart, _block(np.arange(50, 60), 9))
    with write(store.engine) as conn:
        assert prediction_commits.commit_parts(conn, apart, later) == [40, 30, 5]
    with read(store.engine) as conn:
        a, b = predictions.read(conn, together), predictions.read(conn, apart)
    assert list(a.pattern_ids) == list(b.pattern_ids) == list(range(1, 86))
    assert a.scores is not None and b.scores is not None
    assert np.array_equal(a.scores[:49], b.scores[:49])
    assert not np.array_equal(a.scores[49:59], b.scores[49:59])  # the first writer's
