"""Per-pattern predictions: trenches against MLflow on ``shared/bench-peers/per_example.py``.

What it measures
----------------
The peers' workload: synthetic binary classification (``make_classification``, the same
parameters and seed), 20 features, 20,000 training rows and ``--rows`` (100,000)
evaluation rows; model A a LogisticRegression on all training rows, model B one on a
2,000-row subsample with C=0.01. On trenches, the evaluation rows are patterns of a
dataset (imported before the clock starts) and A and B are registered versions.

- **store**: writing 100,000 per-pattern predictions of A (label, probabilities,
  correctness, loss) into the prediction store (MLflow: ``log_table`` of the same
  table, JSON and Parquet);
- **right A, wrong B**: finding the patterns A gets right and B wrong from the stored
  predictions of both (MLflow: ``load_table`` twice and a mask);
- **evaluate 10,000**: predicting 10,000 patterns with a version that has no stored
  predictions, storing them, and computing the metrics (MLflow: ``mlflow.models.evaluate``
  of A on 10,000 rows);
- **backfill**: a new 15-pattern problem over 50 registered versions, every version
  predicting every pattern (no peer; target under 5 s).

MLflow runs in the peers' virtual environment (``$PEERS_VENV``); this script starts the
peers' own script there and reads its JSON line. Targets: store at most a third of
MLflow's JSON ``log_table``; right-A-wrong-B at most a tenth of MLflow's JSON path and no
slower than its Parquet path; evaluate at most a tenth of ``mlflow.models.evaluate``;
backfill under 5 s.

    python bench/evaluation.py             # ~2 minutes (registering 50 versions is most)
    python bench/evaluation.py --no-peer
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import trenches
from trenches import predictions
from trenches.db.engine import write
from trenches.patterns.sets import PatternSet

PEERS = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-peers"


def peer(rows: int) -> dict[str, Any] | None:
    venv = Path(os.environ.get("PEERS_VENV", Path(tempfile.gettempdir()) / "peers-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"no peers venv at {venv}: see {PEERS / 'README.md'}", file=sys.stderr)
        return None
    proc = subprocess.run(
        [str(python), str(PEERS / "per_example.py"), "--rows", str(rows)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"per_example.py failed: {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def ours(folder: Path, rows: int, versions: int) -> dict[str, Any]:
    # Imports are a once-per-process cost, not part of any workload below.
    import onnxruntime  # noqa: F401
    import sklearn.metrics  # noqa: F401
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    n_train = 20_000
    X, y = make_classification(
        n_samples=n_train + rows,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        flip_y=0.05,
        class_sep=0.7,
        random_state=0,
    )
    Xtr, ytr, Xev, yev = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    names = [f"f{i}" for i in range(20)]
    model_a = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
    sub = np.random.default_rng(1).choice(n_train, 2000, replace=False)
    model_b = LogisticRegression(C=0.01, max_iter=1000).fit(Xtr[sub], ytr[sub])

    store = trenches.open(folder / "store")
    ds = store.datasets.create("bench", task="classification", label="label")
    frame = pd.DataFrame(Xev, columns=names)
    frame["label"] = yev
    ds.add(frame, source="expert")
    ids = ds.pattern_info().index.to_numpy()
    sample = pd.DataFrame(Xtr[:1000], columns=names)
    a = store.models.register(model_a, "a", X=sample, dataset="bench")
    b = store.models.register(model_b, "b", X=sample, dataset="bench")
    out: dict[str, Any] = {}

    # store: A's predictions, computed beforehand as MLflow's table is.
    proba = model_a.predict_proba(pd.DataFrame(Xev, columns=names))
    label_index = proba.argmax(axis=1).astype(np.int32)
    correct = label_index == yev
    loss = -np.log(np.maximum(proba[np.arange(rows), yev], 1e-15))
    predictor = store.predictors.resolve(a.ref).id
    _settle(store)
    t = time.perf_counter()
    with write(store.engine) as conn:
        predictions.write_block(
            conn,
            predictor,
            predictions.Block(
                ids, label_index=label_index, scores=proba, correct=correct, loss=loss
            ),
        )
    out["store_s"] = time.perf_counter() - t

    # right A, wrong B: B predicts through the store's own path (not timed), then the query.
    store.predict(b.ref, ids)
    _settle(store)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        found = store.flips(a.ref, b.ref)
        times.append(time.perf_counter() - t)
    out["a_right_b_wrong_s"] = float(np.median(times))
    out["a_right_b_wrong"] = len(found.broken)

    # evaluate 10,000 patterns with a version that has predicted nothing yet.
    fresh = store.models.register(model_a, "fresh", X=sample, dataset="bench")
    some = ids[:10_000]
    _settle(store)
    t = time.perf_counter()
    result = store.evaluate(fresh.ref, PatternSet("bench:first-10000", some)).evaluation
    out["evaluate_10k_s"] = time.perf_counter() - t
    out["evaluate_accuracy"] = result.metrics["accuracy"]

    out.update(_backfill(store, Xtr, ytr, names, ids, versions))
    store.close()
    return out


def _settle(store: trenches.Store) -> None:
    # Setup writes megabytes (100,000 patterns); SQLite copies them from its WAL into
    # the database at a later commit. Doing that now keeps it out of the timed step.
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _backfill(
    store: trenches.Store,
    Xtr: np.ndarray,
    ytr: np.ndarray,
    names: list[str],
    ids: np.ndarray,
    versions: int,
) -> dict[str, Any]:
    """backfill: ``versions`` versions, then a new 15-pattern problem."""
    from sklearn.linear_model import LogisticRegression

    out: dict[str, Any] = {}
    small = pd.DataFrame(Xtr[:200], columns=names)
    t0 = time.perf_counter()
    for i in range(versions):
        model = LogisticRegression(C=10 ** (-3 + 5 * i / versions), max_iter=500).fit(
            Xtr[: 500 + 20 * i], ytr[: 500 + 20 * i]
        )
        store.models.register(model, "many", X=small, dataset="bench")
    out["register_versions_s"] = time.perf_counter() - t0
    store.problems.create("bench-problem", dataset="bench", title="Fifteen patterns")
    _settle(store)
    t = time.perf_counter()
    added = store.problems.add("bench-problem", positive=ids[-15:-5], negative=ids[-5:])
    out["backfill_s"] = time.perf_counter() - t
    out["backfill_predictions"] = added.predicted
    out["backfill_versions"] = added.versions
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=50)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="trenches-bench-eval-"))
    home = Path.cwd()
    try:
        os.chdir(tmp)
        mine = ours(tmp, args.rows, args.versions)
    finally:
        os.chdir(home)
        shutil.rmtree(tmp, ignore_errors=True)
    theirs = None if args.no_peer else peer(args.rows)
    versions = (theirs or {}).get("versions", {}).get("mlflow", "(not run)")
    print(
        f"\nper-pattern predictions, {args.rows:,} rows: trenches {trenches.__version__} "
        f"against MLflow {versions}\n"
    )
    rows: list[tuple[str, float, float | None, float, str]] = [
        (
            "store predictions, s",
            mine["store_s"],
            theirs["tables"]["json"]["log_table_s_each"][0] if theirs else None,
            3,
            "json",
        ),
        (
            "store predictions, s",
            mine["store_s"],
            theirs["tables"]["parquet"]["log_table_s_each"][0] if theirs else None,
            0,
            "parquet",
        ),
        (
            "A right, B wrong, s",
            mine["a_right_b_wrong_s"],
            theirs["tables"]["json"]["load_and_compare_s"] if theirs else None,
            10,
            "json",
        ),
        (
            "A right, B wrong, s",
            mine["a_right_b_wrong_s"],
            theirs["tables"]["parquet"]["load_and_compare_s"] if theirs else None,
            1,
            "parquet",
        ),
        (
            "evaluate 10,000 rows, s",
            mine["evaluate_10k_s"],
            theirs["evaluate"]["seconds"] if theirs and "evaluate" in theirs else None,
            10,
            "models.evaluate",
        ),
    ]
    print(f"  {'workload':<26} {'trenches':>10} {'mlflow':>10} {'ratio':>8}  target")
    results = []
    for label, mine_v, theirs_v, target, how in rows:
        if theirs_v is None:
            print(f"  {label:<26} {mine_v:>10.4f} {'-':>10}")
            continue
        ratio = theirs_v / mine_v
        holds = ratio >= target if target else True
        results.append(
            {
                "workload": f"{label} ({how})",
                "trenches": mine_v,
                "mlflow": theirs_v,
                "ratio": ratio,
                "target": target,
                "holds": holds,
            }
        )
        goal = f">= {target}x less time" if target else "(for reference)"
        print(
            f"  {label:<26} {mine_v:>10.4f} {theirs_v:>10.4f} {ratio:>7.1f}x  {goal} vs "
            f"{how}: {'holds' if holds else 'MISSED'}"
        )
    print(
        f"  {'backfill 15 x 50 versions, s':<26} {mine['backfill_s']:>10.3f} {'':>10} "
        f"{'':>8}  < 5 s: {'holds' if mine['backfill_s'] < 5 else 'MISSED'} "
        f"({mine['backfill_predictions']} predictions, {mine['backfill_versions']} versions)"
    )
    if theirs:
        same = mine["a_right_b_wrong"] == theirs["tables"]["json"]["a_right_b_wrong"]
        print(
            f"  check: A right and B wrong on {mine['a_right_b_wrong']} patterns (MLflow: "
            f"{theirs['tables']['json']['a_right_b_wrong']}): {'same' if same else 'DIFFERENT'}"
        )
    if args.json:
        print(json.dumps({"trenches": mine, "mlflow": theirs, "results": results}))


if __name__ == "__main__":
    main()
