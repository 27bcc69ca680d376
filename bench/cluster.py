"""Heavy work on a Dask cluster (issue 18's acceptance): the same jobs in this process,
on a LocalCluster of one worker process and on one of two, in one run.

What it measures
----------------
A store of ``--patterns`` (10,000,000) patterns of 20 numbers (the file bench/scale.py
writes), and:

- **evaluate**: ``store.evaluate`` of a random forest (100 trees of depth 8, with its
  ONNX form) over all the patterns, everything to predict; each set-up evaluates a
  version of its own (the same model registered three times), so that each predicts
  everything. Target: two workers >= 1.7x one worker (the machine has 2 cores).
- **backfill**: ``store.backfill.patterns`` of a problem of 15 patterns over
  ``--versions`` (500) versions of a logistic regression: what adding a problem to a
  store of many versions does. Each set-up backfills a problem of its own. Target:
  under 30 s.

The clusters' start is not counted (it is printed beside). Setting up a store of
10,000,000 patterns and 500 versions takes a few minutes, once: ``--reuse`` keeps it.

    python bench/cluster.py --patterns 1000000 --versions 100   # a few minutes
    python bench/cluster.py --folder F --reuse                   # 10,000,000 and 500
    python bench/cluster.py --folder F --reuse --again           # measured anew on it
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measured_code, number
from scale import FEATURES, write_file

#: The set-ups measured: (name, worker processes; 0 for this process).
SETUPS = (("in process", 0), ("1 worker", 1), ("2 workers", 2))
PROBLEM_PATTERNS = 15


def set_up(folder: Path, patterns: int, versions: int) -> None:
    """The store: the patterns, three forest versions, ``versions`` regression
    versions, and a problem of 15 validation patterns for each set-up."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import trenches

    source = folder / "patterns.parquet"
    if not source.exists():
        write_file(source, patterns)
    store = trenches.open(folder / "store")
    ds = store.datasets.create("scale", task="classification", label="label")
    began = time.perf_counter()
    ds.add_file(source, source="bench")
    print(f"  imported {patterns:,} patterns in {time.perf_counter() - began:.1f} s", flush=True)
    snap = ds.snapshot()
    sample = pq.read_table(source).slice(0, 50_000).to_pandas()
    forest = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=2)
    forest.fit(sample[FEATURES], sample["label"])
    small = LogisticRegression(max_iter=300).fit(sample[FEATURES][:2000], sample["label"][:2000])
    with store.run("bench-cluster", snapshot=snap, capture_code=False) as run:
        for name, _ in SETUPS:
            run.log_model(forest, f"forest-{name.replace(' ', '-')}")
    X = sample[FEATURES][:50]
    began = time.perf_counter()
    for k in range(versions):
        store.models.register(small, "bf", X=X, dataset="scale")
        if k % 100 == 99:
            print(f"  {k + 1} versions registered", flush=True)
    print(f"  {versions} versions in {time.perf_counter() - began:.1f} s", flush=True)
    ids = ds.pattern_ids("validation")
    rng = np.random.default_rng(0)
    chosen = rng.choice(ids, size=PROBLEM_PATTERNS * len(SETUPS), replace=False)
    for k, (name, _) in enumerate(SETUPS):
        slug = f"p-{name.replace(' ', '-')}"
        store.problems.create(slug, dataset="scale", title=f"Fifteen patterns ({name})")
        part = chosen[k * PROBLEM_PATTERNS : (k + 1) * PROBLEM_PATTERNS]
        store.problems.add(slug, positive=part.tolist(), backfill=False)
    store.close()


