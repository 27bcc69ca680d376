"""``trenches evaluate`` killed (SIGKILL) half-way and run again ends with the same stored
predictions as a run that was never interrupted (DESIGN.md, invariants 2 and 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import select

import trenches
from trenches import predictions
from trenches.db import schema as t
from trenches.db.engine import read

ROWS = 20_000
BATCH = 100  # two hundred transactions: seconds of work to kill in the middle of


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 6))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    frame["label"] = np.where(X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.8, n) > 0, "yes", "no")
    return frame


def _stored(store: trenches.Store, ref: str) -> int:
    """How many predictions of ``ref`` are stored (0 before its predictor exists)."""
    version = store.models.get(ref)
    p = t.predictors.c
    with read(store.engine) as conn:
        predictor = conn.execute(select(p.id).where(p.version_id == version.id)).scalar()
        return 0 if predictor is None else predictions.count(conn, predictor)


def _versions_of_one_model(store: trenches.Store, n: int) -> list[str]:
    """A dataset of ROWS patterns and ``n`` versions of one model fitted on it: their
    references."""
    ds = store.datasets.create("signals", task="classification", label="label")
    ds.add(_frame(ROWS), source="expert", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    with store.run("fit", snapshot=snap, capture_code=False) as run:
        return [run.log_model(model, "clf").ref for _ in range(n)]


def _evaluate(location: str, ref: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "trenches", "--store", location, "evaluate", ref),
            *("--split", "all", "--batch-size", str(BATCH), "--json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.slow
def test_evaluate_killed_half_way_resumes_to_the_same_predictions(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENCHES_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    env = dict(os.environ)
    with trenches.open(store_url) as store:
        # The same model twice: version 1 is killed and resumed, version 2 runs through.
        killed, straight = _versions_of_one_model(store, 2)

        proc = _evaluate(store_url, killed, env)
        deadline = time.monotonic() + 240
        seen = 0
        while proc.poll() is None and time.monotonic() < deadline:
            seen = _stored(store, killed)
            if seen >= ROWS // 10:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"evaluate was not killed mid-way:\n{err}"
        at_kill = _stored(store, killed)
        assert 0 < at_kill < ROWS, at_kill
        assert at_kill % BATCH == 0, "a batch was stored in part"

        resumed = _evaluate(store_url, killed, env)
        out, err = resumed.communicate(timeout=240)
        assert resumed.returncode == 0, err
        assert json.loads(out)["computed"] == ROWS - at_kill  # nothing computed twice

        whole = _evaluate(store_url, straight, env)
        out, err = whole.communicate(timeout=240)
        assert whole.returncode == 0, err
        assert json.loads(out)["computed"] == ROWS

        with read(store.engine) as conn:
            a = predictions.read(conn, _predictor(conn, store, killed))
            b = predictions.read(conn, _predictor(conn, store, straight))
        assert len(a.pattern_ids) == ROWS
        for field in ("pattern_ids", "label_index", "scores", "correct", "loss"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field


def _predictor(conn: object, store: trenches.Store, ref: str) -> int:
    version = store.models.get(ref)
    return int(
        conn.execute(  # type: ignore[attr-defined]
            select(t.predictors.c.id).where(t.predictors.c.version_id == version.id)
        ).scalar_one()
    )


@pytest.mark.slow
def test_two_processes_evaluating_one_version_at_once_store_each_prediction_once(
    store_env: str,
) -> None:
    """Batches big enough for the Iceberg table, on SQLite with a local folder and on
    PostgreSQL with object storage: both processes predict everything, and the store
    keeps each prediction once."""
    store_url = store_env
    env = dict(os.environ)
    with trenches.open(store_url) as store:
        [ref] = _versions_of_one_model(store, 1)
        both = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "trenches", "--store", store_url, "evaluate", ref),
                    *("--split", "all", "--batch-size", "5000", "--json"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        outs = [proc.communicate(timeout=300) for proc in both]
        for proc, (_, err) in zip(both, outs, strict=True):
            assert proc.returncode == 0, err
        computed = [json.loads(out)["computed"] for out, _ in outs]
        assert sum(computed) == ROWS  # each stored only what the other had not
        with read(store.engine) as conn:
            predictor = _predictor(conn, store, ref)
            found = predictions.read(conn, predictor)
            ids = predictions.predicted_ids(conn, predictor)
            total = predictions.count(conn, predictor)
        assert len(found) == ROWS == total == len(ids)
        assert np.array_equal(found.pattern_ids, np.arange(1, ROWS + 1))
