"""Bulk facts at scale: import, training data and evaluation of many patterns, each
against pyarrow on the same files in the same run (issue 17's acceptance; this
machine's absolute speed varies, so the ratios are the figures to compare).

What it measures
----------------
``--patterns`` (10,000,000) patterns of 20 float64 columns and a two-class label,
written once to a Parquet file:

- **import**: ``Dataset.add_file`` of the file, against pyarrow reading the file and
  writing it back as Parquet (target >= 1/2 of pyarrow's rows/s);
- **training data**: ``Snapshot.training_data()`` of every pattern, against pyarrow
  reading the stored Parquet file into NumPy (target >= 0.8), and its peak memory
  against the arrays it returns (target <= 2x);
- **evaluate, everything to predict**: ``store.evaluate`` of a logistic regression over
  the validation patterns, against ONNX Runtime's own rows/s on the same arrays
  (target >= 1/2); beside it, the floor under any evaluation that reads its inputs:
  pyarrow alone reading as many rows of the 20 numbers from Parquet into NumPy;
- **evaluate a random forest, everything to predict**: the same for a second version,
  a random forest of 100 trees of depth 8, which costs ONNX Runtime what most tabular
  models do (a logistic regression of 20 numbers costs it next to nothing, so that
  reading the inputs is most of any evaluation of it);
- **evaluate, nothing left to predict**: the same again, against pyarrow reading those
  predictions and labels from Parquet (target <= 2x its time); both take well under a
  second, so each runs three times (a fresh process each) and the median counts;
- **drift over the request log**: ``--log-rows`` (10,000,000) input rows logged for a
  model of a dataset of their own (100,000 patterns), in requests of 100 rows, as the
  server's log writer writes them; then one drift check over all of them (target
  <= 10 s; its ratio column is its time over the target).

Each workload runs in a process of its own, so that its peak memory (``ru_maxrss``) is
its own. ``--label`` names the figures (today's release, or the change), so that two
runs on two checkouts print side by side in bench/README.md.

    python bench/scale.py --patterns 1000000          # a few minutes
    python bench/scale.py                             # 10,000,000: about half an hour

``--baseline`` runs every trenches workload on another checkout too (the release
before issue 17, say), each with a store of its own, and prints the two side by side:

    git worktree add /tmp/release a5236b8
    python bench/scale.py --baseline /tmp/release/src

``--reuse`` goes on with a run in ``--folder`` that stopped, from the figures it kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measured_code, number

FEATURES = [f"x{i}" for i in range(20)]
MODEL = "scale-clf"
FOREST = "scale-forest"


def write_file(path: Path, n: int) -> None:
    """``n`` patterns in one Parquet file, in row groups of a million."""
    rng = np.random.default_rng(0)
    writer = None
    for start in range(0, n, 1_000_000):
        k = min(1_000_000, n - start)
        x = rng.normal(size=(k, len(FEATURES)))
        label = np.where(x[:, 0] - x[:, 1] + rng.normal(scale=0.5, size=k) > 0, "yes", "no")
        table = pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": label})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workloads, each run in a child process ----------------------------------------------


def warm(*modules: str) -> None:
    """Import what a workload will use before its clock starts, as the peers' workloads
    import pyarrow and ONNX Runtime before theirs: the figure is the work, not the
    imports (a module a release does not have is passed over)."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue


#: What reading and evaluating patterns imports, in this release or an earlier one.
READ_MODULES = (
    "pyarrow.parquet",
    "pyiceberg.catalog.sql",
    "trenches.tables.catalog",
    "trenches.patterns.frames",
    "trenches.patterns.snapshots",
)
EVALUATE_MODULES = (*READ_MODULES, "sklearn.metrics", "onnxruntime", "trenches.evaluation")


def w_pyarrow_copy(folder: Path) -> dict[str, Any]:
    began = time.perf_counter()
    table = pq.read_table(folder / "patterns.parquet")
    pq.write_table(table, folder / "copy.parquet")
    took = time.perf_counter() - began
    return {"seconds": took, "rows_per_s": table.num_rows / took}


