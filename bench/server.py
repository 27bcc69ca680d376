"""The team server under 20 clients writing at once, against MLflow's tracking server.

What it measures
----------------
The load of ``tests/test_api_load.py`` (``bench/_load.py``), for a fixed time: 20
clients on 127.0.0.1, each a thread with its own connection and, on trenches, its own
user and token, one request in flight each (so 20 at most at once), looping:

- **trenches, mixed** (the issue's load): import a CSV of 3 new patterns
  (``POST /datasets/tumours/imports``), give feedback on a logged request's row
  (``POST /requests/{id}/feedback``), make a run (``POST /runs`` with 2 params and a tag,
  ``POST /runs/{id}/metrics`` with 4 points, ``POST /runs/{id}/end``);
- **trenches, runs only**: the run writes alone, as MLflow is given them;
- **MLflow, runs only**: the same run writes over its REST API (``runs/create`` with the
  tag, ``runs/log-batch`` with the params and the 4 points, ``runs/update`` to end it),
  in one experiment made first.

Servers: ``trenches server --workers N`` (default 1) over a new SQLite store (the
dataset, a model whose requests were logged, 20 users), and ``mlflow server
--backend-store-uri sqlite:///... --workers 1`` from the peers' venv (``$PEERS_VENV``,
default ``$TMPDIR/peers-venv``; see ``shared/bench-peers/README.md``), telemetry off.
Each runs in a process group of its own, stopped by that group's id.

Per kind of write: writes acknowledged, writes/s, p50 and p99 latency (``run`` is a whole
run, its three writes); the ratio on the runs is trenches' runs-only figures against
MLflow's. Afterwards each store is read back: every acknowledged write must be there
exactly once (and, on trenches, in the audit log once, as its user's). Any failed
request (a 429 or a 5xx included) is reported. The clients share the machine's cores
with the server: the CPU other processes took meanwhile is reported with each phase.

    python bench/server.py                   # 60 s per phase, three phases (~4 minutes)
    python bench/server.py --seconds 300     # longer
    python bench/server.py --workers 2       # trenches with two worker processes
    python bench/server.py --no-peer --json  # trenches only; one JSON line at the end
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import _load  # bench/ is on sys.path when a script runs
import httpx
from _common import measured_code, number
from serving import Bystanders, free_port, peers_venv, server_group

import trenches

BIN = Path(sys.executable).parent
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
KINDS = ("import", "feedback", "run.create", "run.metrics", "run.end", "run")
LABELS = {
    "import": "import 3 patterns",
    "feedback": "feedback",
    "run.create": "run: create",
    "run.metrics": "run: metrics",
    "run.end": "run: end",
    "run": "run, all three",
}


@contextmanager
def served(cmd: list[str], url: str, log: Path, **kw: Any) -> Iterator[None]:
    """``cmd`` in a process group of its own, once ``url`` answers 200."""
    with server_group(cmd, log, **kw) as (proc, _):
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield


def measured(
    url: str, writers: list[_load.Writer], seconds: float, iteration: _load.Iteration
) -> tuple[_load.Tally, dict[str, Any]]:
    """The load, and what the rest of the machine did meanwhile."""
    with Bystanders() as others:
        tally = _load.drive(url, writers, seconds, iteration)
    return tally, {**others.report(), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def run_trenches(work: Path, seconds: float, workers: int) -> dict[str, Any]:
    """Both trenches phases on one server; the store read back after it stopped."""
    where = work / "store"
    with trenches.open(where) as store:
        house = _load.house(store, work / "spool", seconds=seconds)
    port = free_port()
    cmd = [str(BIN / "trenches"), "--store", str(where), "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with served(cmd, f"{url}/health", work / "trenches-server.log", cwd=work):
        mixed, mixed_machine = measured(
            url, house.writers, seconds, _load.mixed(house.dataset, house.snapshot_id)
        )
        runs, runs_machine = measured(
            url, house.writers, seconds, _load.runs_only(house.snapshot_id)
        )
    both = _load.Tally(done=mixed.done + runs.done)
    with trenches.open(where, create=False) as store:
        wrong = _load.check(store, house, both)
    return {
        "mixed": _phase(mixed, mixed_machine),
        "runs": _phase(runs, runs_machine),
        "wrong": wrong,
        "writes_checked": len(both.done),
    }


def _phase(tally: _load.Tally, machine: dict[str, Any]) -> dict[str, Any]:
    return {
        "seconds": round(tally.seconds, 1),
        "figures": tally.figures(),
        "failures": len(tally.failures),
        "first_failures": tally.failures[:5],
        "exhausted": len(tally.exhausted),
        "machine": machine,
    }


# --- MLflow ------------------------------------------------------------------------------


def _mlflow_run(
    client: httpx.Client, writer: _load.Writer, i: int, tally: _load.Tally, experiment: str
) -> bool:
    """The run writes of ``_load.make_run``, in MLflow's REST API."""
    marker = f"{writer.user}/{i}"
    api = "/api/2.0/mlflow/runs"
    t = time.perf_counter()
    made = tally.post(
        client,
        "run.create",
        writer.user,
        marker,
        f"{api}/create",
        json={
            "experiment_id": experiment,
            "run_name": marker,
            "start_time": int(time.time() * 1000),
            "tags": [{"key": "by", "value": "load"}],
        },
    )
    if made is None:
        return True
    run_id = made["run"]["info"]["run_id"]
    now = int(time.time() * 1000)
    batch = {
        "run_id": run_id,
        "params": [{"key": k, "value": v} for k, v in _load.PARAMS.items()],
        "metrics": [
            {"key": k, "value": v, "step": s, "timestamp": now} for k, v, s in _load.METRICS
        ],
    }
    logged = tally.post(client, "run.metrics", writer.user, marker, f"{api}/log-batch", json=batch)
    end = {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    ended = tally.post(client, "run.end", writer.user, marker, f"{api}/update", json=end)
    if logged is not None and ended is not None:
        tally.took("run", time.perf_counter() - t)
    return True


def run_mlflow(work: Path, seconds: float) -> dict[str, Any]:
    db = work / "mlflow.db"
    port = free_port()
    venv = peers_venv()
    cmd = [str(venv / "bin" / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}"]
    cmd += ["--artifacts-destination", str(work / "mlartifacts")]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, **MLFLOW_ENV, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    url = f"http://127.0.0.1:{port}"
    writers = [_load.Writer(f"load-{k:02d}") for k in range(_load.CLIENTS)]
    with served(cmd, f"{url}/health", work / "mlflow-server.log", cwd=work, env=env):
        made = httpx.post(
            f"{url}/api/2.0/mlflow/experiments/create", json={"name": "load"}, timeout=60
        )
        made.raise_for_status()
        iteration = partial(_mlflow_run, experiment=made.json()["experiment_id"])
        tally, machine = measured(url, writers, seconds, iteration)
    version = _mlflow_version(venv)
    return {
        "runs": _phase(tally, machine),
        "wrong": check_mlflow(db, tally),
        "writes_checked": len(tally.done),
        "version": version,
    }


def _mlflow_version(venv: Path) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        env={**os.environ, **MLFLOW_ENV},
        check=False,
    )
    return done.stdout.strip() or "?"


def check_mlflow(db: Path, tally: _load.Tally) -> list[str]:
    """Every acknowledged run in MLflow's database once, with its params, points, status."""
    with sqlite3.connect(db) as conn:
        runs = {u: (n, s) for u, n, s in conn.execute("SELECT run_uuid, name, status FROM runs")}
        points = dict(conn.execute("SELECT run_uuid, count(*) FROM metrics GROUP BY run_uuid"))
        params = dict(conn.execute("SELECT run_uuid, count(*) FROM params GROUP BY run_uuid"))
    names = Counter(name for name, _ in runs.values())
    wrong = [f"run {name} stored {n} times" for name, n in names.items() if n > 1]
    made = {w.marker: w.answer["run"]["info"]["run_id"] for w in tally.of("run.create")}
    for marker, run_id in made.items():
        if runs.get(run_id, ("", ""))[0] != marker:
            wrong.append(f"run {marker}: acknowledged as {run_id}, not stored")
    for w in tally.of("run.metrics"):
        run_id = made[w.marker]
        if (points.get(run_id), params.get(run_id)) != (len(_load.METRICS), len(_load.PARAMS)):
            wrong.append(
                f"run {w.marker}: {points.get(run_id)} points, {params.get(run_id)} params"
            )
    for w in tally.of("run.end"):
        if runs[made[w.marker]][1] != "FINISHED":
            wrong.append(f"run {w.marker}: ended, stored as {runs[made[w.marker]][1]}")
    return wrong


# --- the table ---------------------------------------------------------------------------


def _print_table(phases: dict[str, dict[str, Any]]) -> None:
    print(f"  {'load':<20} {'writes':<20} {'done':>7} {'writes/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, phase in phases.items():
        for kind in KINDS:
            f = phase["figures"].get(kind)
            if f is None:
                continue
            print(
                f"  {name:<20} {LABELS[kind]:<20} {f['writes']:>7,} {number(f['per_s']):>9} "
                f"{number(f['p50_ms']):>8} {number(f['p99_ms']):>8}"
            )
            name = ""


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float] | None:
    """trenches' runs-only figures against MLflow's: runs/s, and p50, p99 of a run."""
    a, b = ours["figures"].get("run"), theirs["figures"].get("run")
    if not a or not b:
        return None
    return {
        "runs_per_s": a["per_s"] / b["per_s"],
        "p50": b["p50_ms"] / a["p50_ms"],
        "p99": b["p99_ms"] / a["p99_ms"],
    }


def _print_notes(phases: dict[str, dict[str, Any]], checks: dict[str, dict[str, Any]]) -> None:
    for name, phase in phases.items():
        m = phase["machine"]
        busy = m["other_cpu_s"] / m["seconds"] if m["seconds"] else 0.0
        print(
            f"  {name}: {phase['seconds']} s, failed requests {phase['failures']}"
            + (f" (first: {phase['first_failures'][0][:200]})" if phase["failures"] else "")
            + f"; other processes {m['other_cpu_s']:.1f} CPU s ({busy:.0%} of a core), "
            f"steal {m['steal_s']:.1f} s, load average {' '.join(map(str, m['load_avg']))}"
            + (f"; most: {m['top']}" if busy > 0.05 else "")
            + (f"; {phase['exhausted']} clients ran out of rows" if phase["exhausted"] else "")
        )
    for tool, c in checks.items():
        verdict = "every acknowledged write stored once" + (
            ", audited once as its user's" if tool == "trenches" else ""
        )
        if c["wrong"]:
            verdict = f"{len(c['wrong'])} WRONG, first: {c['wrong'][:3]}"
        print(f"  {tool} read back ({c['writes_checked']:,} writes): {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=_load.SECONDS, help="of load per phase")
    ap.add_argument("--workers", type=int, default=1, help="trenches server's worker processes")
    ap.add_argument("--no-peer", action="store_true", help="skip MLflow")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--json", action="store_true", help="also print one JSON line, last")
    args = ap.parse_args()
    if not args.no_peer and not (peers_venv() / "bin" / "mlflow").exists():
        sys.exit(f"no mlflow in {peers_venv()}: see shared/bench-peers/README.md, or --no-peer")
    code = measured_code()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="trenches-bench-server-"))
    try:
        ours = run_trenches(tmp, args.seconds, args.workers)
        theirs = None if args.no_peer else run_mlflow(tmp, args.seconds)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    phases = {"trenches, mixed": ours["mixed"], "trenches, runs only": ours["runs"]}
    checks = {"trenches": ours}
    if theirs is not None:
        phases["MLflow, runs only"] = theirs["runs"]
        checks["MLflow"] = theirs
    print(
        f"\nteam server writes, {_load.CLIENTS} clients on 127.0.0.1, {args.seconds:g} s a phase: "
        f"trenches {trenches.__version__} ({code}; --workers {args.workers}, SQLite) against "
        + (f"mlflow server {theirs['version']} (--workers 1, SQLite)" if theirs else "no peer")
    )
    print(
        f"  python {platform.python_version()}, cpu_count {os.cpu_count()}, load average "
        f"before {' '.join(f'{x:.2f}' for x in load_before)}\n"
    )
    _print_table(phases)
    ratio = ratios(ours["runs"], theirs["runs"]) if theirs else None
    if ratio:
        print(
            "\n  runs, trenches against MLflow (runs only): "
            f"{ratio['runs_per_s']:.1f}x the runs/s, "
            f"p50 {ratio['p50']:.1f}x and p99 {ratio['p99']:.1f}x less"
        )
    print()
    _print_notes(phases, checks)
    if args.json:
        print(
            json.dumps(
                {
                    "workload": "server_writes",
                    "code": code,
                    "clients": _load.CLIENTS,
                    "seconds": args.seconds,
                    "workers": args.workers,
                    "phases": phases,
                    "runs_ratio": ratio,
                    "wrong": {tool: c["wrong"][:20] for tool, c in checks.items()},
                },
                sort_keys=True,
            )
        )


if __name__ == "__main__":
    main()
