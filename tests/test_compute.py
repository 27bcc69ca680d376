"""Heavy work on a Dask cluster (trenches.compute): a real LocalCluster of two worker
processes, started once for these tests, predicts exactly what one process predicts,
on SQLite with a local folder and on PostgreSQL with moto's S3 server; a cluster that
cannot be reached, or a setting that names none, is an error that says which."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

import trenches
from trenches import compute, predictions
from trenches.db import schema as t
from trenches.db.engine import read
from trenches.errors import ComputeUnavailable, InvalidConfig, InvalidInput
from trenches.settings import parse

# One xdist worker runs them all, so that one cluster serves them.
pytestmark = pytest.mark.xdist_group("dask")


def _two_versions(store: trenches.Store) -> tuple[str, str]:
    """Two versions of one fitted model (the same predictions, each stored apart), a
    dataset of more patterns than a part, and a problem of training patterns (another
    split than the one evaluated)."""
    ds = store.datasets.create("cancer", task="classification", label="target")
    frame = load_breast_cancer(as_frame=True).frame
    ds.add(frame, source="expert", created_at="2026-01-01")
    ds.add(frame.assign(**{"mean radius": frame["mean radius"] * 1.01}), source="copy")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        refs = (run.log_model(model, "a").ref, run.log_model(model, "b").ref)
    store.problems.create("edge", dataset="cancer", title="Training cases")
    store.problems.add("edge", positive=snap.pattern_ids("train")[:12].tolist(), backfill=False)
    return refs


def _predicted_there(address: str) -> int:
    """How many prediction tasks the cluster at ``address`` has finished so far."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {
                k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()
            }
        )
    return int(counts.get("trenches-predict", {}).get("memory", 0))


def _stored(store: trenches.Store, predictor_id: int) -> predictions.Predictions:
    with read(store.engine) as conn:
        return predictions.read(conn, predictor_id)