def w_import(folder: Path) -> dict[str, Any]:
    import trenches

    store = trenches.open(folder / "store")
    ds = store.datasets.create(
        "scale", task="classification", label="label", salt="7363616c652d62656e63682d30303031"
    )
    began = time.perf_counter()
    result = ds.add_file(folder / "patterns.parquet", source="bench", created_at="2026-01-01")
    took = time.perf_counter() - began
    ds.snapshot()
    store.close()
    return {"seconds": took, "rows_per_s": result.rows / took}


def w_pyarrow_numpy(folder: Path) -> dict[str, Any]:
    began = time.perf_counter()
    table = pq.read_table(folder / "patterns.parquet")
    X = np.column_stack([table.column(f).to_numpy() for f in FEATURES])
    y = table.column("label").to_numpy()
    took = time.perf_counter() - began
    return {"seconds": took, "array_mib": (X.nbytes + y.nbytes) / 2**20, "peak_mib": peak_mib()}


def w_training_data(folder: Path) -> dict[str, Any]:
    import trenches

    store = trenches.open(folder / "store", create=False)
    snap = store.datasets.get("scale").snapshots()[-1]
    warm(*READ_MODULES)
    base = peak_mib()
    began = time.perf_counter()
    X, y, _, _ = snap.training_data(None)  # every pattern
    took = time.perf_counter() - began
    arrays = (X.memory_usage(deep=True).sum() if hasattr(X, "memory_usage") else X.nbytes) + (
        y.nbytes
    )
    store.close()
    return {
        "seconds": took,
        "array_mib": arrays / 2**20,
        "peak_mib": peak_mib(),
        "peak_over_base_mib": peak_mib() - base,
    }


def w_register(folder: Path) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    import trenches

    store = trenches.open(folder / "store", create=False)
    snap = store.datasets.get("scale").snapshots()[-1]
    table = pq.read_table(folder / "patterns.parquet").slice(0, 50_000).to_pandas()
    model = LogisticRegression(max_iter=300).fit(table[FEATURES], table["label"])
    with store.run("scale", snapshot=snap, capture_code=False) as run:
        run.log_model(model, MODEL)
    store.close()
    return {}


def w_register_forest(folder: Path) -> dict[str, Any]:
    """A second version beside the logistic regression: a random forest, for which
    predicting costs what it does for most tabular models, not next to nothing."""
    from sklearn.ensemble import RandomForestClassifier

    import trenches

    store = trenches.open(folder / "store", create=False)
    snap = store.datasets.get("scale").snapshots()[-1]
    table = pq.read_table(folder / "patterns.parquet").slice(0, 50_000).to_pandas()
    model = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0, n_jobs=2)
    model.fit(table[FEATURES], table["label"])
    with store.run("scale-forest", snapshot=snap, capture_code=False) as run:
        version = run.log_model(model, FOREST)
    store.close()
    return {"onnx": "onnx" in version.formats}


def w_evaluate(folder: Path, model: str = MODEL) -> dict[str, Any]:
    import trenches

    store = trenches.open(folder / "store", create=False)
    warm(*EVALUATE_MODULES)
    began = time.perf_counter()
    result = store.evaluate(f"{model}@1", with_problems=False)
    took = time.perf_counter() - began
    n = result.evaluation.size
    store.close()
    return {"seconds": took, "rows": n, "rows_per_s": n / took, "peak_mib": peak_mib()}


def w_evaluate_forest(folder: Path) -> dict[str, Any]:
    return w_evaluate(folder, FOREST)


def w_onnx_forest(folder: Path) -> dict[str, Any]:
    return w_onnx(folder, FOREST)


