"""Run tracking: trenches against MLflow on the workloads of ``shared/bench-peers``.

What it measures
----------------
The same workloads as ``../shared/bench-peers/track_metrics.py`` and
``search_runs.py``, SQLite backends both, each tool in a fresh temporary folder:

- **one call per point**: 50 params, then 20,000 metric points (200 steps x 100 keys),
  one ``log_metric`` call each, until the run has ended (everything stored);
- **batched points**: the same 20,000 points in batches (MLflow: ``log_batch`` of
  1,000; trenches: ``log_metrics`` of the 100 keys of a step);
- **creating 2,000 runs**, each with 5 params and 5 metrics, and ended;
- **search**: ``metrics.acc > 0.5 and params.model = 'lr'`` ordered by
  ``metrics.f1 DESC`` over those 2,000 runs, as a DataFrame, median of 5.

MLflow runs in its own virtual environment (``$PEERS_VENV``, default
``$TMPDIR/peers-venv``; see ``shared/bench-peers/README.md``): this script starts the
peers' own scripts there and reads their JSON lines. trenches runs in this process.
Both answers are checked (points stored, hit counts and the top run).

Targets (trenches against MLflow): one call per point at least 100x faster, batched
points at least 20x, creating runs at least 20x, search in at most a tenth of the time.

    python bench/tracking.py                     # everything, MLflow included (~3 min)
    python bench/tracking.py --budget-a 20       # cap MLflow's slow per-call phase
    python bench/tracking.py --no-peer           # trenches only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import trenches

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "bench-peers"
FILTER = "metrics.acc > 0.5 and params.model = 'lr'"
ORDER = ["metrics.f1 DESC"]
MODELS = ["lr", "rf", "gbm", "svm"]


def track_metrics(folder: Path, steps: int, keys: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    values = rng.random((steps, keys))
    names = [f"metric_{k:03d}" for k in range(keys)]
    params = {f"param_{i:02d}": f"value-{i}" for i in range(50)}
    store = trenches.open(folder / "store")
    out: dict[str, Any] = {}

    t = time.perf_counter()
    with store.run("per-call", params=params) as run:
        for step in range(steps):
            row = values[step].tolist()
            for k in range(keys):
                run.log_metric(names[k], row[k], step=step)
    dt = time.perf_counter() - t
    stored = sum(len(store.runs.metric_history(run.id, n)) for n in names)
    out["per_call"] = {
        "points": steps * keys,
        "seconds": dt,
        "points_per_s": steps * keys / dt,
        "stored": stored,
    }

    t = time.perf_counter()
    with store.run("batched", params=params) as run:
        for step in range(steps):
            run.log_metrics(dict(zip(names, values[step].tolist(), strict=True)), step=step)
    dt = time.perf_counter() - t
    stored = sum(len(store.runs.metric_history(run.id, n)) for n in names)
    out["batched"] = {
        "points": steps * keys,
        "seconds": dt,
        "points_per_s": steps * keys / dt,
        "stored": stored,
    }
    store.close()
    return out


def search_runs(folder: Path, runs: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    models = rng.choice(MODELS, size=runs)
    mets = rng.random((runs, 5))
    expected = [i for i in range(runs) if models[i] == "lr" and mets[i, 0] > 0.5]
    expected_top = max(expected, key=lambda i: mets[i, 1])
    names = ["acc", "f1", "precision", "recall", "auc"]
    store = trenches.open(folder / "store")
    t = time.perf_counter()
    for i in range(runs):
        params = {
            "model": str(models[i]),
            "C": str(round(10 ** rng.uniform(-3, 2), 5)),
            "penalty": str(rng.choice(["l1", "l2"])),
            "seed": str(i),
            "features": str(rng.integers(5, 50)),
        }
        with store.run(f"run-{i:05d}", params=params) as run:
            run.log_metrics(dict(zip(names, mets[i].tolist(), strict=True)), step=0)
    create_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        frame = store.runs.to_frame(store.runs.list(FILTER, order_by=ORDER))
        times.append(time.perf_counter() - t)
    verified = len(frame) == len(expected) and frame.iloc[0]["name"] == f"run-{expected_top:05d}"
    store.close()
    return {
        "create": {"runs": runs, "seconds": create_s, "runs_per_s": runs / create_s},
        "search": {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "hits": len(frame),
            "expected_hits": len(expected),
            "verified": verified,
        },
    }


def peer(script: str, *args: str) -> dict[str, Any] | None:
    venv = Path(os.environ.get("PEERS_VENV", Path(tempfile.gettempdir()) / "peers-venv"))
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"no peers venv at {venv}: see {PEERS / 'README.md'}", file=sys.stderr)
        return None
    proc = subprocess.run(
        [str(python), str(PEERS / script), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"{script} failed ({proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-a", type=int, default=60, help="seconds for MLflow's per-call phase")
    ap.add_argument("--no-peer", action="store_true", help="measure trenches only")
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="trenches-bench-tracking-"))
    home = Path.cwd()
    try:
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        os.chdir(tmp)  # outside any git work tree, as the peers' scripts run
        ours = track_metrics(tmp / "a", args.steps, args.keys)
        ours.update(search_runs(tmp / "b", args.runs, args.repeats))
    finally:
        os.chdir(home)
        shutil.rmtree(tmp, ignore_errors=True)

    theirs_t = theirs_s = None
    if not args.no_peer:
        theirs_t = peer(
            "track_metrics.py",
            "--steps",
            str(args.steps),
            "--keys",
            str(args.keys),
            "--budget-a",
            str(args.budget_a),
        )
        theirs_s = peer("search_runs.py", "--runs", str(args.runs), "--repeats", str(args.repeats))

    rows: list[tuple[str, float, float | None, str, float]] = [
        (
            "one call per point, points/s",
            ours["per_call"]["points_per_s"],
            theirs_t["a_per_call"]["points_per_s"] if theirs_t else None,
            "x faster",
            100,
        ),
        (
            "batched points, points/s",
            ours["batched"]["points_per_s"],
            theirs_t["b_log_batch"]["points_per_s"] if theirs_t else None,
            "x faster",
            20,
        ),
        (
            "create runs, runs/s",
            ours["create"]["runs_per_s"],
            theirs_s["create"]["runs_per_s"] if theirs_s else None,
            "x faster",
            20,
        ),
        (
            "search (filter + order), s",
            ours["search"]["median_s"],
            theirs_s["search_runs_df"]["median_s"] if theirs_s else None,
            "x less time",
            10,
        ),
    ]
    print(
        f"\ntracking on SQLite: trenches {trenches.__version__} against MLflow "
        f"{theirs_t['versions']['mlflow'] if theirs_t else '(not run)'}"
    )
    print(
        f"  python {platform.python_version()}, cpu_count {os.cpu_count()}, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print(f"  {'workload':<30} {'trenches':>12} {'mlflow':>12} {'ratio':>16}  target")
    results = []
    for label, ours_v, theirs_v, unit, target in rows:
        if theirs_v is None:
            print(f"  {label:<30} {ours_v:>12.4g} {'-':>12}")
            continue
        ratio = theirs_v / ours_v if unit == "x less time" else ours_v / theirs_v
        holds = ratio >= target
        results.append(
            {
                "workload": label,
                "trenches": ours_v,
                "mlflow": theirs_v,
                "ratio": ratio,
                "target": target,
                "holds": holds,
            }
        )
        print(
            f"  {label:<30} {ours_v:>12.4g} {theirs_v:>12.4g} {ratio:>8.1f} {unit:<7}  "
            f">= {target}x {'holds' if holds else 'MISSED'}"
        )
    checks = {
        "trenches stored every point": ours["per_call"]["stored"]
        == ours["batched"]["stored"]
        == args.steps * args.keys,
        "trenches search hits and top run": ours["search"]["verified"],
    }
    if theirs_s:
        checks["same hits as mlflow"] = ours["search"]["hits"] == theirs_s["search_runs_df"]["hits"]
    for what, ok in checks.items():
        print(f"  check: {what}: {'yes' if ok else 'NO'}")
    if args.json:
        print(
            json.dumps(
                {
                    "trenches": ours,
                    "mlflow_track": theirs_t,
                    "mlflow_search": theirs_s,
                    "results": results,
                    "checks": checks,
                }
            )
        )


if __name__ == "__main__":
    main()