def fresh(folder: Path, name: str) -> tuple[str, str]:
    """For a measure on a kept store (``--again``): a new version of the set-up's forest
    (the same model, registered again: nothing predicted yet) and a new problem of 15
    validation patterns no version has predicted. Their references."""
    import trenches

    tag = name.replace(" ", "-")
    store = trenches.open(folder / "store", create=False)
    try:
        first = store.models.get(f"forest-{tag}@1")
        forest = store.models.load(first)
        ds = store.datasets.get("scale")
        X = pq.read_table(folder / "patterns.parquet").slice(0, 50).to_pandas()[FEATURES]
        version = store.models.register(forest, f"forest-{tag}", X=X, dataset="scale")
        taken = {i for p in store.problems.list(dataset="scale") for i in p.patterns()}
        ids = ds.pattern_ids("validation")
        rng = np.random.default_rng(len(taken))
        chosen = [int(i) for i in rng.choice(ids, size=200, replace=False) if int(i) not in taken]
        slug = f"p-{tag}-{len(taken)}"
        store.problems.create(slug, dataset="scale", title=f"Fifteen more patterns ({name})")
        store.problems.add(slug, positive=chosen[:PROBLEM_PATTERNS], backfill=False)
        return version.ref, slug
    finally:
        store.close()


def measure(folder: Path, name: str, workers: int, again: bool) -> dict[str, Any]:
    """Both jobs on one set-up; its figures."""
    import trenches
    from trenches import compute

    tag = name.replace(" ", "-")
    forest, slug = fresh(folder, name) if again else (f"forest-{tag}@1", f"p-{tag}")
    got: dict[str, Any] = {}
    cluster = None
    os.environ.pop(compute.ENV, None)
    if workers:
        from distributed import LocalCluster

        began = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        got["start_s"] = time.perf_counter() - began
        os.environ[compute.ENV] = cluster.scheduler_address
    try:
        store = trenches.open(folder / "store", create=False)
        began = time.perf_counter()
        result = store.evaluate(forest, "all", with_problems=False)
        took = time.perf_counter() - began
        got["evaluate_s"] = took
        got["evaluate_rows_per_s"] = result.predicted.computed / took
        problem = store.problems.get(slug)
        began = time.perf_counter()
        done = store.backfill.patterns({"scale": problem.patterns()})
        got["backfill_s"] = time.perf_counter() - began
        got["backfill_computed"] = done.computed
        store.close()
    finally:
        os.environ.pop(compute.ENV, None)
        if cluster is not None:
            cluster.close()
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", type=int, default=10_000_000)
    parser.add_argument("--versions", type=int, default=500)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument(
        "--reuse", action="store_true", help="use the store and figures kept in --folder"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="with --reuse: measure anew on the kept store, on new versions and problems",
    )
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="trenches-cluster-"))
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / "figures.json"
    keep = args.reuse and kept.exists() and not args.again
    figures: dict[str, Any] = json.loads(kept.read_text()) if keep else {}
    if not (args.reuse and (folder / "store").exists()):
        set_up(folder, args.patterns, args.versions)
    for name, workers in SETUPS:
        if name not in figures:
            figures[name] = measure(folder, name, workers, args.again and args.reuse)
            kept.write_text(json.dumps(figures))
        print(f"  {name}: {figures[name]}", flush=True)
    one, two = figures["1 worker"], figures["2 workers"]
    print(f"\n{args.patterns:,} patterns, {args.versions} versions; code {measured_code()}")
    print("| job | in process | 1 worker | 2 workers | 2 workers / 1 worker | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    row = [figures[n]["evaluate_rows_per_s"] for n, _ in SETUPS]
    print(
        "| evaluate a forest over all, rows/s | "
        + " | ".join(number(v) for v in row)
        + f" | {number(two['evaluate_rows_per_s'] / one['evaluate_rows_per_s'])} | >= 1.7x |"
    )
    row = [figures[n]["backfill_s"] for n, _ in SETUPS]
    print(
        f"| backfill {PROBLEM_PATTERNS} patterns over {args.versions} versions, s | "
        + " | ".join(number(v) for v in row)
        + f" | {number(one['backfill_s'] / two['backfill_s'])} | < 30 s |"
    )
    starts = ", ".join(f"{n}: {number(figures[n]['start_s'])} s" for n, w in SETUPS if w)
    print(f"\nthe clusters' start, not counted above: {starts}")


if __name__ == "__main__":
    main()