def w_onnx(folder: Path, model: str = MODEL) -> dict[str, Any]:
    import onnxruntime as ort

    import trenches

    store = trenches.open(folder / "store", create=False)
    onnx = store.models.file_bytes(f"{model}@1", "onnx")
    n = len(store.datasets.get("scale").pattern_ids("validation"))
    store.close()
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    X = pq.read_table(folder / "patterns.parquet").slice(0, n)
    given = session.get_inputs()[0]
    dtype = np.float64 if given.type == "tensor(double)" else np.float32
    arr = np.column_stack([X.column(f).to_numpy() for f in FEATURES]).astype(dtype)
    name = given.name
    began = time.perf_counter()
    for start in range(0, n, 100_000):
        session.run(None, {name: arr[start : start + 100_000]})
    took = time.perf_counter() - began
    return {"seconds": took, "rows_per_s": n / took}


def w_pyarrow_inputs(folder: Path) -> dict[str, Any]:
    """The floor under evaluating with everything to predict: as many rows of the 20
    numbers as there are validation patterns, written as Parquet and read back into
    one NumPy matrix by pyarrow alone (no prediction, no store)."""
    import trenches

    store = trenches.open(folder / "store", create=False)
    n = len(store.datasets.get("scale").pattern_ids("validation"))
    store.close()
    pq.write_table(
        pq.read_table(folder / "patterns.parquet", columns=FEATURES).slice(0, n),
        folder / "inputs.parquet",
    )
    began = time.perf_counter()
    table = pq.read_table(folder / "inputs.parquet")
    X = np.column_stack([table.column(f).to_numpy() for f in FEATURES])
    took = time.perf_counter() - began
    return {"seconds": took, "rows": len(X), "rows_per_s": len(X) / took}


def w_pyarrow_predictions(folder: Path) -> dict[str, Any]:
    """Predictions and labels of the validation patterns as Parquet, read back."""
    import trenches

    store = trenches.open(folder / "store", create=False)
    table = store.predictions(f"{MODEL}@1", "validation")[["label", "prediction", "p_yes"]]
    store.close()
    table.to_parquet(folder / "predictions.parquet")
    began = time.perf_counter()
    read = pq.read_table(folder / "predictions.parquet")
    _ = [read.column(c).to_numpy() for c in read.column_names]
    return {"seconds": time.perf_counter() - began, "rows": read.num_rows}


#: Input rows per logged request in the request-log workload.
REQUEST_ROWS = 100
SERVED = "served-clf"


def w_log_requests(folder: Path, rows: int) -> dict[str, Any]:
    """A model ``served-clf`` trained on a dataset of its own (100,000 patterns of the
    same 20 numbers), and a request log of ``rows`` input rows it answered, in
    requests of 100 rows, three columns shifted: written as the server's log writer
    writes them (staged rows, a transaction per 1,000 requests), moved into the tables
    as it goes where this release does that."""
    import orjson
    from sklearn.linear_model import LogisticRegression

    import trenches
    from trenches import timestamps
    from trenches.db.engine import write
    from trenches.requests import records

    try:
        from trenches.requests import stored
    except ImportError:  # a release before the request log's tables
        stored = None
    store = trenches.open(folder / "store", create=False)
    reference = pq.read_table(folder / "patterns.parquet").slice(0, 100_000).to_pandas()
    ds = store.datasets.create("served", task="classification", label="label")
    ds.add(reference, source="bench", created_at="2026-01-01")
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("served", snapshot=snap, capture_code=False) as run:
        version = run.log_model(LogisticRegression(max_iter=300).fit(X, y), SERVED)
    rng = np.random.default_rng(1)
    shift = np.zeros(len(FEATURES))
    shift[:3] = 0.5
    began = time.perf_counter()
    now = timestamps.now_us()
    done = moved_at = 0
    k = 0
    while done < rows:
        batch = []
        for _ in range(1_000):
            if done >= rows:
                break
            n = min(REQUEST_ROWS, rows - done)
            data = rng.normal(size=(n, len(FEATURES))) + shift
            answer = np.where(data[:, 0] > data[:, 1], "yes", "no").tolist()
            inputs = orjson.dumps(
                {"columns": FEATURES, "data": data}, option=orjson.OPT_SERIALIZE_NUMPY
            ).decode()
            outputs = orjson.dumps({"labels": answer, "scores": None, "values": None}).decode()
            batch.append((f"b-{k}", version.id, "predict", n, inputs, outputs, 900, now + k))
            done += n
            k += 1
        with write(store.engine) as conn:
            records.insert(conn, batch, [])
        if stored is not None and done - moved_at >= 500_000:
            stored.move_all(store.engine)
            moved_at = done
    if stored is not None:
        stored.move_all(store.engine)
    took = time.perf_counter() - began
    # The reference's predictions, stored once by the first drift check.
    store.monitoring.run(f"{SERVED}@1", since=now, until=now + 1_000, keep=False)
    store.close()
    return {"seconds": took, "rows": done, "requests": k}


