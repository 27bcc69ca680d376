"""``data check`` on a Dask cluster: the folds of the label-error check are fitted on the
workers (a fold a task, each reading its patterns from the store), and the report is
exactly the one a check in process gives; in process, the folds fitted one by one give
what scikit-learn's ``cross_val_predict`` gave before."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cleanlab.filter import find_label_issues
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import StratifiedKFold, cross_val_predict

import trenches
from trenches import compute
from trenches.errors import ComputeUnavailable
from trenches.patterns.folds import FoldPlan, out_of_fold, probe_frame, probe_model
from trenches.store import opened_once

from conftest import run_cli

# One xdist worker runs them all, so that one cluster serves them.
pytestmark = pytest.mark.xdist_group("dask")


def _flipped_cancer(store: trenches.Store) -> tuple[trenches.Dataset, list[int]]:
    """Breast cancer, with one label in twenty flipped on purpose (a crowd's mistakes),
    and inputs of every kind the probe model takes (a text, a category, an integer,
    missing values): the ids of the flipped ones."""
    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    frame["note"] = np.where(frame["mean radius"] > 15, "large mass seen", "small round")
    frame["site"] = pd.Series(np.where(frame.index % 3 == 0, "left", "right"), dtype=object)
    frame["age"] = 30 + frame.index % 50
    frame.loc[frame.index % 37 == 3, "mean texture"] = np.nan
    frame.loc[frame.index % 41 == 5, "site"] = None
    flip = np.arange(len(frame)) % 20 == 7
    frame.loc[flip, "target"] = frame.loc[flip, "target"].map(
        {"malignant": "benign", "benign": "malignant"}
    )
    ds = store.datasets.create("cancer", task="classification", label="target", text="note")
    added = ds.add(frame, source="crowd", created_at="2026-01-01")
    return ds, [added.pattern_ids[int(i)] for i in np.flatnonzero(flip)]


def _checked_there(address: str) -> int:
    """How many folds of checks the cluster at ``address`` has fitted so far."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        counts = client.run_on_scheduler(
            lambda dask_scheduler: {
                k: dict(p.state_counts) for k, p in dask_scheduler.task_prefixes.items()
            }
        )
    return int(counts.get("trenches-check", {}).get("memory", 0))