def test_evaluate_on_a_cluster_stores_what_one_process_stores(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = _two_versions(store)
    local = store.evaluate(here)
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    monkeypatch.setattr(compute, "PARTS_PER_WORKER", 3)  # six tasks, on two workers
    monkeypatch.setattr(compute, "LEAST_PART", 1)
    # Parts large enough for the workers to write the table's files, the client to
    # commit them; the problem's 12 patterns come back as a block.
    monkeypatch.setattr(predictions, "INLINE_ROWS", 20)
    before = _predicted_there(dask_scheduler)
    far = store.evaluate(there)
    assert _predicted_there(dask_scheduler) - before >= 2  # its parts ran there
    assert far.predicted.computed == local.predicted.computed > 0
    assert far.evaluation.metrics == local.evaluation.metrics
    a, b = _stored(store, local.predicted.predictor_id), _stored(store, far.predicted.predictor_id)
    assert np.array_equal(a.pattern_ids, b.pattern_ids)
    with read(store.engine) as conn:
        blocks = t.prediction_blocks.c
        inline = conn.execute(
            select(blocks.n).where(blocks.predictor_id == far.predicted.predictor_id)
        ).scalars()
        assert sum(inline) < len(b.pattern_ids) // 2  # the workers' files hold the rest
    for name in ("label_index", "correct", "scores", "loss"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    # The problem's patterns (of another split) were predicted there too; nothing is
    # predicted twice.
    assert store.evaluate(there).predicted.computed == 0


def _worker_budget(location: Any) -> tuple[int | None, bool, int]:
    """On a worker: the threads it is given, whether it reads ahead on a thread of its
    own, and Arrow's pool, once a task has opened the store there."""
    import pyarrow as pa

    from trenches.compute import tasks

    tasks.on_worker(lambda _: None, location)
    return tasks._threads(), tasks._ahead(), pa.cpu_count()


def test_a_worker_of_one_thread_keeps_to_one_core(
    store: trenches.Store, dask_scheduler: str
) -> None:
    """A worker of one thread runs its model, its Parquet decoding and its reads on that
    thread: one that read ahead and decoded on every core used 1.65 cores, and two such
    workers on two cores were slower than one."""
    from distributed import Client

    with Client(dask_scheduler, set_as_default=False) as client:
        workers = client.scheduler_info()["workers"]
        assert {w["nthreads"] for w in workers.values()} == {1}
        got = client.gather(
            [
                client.submit(_worker_budget, store.location, workers=[w], pure=False)
                for w in workers
            ]
        )
    assert got == [(1, False, 1)] * len(workers)


def test_a_cluster_that_cannot_be_reached_is_named_and_nothing_is_stored(
    store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref, _ = _two_versions(store)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(compute.ENV, address)
    monkeypatch.setattr(compute, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ComputeUnavailable, match=f"{address} \\(from {compute.ENV}\\)"):
        store.evaluate(ref)
    predictor = store.predictors.resolve(ref)
    assert len(_stored(store, predictor.id).pattern_ids) == 0


def test_a_scheduler_setting_that_names_no_cluster_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(compute.ENV, raising=False)
    file = str(tmp_path / "trenches.toml")
    for bad in ("udp://host:8786", "local-cluster:0", "somewhere"):
        settings = parse(f'[compute]\nscheduler = "{bad}"\n', file)
        with pytest.raises(InvalidConfig, match=r"compute\.scheduler: .*"):
            compute.scheduler(settings)
    monkeypatch.setenv(compute.ENV, "local-cluster:x")
    with pytest.raises(InvalidInput, match=compute.ENV):
        compute.scheduler(parse("", file))
    monkeypatch.setenv(compute.ENV, "")
    chosen = compute.scheduler(parse('[compute]\nscheduler = "tcp://h:8786"\n', file))
    assert chosen.address == "tcp://h:8786" and file in chosen.source
    assert compute.scheduler(parse("", file)).in_process


def test_the_command_starts_a_local_cluster_for_one_evaluation(tmp_path: Path) -> None:
    """``local-cluster:1``: ``python -m trenches evaluate`` starts a cluster of one
    worker process for the command, predicts there, and stops it."""
    with trenches.open(tmp_path / "store") as store:
        ref, _ = _two_versions(store)
    env: dict[str, Any] = {
        "TRENCHES_DB_URL": str(tmp_path / "store"),
        compute.ENV: "local-cluster:1",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "trenches", "evaluate", ref, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with trenches.open(tmp_path / "store") as store:
        result = store.evaluate(ref)  # in this process: nothing left to predict
        assert result.predicted.computed == 0 and result.evaluation.size > 0


def test_a_backfill_on_a_cluster_stores_what_each_version_predicts_in_process(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trenches.predict import load_model, predicted_block

    refs = _two_versions(store)
    snap = store.datasets.get("cancer").snapshots()[-1]
    X, y, _, _ = snap.training_data("train")
    with store.run("fit-c", snapshot=snap, capture_code=False) as run:
        model = LogisticRegression(C=0.01, max_iter=2000).fit(X, y)
        refs = (*refs, run.log_model(model, "c").ref)
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    gaps = store.backfill.gaps(dataset="cancer")
    before = _predicted_there(dask_scheduler)
    result = store.backfill(dataset="cancer")
    assert _predicted_there(dask_scheduler) - before >= len(refs)
    assert not result.skipped and result.computed == sum(g.missing for g in gaps) > 0
    assert store.backfill.gaps(dataset="cancer")[0].missing == 0
    for ref in refs:
        predictor = store.predictors.resolve(ref)
        assert predictor.version is not None
        stored = _stored(store, predictor.id)
        # What this process predicts of the same patterns, not stored.
        here = predicted_block(
            load_model(store.models, predictor.version, False), predictor, stored.pattern_ids
        )
        order = np.argsort(here.pattern_ids)
        assert np.array_equal(here.pattern_ids[order], stored.pattern_ids)
        for name in ("label_index", "correct", "scores", "loss"):
            assert np.array_equal(getattr(here, name)[order], getattr(stored, name)), name


@pytest.mark.parametrize("least_part", [1, compute.LEAST_PART], ids=["parts", "bundles"])
def test_a_worker_killed_mid_backfill_is_replaced_and_nothing_is_lost_or_twice(
    sqlite_store: trenches.Store, monkeypatch: pytest.MonkeyPatch, least_part: int
) -> None:
    """A cluster of its own: one of its two worker processes is killed (SIGKILL) as the
    first part of a backfill comes back; its tasks run again elsewhere, and every
    pattern is predicted, once, as in process. Gaps of fewer than ``least_part`` go a
    few versions a task."""
    import os
    import signal

    from distributed import Client, LocalCluster

    store = sqlite_store
    refs = _two_versions(store)
    monkeypatch.setattr(compute, "PARTS_PER_WORKER", 12)  # parts still to come at the kill
    monkeypatch.setattr(compute, "LEAST_PART", least_part)
    with (
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

        gaps = store.backfill.gaps(dataset="cancer")
        result = store.backfill(dataset="cancer", progress=heard)
    assert killed and not result.skipped
    assert result.computed == sum(g.missing for g in gaps) > 0
    for ref, gap in zip(refs, gaps, strict=True):
        stored = _stored(store, store.predictors.resolve(ref).id)
        assert len(stored.pattern_ids) == len(np.unique(stored.pattern_ids)) == gap.patterns
    a, b = (_stored(store, store.predictors.resolve(r).id) for r in refs)
    for name in ("pattern_ids", "label_index", "scores"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_version_the_workers_cannot_load_is_skipped_with_why_and_the_others_done(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every version's parts go to the cluster at once; a pickled model (which loads
    only when trusted) fails on the workers, and the backfill says why and does the
    others, as in one process."""
    from test_backfill import ThresholdRule

    refs = _two_versions(store)
    ds = store.datasets.get("cancer")
    X = ds.patterns().drop(columns="target").iloc[:50]
    rule = store.models.register(ThresholdRule(), "rule", X=X, dataset="cancer")
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    told: list[int] = []
    gaps = store.backfill.gaps(dataset="cancer")
    result = store.backfill(dataset="cancer", progress=told.append)
    (skipped,) = result.skipped
    assert skipped.ref == rule.ref and "stored as a pickle" in skipped.reason
    assert [v.skipped for v in result.per_version] == [g.ref == rule.ref for g in gaps]
    assert sum(told) == sum(g.missing for g in gaps)  # a skipped version's share too
    assert result.computed == sum(g.missing for g in gaps if g.ref in refs)