def w_drift_log(folder: Path) -> dict[str, Any]:
    """One drift check of ``served-clf@1`` over its whole request log."""
    import trenches

    store = trenches.open(folder / "store", create=False)
    warm(
        *EVALUATE_MODULES,
        "scipy.stats",
        "trenches.monitoring.drift",
        "trenches.requests.window",
        "trenches.requests.stored",
    )
    began = time.perf_counter()
    report = store.monitoring.run(f"{SERVED}@1", keep=False)
    took = time.perf_counter() - began
    drifted = sorted(c.name for c in report.report.columns if c.drifted)
    store.close()
    return {"seconds": took, "drifted": drifted, "peak_mib": peak_mib()}


def w_first_touch(folder: Path, rows: int) -> dict[str, Any]:
    """What this machine charges a fresh process for memory it touches the first time:
    an array of ``rows`` x 20 float64 made and filled (in this virtual machine a page
    fault costs far more than on bare metal, so a workload that makes its arrays pays
    it too)."""
    began = time.perf_counter()
    array = np.ones((rows, len(FEATURES)))
    took = time.perf_counter() - began
    return {"seconds": took, "mib": array.nbytes / 2**20}


WORKLOADS = {
    f.__name__[2:]: f
    for f in list(globals().values())
    if callable(f) and getattr(f, "__name__", "").startswith("w_")
}


