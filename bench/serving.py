"""Model serving: ``trenches serve`` against ``mlflow models serve`` on the peers' load.

What it measures
----------------
The same scikit-learn model (``make_classification``, 20 features, the parameters and
seed of ``shared/bench-peers/load.py prepare``; a LogisticRegression(max_iter=1000) on
the first 20,000 rows) served by one worker of each tool on 127.0.0.1 and driven by the
peers' own load generator, ``shared/bench-peers/load.py run`` (an async httpx client,
``dataframe_split`` JSON to ``/invocations``), unchanged:

- **single_c8**: 2,000 requests of one row, 8 at a time;
- **single_c1**: 500 requests of one row, one at a time (latency without queueing);
- **batch_c8**: 200 requests of 1,000 rows, 8 at a time;
- **ready**: from launching the server to its first 200 on ``/ping``;
- **cost**: the server's CPU seconds (every process of its group, from ``/proc``) per
  1,000 predicted rows, in each phase.

trenches: a store in a temp folder holds the training rows as a dataset and the model,
registered (so it has an ONNX form) and promoted to ``production``; the server is
``trenches serve clf@production --workers 1`` with its request log on. After the load it
is stopped with SIGTERM (graceful: the log is written out) and the store is checked to
hold a ``served_requests`` row for every request load.py sent. MLflow: the peers'
``serve_mlflow.sh``, unchanged. The ceiling: a bare FastAPI app whose ``/invocations``
answers a constant, under the same uvicorn settings as trenches (one worker, uvloop,
httptools, no access log), driven by the same load.py; its answers are not the model's,
so load.py reports it ``verified: false``, as it should.

load.py and serve_mlflow.sh run in the peers' virtual environment (``$PEERS_VENV``,
default ``$TMPDIR/peers-venv``; see ``shared/bench-peers/README.md``); load.py needs it
(it imports mlflow). Every server runs in a process group of its own and is stopped by
that group's id, also when the benchmark fails.

Client and server share the machine's cores, so anything else running moves the
figures: each run also reports the CPU that other processes and the hypervisor (steal
time) took meanwhile, and the commit measured. Repeat when they are high.

Targets (trenches against MLflow): single_c8 at least 10x the requests/s with a p99 of
at most a fifth; batch_c8 at least 5x the rows/s; ready in under 1.5 s.

    python bench/serving.py                 # ~2 minutes, most of it MLflow
    python bench/serving.py --repeats 5     # median [min-max] of five runs of each (~9 min)
    python bench/serving.py --no-peer       # trenches and the ceiling only (~30 s)
    python bench/serving.py --no-log        # trenches without its request log
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import measured_code, number  # bench/ is on sys.path when a script runs

import trenches

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "bench-peers"
BIN = Path(sys.executable).parent
PHASES = ("single_c8", "single_c1", "batch_c8")
COLUMNS = [f"f{i}" for i in range(20)]
#: load.py's requests outside the phases: the 1,000-row check, then the warm-up (50 of
#: one row, 5 of 1,000 rows). Each is a served request, so each is logged.
UNMEASURED_REQUESTS = 1 + 50 + 5
UNMEASURED_ROWS = 1000 + 50 + 5 * 1000

CEILING_APP = '''\
"""The ceiling: FastAPI answering a constant, no model and no log."""
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()
ANSWER = b'{"predictions":[0]}'


@app.get("/ping")
async def ping() -> Response:
    return Response(b"\\n", media_type="application/json")


@app.post("/invocations")
async def invocations() -> Response:
    return Response(ANSWER, media_type="application/json")
'''


class Bystanders:
    """CPU the rest of the machine used while a server was measured: every process
    that does not descend from this one, and the hypervisor's steal time. Two cores
    are shared by client and server here, so a test suite running next to the
    benchmark changes the figures; this says when it did."""

    def __init__(self, every: float = 0.5) -> None:
        self._every = every
        self._hz = os.sysconf("SC_CLK_TCK")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.other_cpu_s = 0.0
        self.top: dict[str, float] = {}  # "pid command line" -> CPU seconds
        self._names: dict[int, str] = {}

    def _scan(self) -> dict[int, tuple[int, str, int]]:
        procs = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            cmd = stat[stat.index("(") + 1 : stat.rindex(")")]
            procs[int(entry.name)] = (int(fields[1]), cmd, int(fields[11]) + int(fields[12]))
        return procs

    def _steal(self) -> int:
        with open("/proc/stat") as fh:
            return int(fh.readline().split()[8])

    def _ours(self, procs: dict[int, tuple[int, str, int]]) -> set[int]:
        me, ours = os.getpid(), set()
        for pid in procs:
            p, seen = pid, 0
            while p > 1 and seen < 64:
                if p == me:
                    ours.add(pid)
                    break
                p = procs[p][0] if p in procs else 0
                seen += 1
        return ours

    def _run(self) -> None:
        before = self._scan()
        while not self._stop.wait(self._every):
            self._tally(before, now := self._scan())
            before = now

    def _tally(
        self, before: dict[int, tuple[int, str, int]], now: dict[int, tuple[int, str, int]]
    ) -> None:
        ours = self._ours(now)
        for pid, (_, cmd, cpu) in now.items():
            if pid in ours:
                continue
            used = (cpu - before[pid][2] if pid in before else cpu) / self._hz
            if used > 0:
                self.other_cpu_s += used
                name = self._names.get(pid) or self._name(pid, cmd)
                self.top[name] = self.top.get(name, 0.0) + used

    def _name(self, pid: int, cmd: str) -> str:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                line = fh.read(200).replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            line = ""
        self._names[pid] = f"{pid} {line[:80] or cmd}"
        return self._names[pid]

    def __enter__(self) -> Bystanders:
        self._t0 = time.perf_counter()
        self._steal0 = self._steal()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self._t0
        self.steal_s = (self._steal() - self._steal0) / self._hz

    def report(self) -> dict[str, Any]:
        top = sorted(self.top.items(), key=lambda kv: -kv[1])[:3]
        return {
            "seconds": round(self.seconds, 1),
            "other_cpu_s": round(self.other_cpu_s, 2),
            "steal_s": round(self.steal_s, 2),
            "top": {cmd: round(cpu, 2) for cmd, cpu in top if cpu >= 0.05},
        }


def peers_venv() -> Path:
    return Path(os.environ.get("PEERS_VENV", Path(tempfile.gettempdir()) / "peers-venv"))


def prepare(work: Path) -> Path:
    """The store (dataset, model clf@1 in production) and load.py's X.npy/expected.npy."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    # load.py prepare, verbatim: the same rows, the same model.
    X, y = make_classification(
        n_samples=30_000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        flip_y=0.05,
        class_sep=0.7,
        random_state=0,
    )
    model = LogisticRegression(max_iter=1000).fit(X[:20_000], y[:20_000])
    # Fit on an array as load.py does; registering with named columns then warns.
    warnings.filterwarnings("ignore", "X has feature names", UserWarning)
    Xs = X[20_000:]
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "X.npy", Xs)
    np.save(work / "expected.npy", model.predict(Xs))

    path = work / "store"
    with trenches.open(path) as store:
        ds = store.datasets.create("bench", task="classification", label="label")
        frame = pd.DataFrame(X[:20_000], columns=COLUMNS)
        frame["label"] = y[:20_000]
        ds.add(frame, source="expert")
        version = store.models.register(model, "clf", X=frame[COLUMNS].iloc[:1000], dataset="bench")
        if "onnx" not in version.formats:
            raise SystemExit(f"{version.ref} has no ONNX form; the benchmark expects one")
        store.models.promote(version.ref, "production", reason="serving benchmark")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server_group(
    cmd: Sequence[str], log: Path, **kw: Any
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """Run ``cmd`` in a new session (``setsid``: its own process group, whose id is its
    pid), and give it with its launch time (epoch seconds, taken just before, as
    serve_mlflow.sh does); on the way out, SIGTERM that group, SIGKILL it after 30 s."""
    with log.open("wb") as out:
        launched = time.time()
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kw
        )
    try:
        yield proc, launched
    finally:
        stop_group(proc, grace=30)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM the process group of ``proc``, wait for it, SIGKILL what is left."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with suppress(ProcessLookupError):  # the leader may be gone, a child of its group not
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode


def drive(url: str, work: Path, pgid: int, started_at: float) -> dict[str, Any]:
    """load.py run against ``url``: its one JSON line."""
    python = peers_venv() / "bin" / "python"
    proc = subprocess.run(
        [
            str(python),
            str(PEERS / "load.py"),
            "run",
            "--url",
            url,
            "--workdir",
            str(work),
            "--server-pgid",
            str(pgid),
            "--started-at",
            repr(started_at),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"load.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if proc.returncode != 0 or "error" in result:
        raise RuntimeError(f"load.py: {result.get('error')} {proc.stderr[-2000:]}")
    return result


def logged(store: Path) -> tuple[int, int]:
    """Rows of served_requests, and the input rows they hold."""
    from sqlalchemy import func, select

    from trenches.db import schema as t

    with trenches.open(store, create=False) as s, s.engine.connect() as conn:
        r = t.served_requests.c
        count, rows = conn.execute(select(func.count(), func.coalesce(func.sum(r.n), 0))).one()
    return int(count), int(rows)


def run_trenches(work: Path, store: Path, log_requests: bool) -> dict[str, Any]:
    port = free_port()
    cmd = [str(BIN / "trenches"), "--store", str(store), "serve", "clf@production"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if not log_requests:
        cmd.append("--no-log")
    before = logged(store)
    server_log = work / "trenches-server.log"
    with server_group(cmd, server_log, cwd=work) as (proc, launched):
        try:
            result = drive(f"http://127.0.0.1:{port}", work, proc.pid, launched)
        except RuntimeError as e:
            tail = server_log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}\ntrenches serve said:\n{tail}") from None
        t = time.perf_counter()
        # uvicorn ends a graceful stop by re-raising the SIGTERM: exit status -15.
        result["exit_status"] = stop_group(proc, grace=60)
        result["stop_s"] = round(time.perf_counter() - t, 2)
    after = logged(store)
    phases = result["phases"]
    sent = UNMEASURED_REQUESTS + sum(p["completed"] for p in phases.values())
    sent_rows = UNMEASURED_ROWS + sum(
        p["completed"] * p["rows_per_request"] for p in phases.values()
    )
    spooled = sorted(p.name for p in (store / "spool").glob("*.jsonl")) if log_requests else []
    result["request_log"] = {
        "on": log_requests,
        "requests_sent": sent,
        "requests_logged": after[0] - before[0],
        "rows_sent": sent_rows,
        "rows_logged": after[1] - before[1],
        "spool_files": spooled,
        "complete": (after[0] - before[0], after[1] - before[1]) == (sent, sent_rows),
    }
    result["server_says"] = server_log.read_text(errors="replace")[-2000:]
    return result


def run_ceiling(work: Path) -> dict[str, Any]:
    (work / "ceiling_app.py").write_text(CEILING_APP)
    port = free_port()
    cmd = [str(BIN / "python"), "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(work)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    cmd += ["--log-level", "warning"]
    with server_group(cmd, work / "ceiling-server.log", cwd=work) as (proc, launched):
        return drive(f"http://127.0.0.1:{port}", work, proc.pid, launched)


def run_mlflow() -> dict[str, Any]:
    env = dict(os.environ, PEERS_VENV=str(peers_venv()))
    # serve_mlflow.sh starts and stops its own server group (trap on EXIT, TERM, INT);
    # in a session of its own, so a timeout here can stop everything it started.
    proc = subprocess.Popen(
        ["bash", str(PEERS / "serve_mlflow.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # its trap stops the server's group
        out, err = proc.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"serve_mlflow.sh failed ({proc.returncode}): {err[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- figures ----------------------------------------------------------------------------

#: (phase, figure, better, target ratio): the figures compared, in the order printed.
ROWS: list[tuple[str, str, str, float | None]] = [
    (phase, key, better, None)
    for phase in PHASES
    for key, better in (
        ("requests_per_s", "higher"),
        ("rows_per_s", "higher"),
        ("p50_ms", "lower"),
        ("p99_ms", "lower"),
        ("cpu_s_per_1000", "lower"),
        ("server_busy", "-"),
        ("client_busy", "-"),
    )
    if key != "rows_per_s" or phase == "batch_c8"  # one row a request: same as requests/s
]
TARGETS = {("single_c8", "requests_per_s"): 10, ("single_c8", "p99_ms"): 5}
TARGETS[("batch_c8", "rows_per_s")] = 5
READY_TARGET_S = 1.5
LABELS = {
    "requests_per_s": "requests/s",
    "rows_per_s": "rows/s",
    "p50_ms": "p50, ms",
    "p99_ms": "p99, ms",
    "cpu_s_per_1000": "server CPU s / 1,000 rows",
    "server_busy": "server CPU busy, cores",
    "client_busy": "client CPU busy, cores",
}


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The figures compared, from one load.py result."""
    out: dict[str, Any] = {"ready_s": result["server_ready_s"], "verified": result["verified"]}
    for name in PHASES:
        p = result["phases"][name]
        rows = p["completed"] * p["rows_per_request"]
        cpu = p.get("server_cpu_s")
        out[name] = {
            "requests_per_s": p["requests_per_s"],
            "rows_per_s": p["rows_per_s"],
            "p50_ms": p["p50_ms"],
            "p99_ms": p["p99_ms"],
            "cpu_s_per_1000": round(cpu / rows * 1000, 4) if cpu is not None and rows else None,
            "server_busy": round(cpu / p["seconds"], 2) if cpu is not None else None,
            "client_busy": round(p["client_cpu_s"] / p["seconds"], 2),
            "errors": p["errors"],
            "finished_all": p["finished_all"],
        }
    return out


def summary(runs: list[dict[str, Any]], how: Any) -> dict[str, Any]:
    """Each figure's median (or min, max) over the runs; verified: all of them."""
    if not runs:
        return {}
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r[key] for r in runs]
        if isinstance(first, dict):
            out[key] = summary(values, how)
        elif isinstance(first, bool):
            out[key] = all(values)
        elif any(v is None for v in values):
            out[key] = None
        else:
            out[key] = how(values)
    return out


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[dict[str, Any]]:
    """Each figure of both, the ratio (how many times better trenches is), the target."""
    out = []
    for phase, key, better, _ in ROWS:
        a = ours[phase][key]
        b = theirs[phase][key] if theirs else None
        ratio = None
        if a and b and better != "-":
            ratio = a / b if better == "higher" else b / a
        target = TARGETS.get((phase, key))
        out.append(
            {
                "phase": phase,
                "figure": key,
                "trenches": a,
                "mlflow": b,
                "ratio": ratio,
                "target": target,
                "holds": None if target is None or ratio is None else ratio >= target,
            }
        )
    ready = ours["ready_s"]
    out.append(
        {
            "phase": "start",
            "figure": "ready_s",
            "trenches": ready,
            "mlflow": theirs["ready_s"] if theirs else None,
            "ratio": theirs["ready_s"] / ready if theirs else None,
            "target": READY_TARGET_S,
            "holds": ready < READY_TARGET_S,
        }
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=1, help="runs of each server (medians)")
    ap.add_argument("--no-peer", action="store_true", help="skip MLflow")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the bare FastAPI app")
    ap.add_argument("--no-log", action="store_true", help="serve trenches without its log")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument(
        "--json", action="store_true", help="also print everything as one JSON object, last"
    )
    args = ap.parse_args()

    python = peers_venv() / "bin" / "python"
    if not python.exists():
        sys.exit(
            f"no peers venv at {peers_venv()} (load.py runs there): make it with\n"
            f"  python3 -m venv {peers_venv()} && {peers_venv()}/bin/pip install "
            f"-r {PEERS / 'requirements-observed.txt'}"
        )
    code = measured_code()
    tmp = Path(tempfile.mkdtemp(prefix="trenches-bench-serving-"))
    try:
        raw, prepared_s = _measure(tmp, args)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    stats = _Stats.of(raw, args.repeats)
    rows = compare(stats.med["trenches"], stats.med["mlflow"])
    logs = [r["request_log"] for r in raw["trenches"]]
    n = args.repeats

    mlflow_version = raw["mlflow"][0]["versions"]["mlflow"] if raw["mlflow"] else "(not run)"
    print(
        f"\nserving, one worker each on 127.0.0.1, driven by load.py: trenches "
        f"{trenches.__version__} ({code}; request log {'off' if args.no_log else 'on'}) "
        f"against mlflow models serve {mlflow_version}; "
        + (f"median [min-max] of {n} runs each" if n > 1 else "one run each")
    )
    print(
        f"  python {platform.python_version()}, cpu_count {os.cpu_count()}, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}, store prepared in "
        f"{prepared_s:.1f} s\n"
    )
    _print_table(rows, stats)
    _print_notes(raw, stats.med, logs)
    if args.json:
        print(
            json.dumps(
                {
                    "code": code,
                    "request_log_on": not args.no_log,
                    "median": stats.med,
                    "min": stats.low,
                    "max": stats.high,
                    "results": rows,
                    "request_log": logs,
                    "runs": raw,
                }
            )
        )


def _measure(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Each server's runs, and the seconds the store took to prepare."""
    raw: dict[str, list[dict[str, Any]]] = {"trenches": [], "mlflow": [], "ceiling": []}
    t = time.perf_counter()
    store = prepare(tmp)
    prepared_s = time.perf_counter() - t
    runs: list[tuple[str, Any]] = [("trenches", lambda: run_trenches(tmp, store, not args.no_log))]
    if not args.no_peer:
        runs.append(("mlflow", run_mlflow))
    if not args.no_ceiling:
        runs.append(("ceiling", lambda: run_ceiling(tmp)))
    for i in range(args.repeats):
        # One of each server per round, so a slow spell of the machine hits all three.
        for name, run in runs:
            print(f"round {i + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            with Bystanders() as others:
                try:
                    result = run()
                except RuntimeError as e:
                    if name == "trenches":
                        raise
                    print(f"{name} failed, left out: {e}", file=sys.stderr)
                    continue
            result["bystanders"] = others.report()
            raw[name].append(result)
    return raw, prepared_s


@dataclass(frozen=True)
class _Stats:
    """Each server's figures run by run, and their median, min and max."""

    each: dict[str, list[dict[str, Any]]]
    med: dict[str, dict[str, Any]]
    low: dict[str, dict[str, Any]]
    high: dict[str, dict[str, Any]]
    #: Runs of each server.
    n: int

    @classmethod
    def of(cls, raw: dict[str, list[dict[str, Any]]], n: int) -> _Stats:
        each = {name: [figures(r) for r in results] for name, results in raw.items()}
        return cls(
            each,
            {name: summary(f, statistics.median) for name, f in each.items()},
            {name: summary(f, min) for name, f in each.items()},
            {name: summary(f, max) for name, f in each.items()},
            n,
        )

    def cell(self, name: str, phase: str, key: str) -> str:
        if not self.each[name]:
            return "-"
        med, low, high = self.med[name], self.low[name], self.high[name]
        if phase == "start":
            m, lo, hi = med[key], low[key], high[key]
        else:
            m, lo, hi = med[phase][key], low[phase][key], high[phase][key]
        return number(m) + (f" [{number(lo)}-{number(hi)}]" if self.n > 1 else "")


def _print_table(rows: list[dict[str, Any]], stats: _Stats) -> None:
    width = 24 if stats.n > 1 else 10
    print(
        f"  {'phase':<9} {'figure':<25} {'trenches':>{width}} {'mlflow':>{width}} "
        f"{'ratio':>7} {'ceiling':>{width}}  target"
    )
    for r in rows:
        phase, key = r["phase"], r["figure"]
        label = LABELS.get(key, "ready, s")
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] is not None else ""
        goal = ""
        if key == "ready_s":
            goal = f"trenches < {READY_TARGET_S} s: {'holds' if r['holds'] else 'MISSED'}"
        elif r["target"] is not None and r["ratio"] is not None:
            how = "less" if key.endswith("_ms") else "more"
            goal = f">= {r['target']}x {how}: {'holds' if r['holds'] else 'MISSED'}"
        print(
            f"  {phase:<9} {label:<25} {stats.cell('trenches', phase, key):>{width}} "
            f"{stats.cell('mlflow', phase, key):>{width}} {ratio:>7} "
            f"{stats.cell('ceiling', phase, key):>{width}}  {goal}"
        )


def _print_notes(
    raw: dict[str, list[dict[str, Any]]],
    med: dict[str, dict[str, Any]],
    logs: list[dict[str, Any]],
) -> None:
    """The ceiling, the verified answers, the request log and the other processes."""
    ceiling = med["ceiling"]
    if ceiling:
        c8 = ceiling["single_c8"]["requests_per_s"]
        share = med["trenches"]["single_c8"]["requests_per_s"] / c8
        print(
            f"\n  ceiling: a bare FastAPI endpoint answering a constant, {number(c8)} requests/s "
            f"at single_c8; trenches serves {share:.0%} of that"
        )
    print(
        "  verified (the answers to 1,000 rows are the model's): "
        + ", ".join(
            f"{name} {med[name]['verified']}"
            + (" (a constant answer: false is expected)" if name == "ceiling" else "")
            for name in raw
            if raw[name]
        )
    )
    for i, lg in enumerate(logs):
        if not lg["on"]:
            print(f"  request log, trenches run {i + 1}: off (--no-log)")
            continue
        print(
            f"  request log, trenches run {i + 1}: {lg['requests_logged']:,} of "
            f"{lg['requests_sent']:,} requests and {lg['rows_logged']:,} of "
            f"{lg['rows_sent']:,} rows stored after SIGTERM: "
            + ("complete" if lg["complete"] else "INCOMPLETE")
            + (f"; spool files left: {lg['spool_files']}" if lg["spool_files"] else "")
        )
    for name, results in raw.items():
        for i, r in enumerate(results):
            b = r["bystanders"]
            busy = b["other_cpu_s"] / b["seconds"] if b["seconds"] else 0.0
            print(
                f"  other processes during {name} run {i + 1}: {b['other_cpu_s']:.1f} CPU s in "
                f"{b['seconds']:.0f} s ({busy:.0%} of a core), hypervisor steal "
                f"{b['steal_s']:.1f} s" + (f"; most: {b['top']}" if busy > 0.05 else "")
            )


if __name__ == "__main__":
    main()