def test_label_errors_found_on_a_cluster_are_those_found_in_process(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds, flipped = _flipped_cancer(store)
    here = ds.check()
    errors = here.finding("label-errors")
    assert errors.found and len(set(errors.pattern_ids) & set(flipped)) >= len(flipped) // 2
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _checked_there(dask_scheduler)
    heard: list[tuple[int, int]] = []
    there = store.datasets.get("cancer").check(progress=lambda *a: heard.append(a))
    assert _checked_there(dask_scheduler) - before == 5  # a fold a task, all there
    assert heard == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    far = there.finding("label-errors")
    # The same ids in the same order, the same suggested labels and confidences.
    assert far.pattern_ids == errors.pattern_ids
    assert far.details == errors.details
    assert there == here
    # Beneath the report, the probabilities themselves, to the last bit.
    X, y, plan = _plan(ds)
    chosen = compute.scheduler(store.settings)
    fitted_there = out_of_fold(
        ds, X, y, plan, elsewhere=lambda: compute.cluster(chosen, store.location, opened_once)
    )
    assert np.array_equal(fitted_there, out_of_fold(ds, X, y, plan))


def test_a_snapshot_checked_on_a_cluster_is_read_there_as_it_was(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Patterns relabelled and deactivated after the snapshot are read by the workers
    as the snapshot holds them."""
    ds, flipped = _flipped_cancer(store)
    snap = ds.snapshot()
    for pid in flipped[:5]:
        was = store.patterns.get(pid).label
        fixed = "benign" if was == "malignant" else "malignant"
        store.patterns.relabel(pid, fixed, source="review", reason="seen")
    store.patterns.deactivate(flipped[5:8], reason="unsure")
    here = ds.check(snapshot=snap.id)
    assert set(flipped[:8]) & set(here.finding("label-errors").pattern_ids)
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    assert store.datasets.get("cancer").check(snapshot=snap.id) == here


def _old_label_errors(ds: trenches.Dataset) -> tuple[np.ndarray, list[int]]:
    """What the check did before its folds were fitted one by one: scikit-learn's
    ``cross_val_predict`` over the same folds, then cleanlab. (Out-of-fold
    probabilities, the ids found in order.)"""
    frame = ds.patterns()
    _, y = np.unique(frame[ds.label_column].astype(str).to_numpy(), return_inverse=True)
    X = probe_frame(ds, frame.drop(columns=[ds.label_column]))
    folds = int(min(5, np.bincount(y).min()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probs = cross_val_predict(
            probe_model(ds),
            X,
            y,
            cv=StratifiedKFold(folds, shuffle=True, random_state=0),
            method="predict_proba",
        )
        issues = find_label_issues(y, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    return probs, [int(frame.index[i]) for i in issues]


def _plan(ds: trenches.Dataset) -> tuple[pd.DataFrame, np.ndarray, FoldPlan]:
    """The inputs of the dataset's active patterns, their label codes, and the plan of
    a 5-fold check of them."""
    frame = ds.patterns()
    classes, y = np.unique(frame[ds.label_column].astype(str).to_numpy(), return_inverse=True)
    plan = FoldPlan(ds.id, frame.index.to_numpy(), tuple(classes), 5)
    return frame.drop(columns=[ds.label_column]), y, plan


def _iris_with_flips(store: trenches.Store) -> trenches.Dataset:
    """Iris (three classes, one a category of its own) with some labels flipped."""
    frame = load_iris(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "setosa", 1: "versicolor", 2: "virginica"})
    frame["site"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    flip = np.arange(len(frame)) % 15 == 4
    frame.loc[flip, "target"] = frame.loc[flip, "target"].map(
        {"setosa": "virginica", "versicolor": "setosa", "virginica": "versicolor"}
    )
    ds = store.datasets.create("iris", task="classification", label="target")
    ds.add(frame, source="crowd")
    return ds


@pytest.mark.parametrize(
    "make", [lambda s: _flipped_cancer(s)[0], _iris_with_flips], ids=["cancer", "iris"]
)
def test_folds_fitted_one_by_one_give_what_cross_val_predict_gave(
    sqlite_store: trenches.Store, make: Callable[[trenches.Store], trenches.Dataset]
) -> None:
    ds = make(sqlite_store)
    old_probs, old_ids = _old_label_errors(ds)
    X, y, plan = _plan(ds)
    assert np.array_equal(out_of_fold(ds, X, y, plan), old_probs)
    found = ds.check().finding("label-errors")
    assert found.found and list(found.pattern_ids) == old_ids


def test_a_dataset_too_small_is_not_looked_for_on_the_cluster_either(
    store: trenches.Store, dask_scheduler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = store.datasets.create("few", task="classification", label="label")
    ds.add(pd.DataFrame({"x": np.arange(12.0), "label": ["a"] * 10 + ["b"] * 2}), source="expert")
    here = ds.check().finding("label-errors")
    assert not here.found and here.summary.startswith("not looked for")
    monkeypatch.setenv(compute.ENV, dask_scheduler)
    before = _checked_there(dask_scheduler)
    assert store.datasets.get("few").check().finding("label-errors") == here
    assert _checked_there(dask_scheduler) == before  # nothing was sent


def test_a_worker_killed_mid_check_is_replaced_and_the_report_is_the_same(
    sqlite_store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster of its own: one of its two worker processes is killed (SIGKILL) as the
    first fold comes back; its folds are fitted again elsewhere."""
    import os
    import signal

    from distributed import Client, LocalCluster

    ds, _ = _flipped_cancer(sqlite_store)
    here = ds.check()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        pids = list(client.run(os.getpid).values())
        monkeypatch.setenv(compute.ENV, cluster.scheduler_address)
        killed: list[int] = []

        def heard(done: int, folds: int) -> None:
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        there = sqlite_store.datasets.get("cancer").check(progress=heard)
    assert killed and there == here


def test_the_command_checks_on_the_cluster_the_settings_name(
    sqlite_store: trenches.Store,
    dask_scheduler: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``[compute] scheduler`` in trenches.toml: no flag needed."""
    ds, _ = _flipped_cancer(sqlite_store)
    here = ds.check().finding("label-errors")
    monkeypatch.delenv(compute.ENV, raising=False)
    monkeypatch.setenv("TRENCHES_DB_URL", str(tmp_path / "store"))
    Path("trenches.toml").write_text(f'[compute]\nscheduler = "{dask_scheduler}"\n')
    before = _checked_there(dask_scheduler)
    code, out, err = run_cli("data", "check", "cancer", "--json", "--fail-on", "label-errors")
    assert code == 1, err
    assert _checked_there(dask_scheduler) - before == 5
    (found,) = (f for f in json.loads(out)["findings"] if f["kind"] == "label-errors")
    assert found["pattern_ids"] == list(here.pattern_ids)
    assert found["details"]["top"] == {str(k): v for k, v in here.details["top"].items()}


def test_a_check_whose_cluster_cannot_be_reached_names_it(
    sqlite_store: trenches.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    _flipped_cancer(sqlite_store)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(compute.ENV, address)
    monkeypatch.setattr(compute, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(ComputeUnavailable, match=f"{address} \\(from {compute.ENV}\\)"):
        sqlite_store.datasets.get("cancer").check()
