"""``data add`` of several files (``Dataset.add_files``) on a Dask cluster: a real
LocalCluster of two worker processes reads and writes each file, and the store holds
exactly what an import of the same files in one process leaves (ids, splits, inputs,
labels, digest, import batches), on SQLite with a local folder and on PostgreSQL with
moto's S3 (files there too); a bad row in any file stores nothing of any, and an
import that fails at its commit shows nothing and leaves its files to ``compact``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sqlalchemy import func, select

import trenches
from trenches import compute
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import InvalidInput
from trenches.patterns.imports import ImportResult

from conftest import s3_bucket

# One xdist worker runs them all, so that one cluster serves them.
pytestmark = pytest.mark.xdist_group("dask")

SALT = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def twin(
    store: trenches.Store, store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[trenches.Store]:
    """A second empty store on the store's set-up: the cluster's import goes there, the
    one process's into ``store``, from the same state."""
    if store_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres")
        name = server.create_database(migrated=True)
        artifacts = f"s3://{s3_bucket(request.getfixturevalue('moto_s3'))}/artifacts"
        url = server.url(name)
    else:
        name, artifacts, url = None, str(tmp_path / "twin-artifacts"), str(tmp_path / "twin")
    saved = os.environ["TRENCHES_ARTIFACTS"]
    os.environ["TRENCHES_ARTIFACTS"] = artifacts
    try:
        other = trenches.open(url)
    finally:
        os.environ["TRENCHES_ARTIFACTS"] = saved
    try:
        yield other
    finally:
        other.close()
        if name is not None:
            server.drop_database(name)


def _frame() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def _files(folder: Path, store_url: str, request: pytest.FixtureRequest) -> list[str]:
    """Three files of patterns: a CSV, a Parquet file and a CSV that repeats ten rows of
    the first; beside PostgreSQL, the last two on moto's S3."""
    frame = _frame()
    folder.mkdir(exist_ok=True)
    parts = {
        "a.csv": frame.iloc[:200],
        "b.parquet": frame.iloc[200:400],
        "c.csv": pd.concat([frame.iloc[400:], frame.iloc[:10]]),
    }
    for name, part in parts.items():
        if name.endswith(".csv"):
            part.to_csv(folder / name, index=False)
        else:
            part.to_parquet(folder / name, index=False)
    paths = [str(folder / name) for name in parts]
    if store_url.startswith("postgresql"):
        import fsspec

        bucket = s3_bucket(request.getfixturevalue("moto_s3"))
        fs = fsspec.filesystem("s3")
        for k in (1, 2):
            name = Path(paths[k]).name
            fs.put(paths[k], f"{bucket}/in/{name}")
            paths[k] = f"s3://{bucket}/in/{name}"
    return paths


def _dataset(store: trenches.Store) -> Any:
    """The dataset, with a first import of rows 150 to 249 (some of a.csv and
    b.parquet): stored already when the files come."""
    ds = store.datasets.create("cancer", task="classification", label="target", salt=SALT)
    ds.add(_frame().iloc[150:250], source="expert", created_at="2026-01-01")
    return ds


def _state(store: trenches.Store) -> dict[str, Any]:
    """What a user sees of the dataset: its patterns (ids, inputs, labels), their
    splits, its snapshot's digest and its import batches."""
    ds = store.datasets.get("cancer")
    snap = ds.snapshot()
    with read(store.engine) as conn:
        b = t.import_batches.c
        batches = [
            tuple(r)
            for r in conn.execute(
                select(
                    b.id,
                    b.kind,
                    b.source,
                    b.file,
                    b.rows,
                    b.first_pattern_id,
                    b.last_pattern_id,
                ).order_by(b.id)
            )
        ]
    return {
        "patterns": ds.patterns(),
        "splits": {s: snap.pattern_ids(s).tolist() for s in ("train", "validation", "test")},
        "digest": snap.digest,
        "batches": batches,
    }


