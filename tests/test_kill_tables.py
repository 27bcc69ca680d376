"""A process killed (SIGKILL) after its Iceberg commit was written but before its
database transaction committed: the table's new files exist, its pointer row does not,
and the store shows exactly what was committed before. ``trenches compact`` then
removes the files nobody reaches. On SQLite with a local folder, and on PostgreSQL
with object storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trenches
from trenches import predictions
from trenches.db.engine import read
from trenches.requests import stored
from trenches.tables.io import file_system

from conftest import baseline_predictor, log_requests, make_frame

#: The child: make the Iceberg commit on the transaction's connection, say so, and
#: wait to be killed before the transaction commits.
_CHILD = textwrap.dedent(
    """
    import sys, time

    import numpy as np

    import trenches
    from trenches import predictions
    from trenches.tables import catalog

    original = catalog.JoinedCatalog.commit_table

    def commit_then_wait(self, *args, **kwargs):
        done = original(self, *args, **kwargs)
        print("table committed", flush=True)
        time.sleep(600)
        return done

    catalog.JoinedCatalog.commit_table = commit_then_wait
    store = trenches.open(sys.argv[1], create=False)
    if sys.argv[2] == "import":
        import pandas as pd

        store.datasets["d"].add(pd.read_parquet(sys.argv[3]), source="late")
    elif sys.argv[2] == "requests":
        from trenches.requests import stored

        stored.move_all(store.engine)
    else:
        from trenches.db.engine import write

        with write(store.engine) as conn:
            predictions.write_block(
                conn,
                int(sys.argv[3]),
                predictions.Block(np.arange(1, 5001), label_index=np.zeros(5000, np.int32)),
            )
    """
)


def _files(store: trenches.Store) -> set[str]:
    try:
        return set(file_system(store.artifacts.root).find("tables"))
    except FileNotFoundError:
        return set()


@pytest.mark.slow
@pytest.mark.parametrize("what", ["import", "predictions", "requests"])
def test_a_kill_between_the_table_commit_and_the_database_commit_shows_nothing(
    store_env: str, tmp_path: Path, what: str
) -> None:
    store_url = store_env
    with trenches.open(store_url) as store:
        ds = store.datasets.create("d", task="classification", label="label")
        ds.add(make_frame(50), source="expert")
        before = ds.patterns()
        predictor = _baseline(store)
        if what == "requests":
            _log_requests(store)
        listed, window = store.requests.list(), store.requests.window()
        files_before = _files(store)
    late = tmp_path / "late.parquet"
    make_frame(30, seed=9).to_parquet(late)
    arg = str(late) if what == "import" else str(predictor)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, store_url, what, arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "table committed", child.stderr.read() if child.stderr else ""
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)

    with trenches.open(store_url, create=False) as store:
        ds = store.datasets["d"]
        assert ds.patterns().equals(before), "the killed import shows nothing"
        with read(store.engine) as conn:
            assert len(predictions.read(conn, predictor)) == 0
            assert stored.staged(conn) == len(listed), "the killed move left them staged"
        assert store.requests.list().equals(listed)
        assert store.requests.window().inputs.equals(window.inputs)
        stray = _files(store) - files_before
        assert stray, "the killed process had written its files"
        done = store.compact(older_than="0s")
        assert sum(t.files_removed for t in done.tables) >= 1
        assert done.requests_moved == len(listed), "the next move moves them whole"
        assert store.requests.list().equals(listed)
        assert not (_files(store) - files_before) & stray, "compact removed them"
        # The store goes on: the import, made again, lands whole.
        ds.add(make_frame(30, seed=9), source="late")
        assert len(ds.patterns()) == len(before) + 30
        assert ds.snapshot().verify()


def _log_requests(store: trenches.Store) -> None:
    """A version trained on ``d``, and 6 requests to it logged (staged)."""
    from sklearn.linear_model import LogisticRegression

    ds = store.datasets["d"]
    X = ds.patterns().drop(columns="label")
    version = store.models.register(
        LogisticRegression().fit(X[["radius", "texture"]], ds.patterns()["label"]),
        "clf",
        X=X[["radius", "texture"]],
        dataset="d",
    )
    log_requests(store, version, make_frame(30, seed=3), ["radius", "texture"], label="label")


def _baseline(store: trenches.Store) -> int:
    from trenches.db.engine import write

    with write(store.engine) as conn:
        return baseline_predictor(conn, "b", 1)