def child(
    name: str, folder: Path, *extra: str, src: Path | None = None, may_fail: bool = False
) -> dict[str, Any]:
    """Run workload ``name`` in a fresh process: its figures, as JSON. ``src``: the
    ``src`` folder of another checkout of trenches to measure instead of this one;
    ``may_fail``: a workload that fails gives ``{"failed": its last error line}``."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    # The files the last workload wrote go to the disk first: their write-back would
    # otherwise slow this one (by as much as 2x for a copy of the 10M-row file here).
    os.sync()
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--folder", str(folder), *extra],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        if may_fail:
            return {"failed": (done.stderr.strip().splitlines() or ["?"])[-1][:160]}
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def median_child(name: str, folder: Path, runs: int, **how: Any) -> dict[str, Any]:
    """:func:`child` ``runs`` times, each in a fresh process: the figures of the run
    of median time, with every run's time in ``runs_s``. For the workloads of well
    under a second, where one run on this machine can take twice another."""
    got = [child(name, folder, **how) for _ in range(runs)]
    if any("failed" in g for g in got):
        return next(g for g in got if "failed" in g)
    ordered = sorted(got, key=lambda g: float(g["seconds"]))
    return {**ordered[len(ordered) // 2], "runs_s": [round(float(g["seconds"]), 3) for g in got]}


#: The workloads that run trenches, once per checkout measured.
TRENCHES = (
    "import",
    "training_data",
    "register",
    "evaluate",
    "evaluate_again",
    "register_forest",
    "evaluate_forest",
)

#: Runs of a short workload, of which the median is kept (see :func:`median_child`).
SHORT_RUNS = 3
SHORT = ("evaluate_again", "pyarrow_predictions")


def measure(
    folder: Path, log_rows: int, src: Path | None, *, reuse: bool
) -> dict[str, dict[str, Any]]:
    """Every trenches workload on the checkout at ``src`` (None: this one), with a
    store of its own under ``folder``; each figure kept in ``figures.json`` there as
    it comes, and with ``reuse`` taken from it instead of measured again (a run
    stopped half-way goes on where it stopped). A workload of another checkout may
    fail: its figure says how."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "patterns.parquet"
    if not link.exists():
        link.symlink_to(folder.parent / "patterns.parquet")
    kept = folder / "figures.json"
    got: dict[str, dict[str, Any]] = json.loads(kept.read_text()) if reuse and kept.exists() else {}
    steps: list[tuple[str, str, tuple[str, ...]]] = [
        (name, name.removesuffix("_again"), ()) for name in TRENCHES
    ]
    if log_rows:
        steps += [
            ("log_requests", "log_requests", ("--log-rows", str(log_rows))),
            ("drift_log", "drift_log", ()),
        ]
    for name, workload, extra in steps:
        if name in got:
            continue
        if name in SHORT:
            got[name] = median_child(
                workload, folder, SHORT_RUNS, src=src, may_fail=src is not None
            )
        else:
            got[name] = child(workload, folder, *extra, src=src, may_fail=src is not None)
        kept.write_text(json.dumps(got))
        print(f"  {folder.name} {name}: {got[name]}", flush=True)
    return got


Figure = tuple[str, "float | str", "float | None", "float | None", str]


def figures(
    got: dict[str, dict[str, Any]], peers: dict[str, dict[str, Any]], log_rows: int
) -> list[Figure]:
    """(what, trenches (or why it failed), peer, ratio as the target reads it, target)
    of one checkout."""
    cp, pn = peers["pyarrow_copy"], peers["pyarrow_numpy"]
    ox, pp = peers["onnx"], peers["pyarrow_predictions"]
    specs: list[tuple[str, str, str, float | None, Any, str]] = [
        # (what, workload, its figure, the peer's, ratio(ours, peer's), target)
        (
            "import, patterns/s",
            "import",
            "rows_per_s",
            cp["rows_per_s"],
            lambda v, p: v / p,
            "speed >= 0.5",
        ),
        (
            "training_data(), s",
            "training_data",
            "seconds",
            pn["seconds"],
            lambda v, p: p / v,
            "speed >= 0.8",
        ),
        (
            "training_data() peak over its arrays, MiB",
            "training_data",
            "peak_over_base_mib",
            None,
            None,
            "<= 2x",
        ),
        (
            "evaluate, all to predict, rows/s",
            "evaluate",
            "rows_per_s",
            ox["rows_per_s"],
            lambda v, p: v / p,
            "speed >= 0.5",
        ),
        (
            "evaluate a random forest, all to predict, rows/s",
            "evaluate_forest",
            "rows_per_s",
            peers["onnx_forest"]["rows_per_s"],
            lambda v, p: v / p,
            "(speed >= 0.5)",
        ),
        (
            "evaluate, nothing to predict, s",
            "evaluate_again",
            "seconds",
            pp["seconds"],
            lambda v, p: v / p,
            "time <= 2x",
        ),
    ]
    if log_rows:
        specs.append(
            (
                f"drift check over a request log of {log_rows:,} rows, s",
                "drift_log",
                "seconds",
                None,
                lambda v, _: v / 10,
                "<= 10 s",
            )
        )
    rows: list[Figure] = []
    for what, workload, key, peer, ratio, target in specs:
        mine = got[workload]
        if "failed" in mine:
            rows.append((what, f"failed ({mine['failed']})", peer, None, target))
            continue
        value = float(mine[key])
        if key == "peak_over_base_mib":  # against the arrays it returned
            peer = float(mine["array_mib"])
            ratio = lambda v, p: v / p  # noqa: E731
        rows.append((what, value, peer, None if ratio is None else ratio(value, peer), target))
    return rows