def _same(here: dict[str, Any], there: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(here["patterns"], there["patterns"])
    assert here["splits"] == there["splits"]
    assert here["digest"] == there["digest"]
    assert here["batches"] == there["batches"]


def _tasks_there(address: str, prefix: str) -> int:
    """How many tasks named ``prefix`` the cluster at ``address`` has finished so far."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {
                k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()
            }
        )
    return int(counts.get(prefix, {}).get("memory", 0))


def _results(results: list[ImportResult]) -> list[tuple[Any, ...]]:
    return [
        (r.batch_id, r.rows, r.first_id, r.last_id, r.by_split, r.file, r.already_stored, r.skipped)
        for r in results
    ]


def test_adding_files_on_a_cluster_stores_what_one_process_stores(
    store: trenches.Store,
    twin: trenches.Store,
    store_url: str,
    dask_scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    paths = _files(tmp_path / "in", store_url, request)
    options: dict[str, Any] = {"source": "expert", "created_at": "2026-02-01"}

    heard_here: list[int] = []
    here_ds = _dataset(store)
    here = here_ds.add_files(paths, skip_existing=True, progress=heard_here.append, **options)
    again_here = here_ds.add_files(paths[2:], **options)

    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _tasks_there(dask_scheduler, "trenches-import-write")
    heard_there: list[int] = []
    there_ds = _dataset(twin)
    there = there_ds.add_files(paths, skip_existing=True, progress=heard_there.append, **options)
    again_there = there_ds.add_files(paths[2:], **options)
    # Each file was written by a task on the cluster: three, then one.
    assert _tasks_there(dask_scheduler, "trenches-import-write") - before == 4

    assert _results(there) == _results(here)
    assert _results(again_there) == _results(again_here)
    # a.csv and b.parquet each hold 50 of the first import's rows; c.csv repeats ten
    # rows of a.csv, stored by this import: all left out.
    assert [r.skipped for r in here] == [50, 50, 10]
    assert [r.rows for r in here] == [150, 150, 169]
    assert [r.file for r in here] == paths
    # Consecutive ids, file after file, in the order given.
    assert [r.first_id for r in here] == [101, 251, 401]
    # Imported again without --skip-existing: stored twice, and counted.
    assert again_here[0].already_stored == again_here[0].rows == 179
    # Progress: every row stored heard of, on the cluster a file at a time.
    assert sum(heard_there) == sum(heard_here) == 469
    assert sorted(heard_there) == [150, 150, 169]
    _same(_state(store), _state(twin))


def _counts(store: trenches.Store) -> tuple[int, int, str]:
    ds = store.datasets.get("cancer")
    with read(store.engine) as conn:
        batches = conn.execute(select(func.count()).select_from(t.import_batches)).scalar_one()
    return len(ds.patterns()), batches, ds.snapshot().digest


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_a_bad_row_in_any_file_stores_nothing_of_any(
    store: trenches.Store,
    store_url: str,
    dask_scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    where: str,
) -> None:
    paths = _files(tmp_path / "in", store_url, request)
    frame = _frame().iloc[:5].astype({"mean radius": object})
    frame.loc[frame.index[2], "mean radius"] = "oops"
    bad = tmp_path / "in" / "bad.csv"
    frame.to_csv(bad, index=False)
    ds = _dataset(store)
    before = _counts(store)
    if where == "cluster":
        monkeypatch.setenv(compute.ENV, dask_scheduler)
    with pytest.raises(InvalidInput) as caught:
        ds.add_files([paths[0], str(bad), paths[1]], source="expert")
    assert (caught.value.file, caught.value.row, caught.value.field) == (
        str(bad),
        3,
        "mean radius",
    )
    assert "bad.csv, row 3" in str(caught.value)
    assert _counts(store) == before
    # The files are fine without it: the same command, one file fewer, stores them.
    stored = ds.add_files([paths[0], paths[1]], source="expert")
    assert [r.rows for r in stored] == [200, 200]
    assert _counts(store)[0] == before[0] + 400


def test_a_first_import_of_several_files_runs_here_and_takes_the_first_files_schema(
    store: trenches.Store,
    twin: trenches.Store,
    store_url: str,
    dask_scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """A dataset without patterns gets its table from its first import: with a cluster
    chosen, that import runs in this process, with the result it has without one."""
    paths = _files(tmp_path / "in", store_url, request)
    made = [
        s.datasets.create("cancer", task="classification", label="target", salt=SALT)
        for s in (store, twin)
    ]
    here = made[0].add_files(paths, source="expert", created_at="2026-02-01")
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _tasks_there(dask_scheduler, "trenches-import-read")
    there = made[1].add_files(paths, source="expert", created_at="2026-02-01")
    assert _tasks_there(dask_scheduler, "trenches-import-read") == before
    assert _results(there) == _results(here)
    # c.csv repeats ten rows of a.csv: counted, and stored again.
    assert [r.already_stored for r in here] == [0, 0, 10]
    assert made[1].schema is not None and len(made[1].schema.columns) == 30
    _same(_state(store), _state(twin))
    # The next import of several files, the table made, goes to the cluster.
    more = made[1].add_files(paths[:2], source="crowd")
    assert _tasks_there(dask_scheduler, "trenches-import-read") == before + 2
    assert [r.rows for r in more] == [200, 200]


def _table_files(store: trenches.Store) -> set[str]:
    from trenches.patterns.columnar import table_name
    from trenches.tables.io import file_system

    ds = store.datasets.get("cancer")
    found = file_system(store.artifacts.root).find(f"tables/{table_name(ds.id)}")
    return {f for f in found if f.endswith(".parquet")}


def test_an_import_that_fails_at_its_commit_shows_nothing_and_leaves_strays_for_compact(
    store: trenches.Store,
    store_url: str,
    dask_scheduler: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from trenches.patterns import file_imports

    paths = _files(tmp_path / "in", store_url, request)
    ds = _dataset(store)
    before, kept = _counts(store), _table_files(store)
    monkeypatch.setenv(compute.ENV, dask_scheduler)

    def lost(*args: Any) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as m:
        m.setattr(file_imports, "_recorded", lost)  # after the table's commit
        with pytest.raises(RuntimeError, match="went away"):
            ds.add_files(paths, source="expert")
    assert _counts(store) == before
    strays = _table_files(store) - kept
    assert len(strays) >= 3, "the workers wrote their files"
    store.compact(older_than="0s")
    assert not _table_files(store) & strays, "compact removed them"
    assert _counts(store) == before
    # Run again, the import lands whole (this process listed the table's folder to
    # compact it: the files the workers write now are read all the same).
    again = ds.add_files(paths, source="expert")
    assert [r.rows for r in again] == [200, 200, 179]
    assert _counts(store)[0] == before[0] + 579
    assert store.datasets.get("cancer").snapshot().verify()


def test_a_file_named_twice_or_no_file_is_refused_before_any_is_read(
    store: trenches.Store, tmp_path: Path
) -> None:
    ds = _dataset(store)
    before = _counts(store)
    path = tmp_path / "a.csv"
    _frame().iloc[:20].to_csv(path, index=False)
    with pytest.raises(InvalidInput, match="named twice") as caught:
        ds.add_files([path, tmp_path / "missing.csv", path], source="expert")
    assert caught.value.file == str(path)
    with pytest.raises(InvalidInput, match="no files"):
        ds.add_files([], source="expert")
    with pytest.raises(InvalidInput, match="no such file") as missing:
        ds.add_files([path, tmp_path / "missing.csv"], source="expert")
    assert missing.value.file == str(tmp_path / "missing.csv")
    assert _counts(store) == before


def test_a_worker_killed_mid_import_is_replaced_and_the_store_is_the_same(
    sqlite_store: trenches.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster of its own: one of its two worker processes is killed (SIGKILL) as the
    first file's rows come back written; the files it held, read, are read again and
    its tasks run elsewhere, and the store is that of the import in one process."""
    import signal

    from distributed import Client, LocalCluster

    frame = _frame()
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for k in range(6):
        part = frame.iloc[k * 95 : (k + 1) * 95]
        path = folder / (f"{k}.csv" if k % 2 else f"{k}.parquet")
        if k % 2:
            part.to_csv(path, index=False)
        else:
            part.to_parquet(path, index=False)
        paths.append(str(path))
    options: dict[str, Any] = {"source": "expert", "created_at": "2026-02-01"}
    _dataset(sqlite_store).add_files(paths, skip_existing=True, **options)
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "twin-artifacts"))
    with (
        trenches.open(tmp_path / "twin") as twin,
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        pids = list(client.run(os.getpid).values())
        monkeypatch.setenv(compute.ENV, cluster.scheduler_address)
        killed: list[int] = []

        def heard(n: int) -> None:
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        there = _dataset(twin).add_files(paths, skip_existing=True, progress=heard, **options)
        assert killed
        # Rows 150 to 249 were stored by the first import.
        assert [r.rows for r in there] == [95, 55, 35, 95, 95, 94]
        _same(_state(sqlite_store), _state(twin))