def shown(v: float | str | None) -> str:
    return v if isinstance(v, str) else number(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", type=int, default=10_000_000)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--label", default="this checkout")
    parser.add_argument(
        "--log-rows",
        type=int,
        default=10_000_000,
        help="input rows in the request log a drift check reads (0: skip it)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the src/ folder of a checkout of the release to compare with (a git "
        "worktree of it): every workload runs on both, side by side",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="go on with a run in --folder that stopped: its file and the figures it "
        "kept are used, and only the missing ones measured",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        extra = (args.log_rows,) if args.child in ("log_requests", "first_touch") else ()
        print(json.dumps(WORKLOADS[args.child](args.folder, *extra)))
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="trenches-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{args.patterns:,} patterns in {folder}", flush=True)
    if not (args.reuse and (folder / "patterns.parquet").exists()):
        write_file(folder / "patterns.parquet", args.patterns)
    kept = folder / "peers.json"
    peers: dict[str, dict[str, Any]] = (
        json.loads(kept.read_text()) if args.reuse and kept.exists() else {}
    )
    for name in ("pyarrow_copy", "pyarrow_numpy"):
        if name not in peers:
            peers[name] = child(name, folder)
            kept.write_text(json.dumps(peers))
        print(f"  {name}: {peers[name]}", flush=True)
    base = None
    if args.baseline is not None:
        base = measure(folder / "baseline", args.log_rows, args.baseline, reuse=args.reuse)
    ours = measure(folder / "checkout", args.log_rows, None, reuse=args.reuse)
    # on this checkout's store
    for name in ("onnx", "onnx_forest", "pyarrow_inputs", "pyarrow_predictions"):
        where = folder / "checkout"
        peers[name] = median_child(name, where, SHORT_RUNS) if name in SHORT else child(name, where)
        print(f"  {name}: {peers[name]}", flush=True)
    first_touch = child("first_touch", folder, "--log-rows", str(args.log_rows or args.patterns))
    rows = figures(ours, peers, args.log_rows)
    code = measured_code()
    print(f"\n{args.patterns:,} patterns x 20 numbers; {args.label}; code {code}")
    if base is None:
        print("| workload | trenches | pyarrow / ONNX Runtime | ratio | target |")
        print("| --- | --- | --- | --- | --- |")
        for what, value, theirs, ratio, target in rows:
            print(f"| {what} | {shown(value)} | {number(theirs)} | {number(ratio)} | {target} |")
    else:
        before = figures(base, peers, args.log_rows)
        print(f"(release: {args.baseline})")
        print(
            "| workload | release | this checkout | this / release | pyarrow / ONNX Runtime "
            "| ratio, release | ratio, this checkout | target |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (what, old, _, old_ratio, _), (_, value, theirs, ratio, target) in zip(
            before, rows, strict=True
        ):
            change = value / old if isinstance(value, float) and isinstance(old, float) else None
            print(
                f"| {what} | {shown(old)} | {shown(value)} | {number(change)} "
                f"| {number(theirs)} | {number(old_ratio)} | {number(ratio)} | {target} |"
            )
    floor = peers["pyarrow_inputs"]["rows_per_s"]
    print(
        f"\nthe floor under evaluating with everything to predict: pyarrow alone reads the "
        f"validation patterns' inputs from Parquet into NumPy at {floor:,.0f} rows/s, "
        f"{number(floor / peers['onnx']['rows_per_s'])} of ONNX Runtime's rows/s"
    )
    print(
        f"\nthis machine: a fresh process filling {first_touch['mib']:,.0f} MiB the first time: "
        f"{number(first_touch['seconds'])} s (page faults alone)"
    )


if __name__ == "__main__":
    main()
