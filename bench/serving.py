"""Model serving driven by ``wrk``: ``trenches serve`` against ``mlflow models serve`` and
the bare-FastAPI ceiling, one and two workers each, in one run.

What it measures
----------------
The same scikit-learn model for every server (``make_classification``, 20 features, the
parameters and seed of ``shared/bench-peers/load.py prepare``; a
LogisticRegression(max_iter=1000) on the first 20,000 rows), served on 127.0.0.1 with
``--workers 1`` and ``--workers 2``, and driven by ``wrk`` (one thread; a Lua script
POSTs a fixed ``dataframe_split`` JSON body to ``/invocations``), so that the client is
not the limit (a Python client saturated a core before the servers did):

- **one_c8**: one-row requests, 8 connections; **one_c64**: the same, 64 connections;
- **batch_c8**: 1,000-row requests, 8 connections;
- **ready**: from launching the server to its first 200 on ``/ping``;
- **cpu**: the server's CPU seconds (every process of its group, from ``/proc``) per
  1,000 rows answered; trenches' request log mover (a process of its own that moves
  logged requests into the log's tables) is counted apart.

Each phase runs ``--duration`` seconds after a 2-second warm-up. Before the phases, one
request of each size checks that the answers are the model's (the ceiling's are a
constant: not checked). trenches: a store in a temp folder holds the training rows and
the model, registered (so it has an ONNX form) and promoted; ``trenches serve
clf@production`` runs with its request log (written ahead) and metrics on, as deployed.
After its phases it is stopped with SIGTERM, and every request wrk saw answered 200
must be stored, or spooled (what its stop could not store within its timeout, which
the next server loads). MLflow: the model logged by ``load.py prepare`` in the peers'
virtual environment (``$PEERS_VENV``, default ``$TMPDIR/peers-venv``; see
``shared/bench-peers/README.md``), served by ``mlflow models serve --env-manager local
-w N``. The ceiling: a FastAPI app whose ``/invocations`` reads the body and answers a
constant, under the same uvicorn settings as trenches (uvloop, httptools, no access
log).

Where trenches' time goes: after the servers, the parts of a one-row request are timed
in this process on the same store (parsing, the ONNX call, the answer's JSON, the id,
the metrics, and the request log with its writer), against the CPU a request took in
the server; the rest is HTTP and the event loop, which the ceiling's CPU per request
shows on its own.

Targets (issue 19): one_c8 requests/s at least 0.7 of the ceiling's, with a p99 at most
twice the ceiling's; one_c64 p99 at most 1.5 times the ceiling's; batch_c8 rows/s at
least 5 times MLflow's; ready in under 1.5 s. Each is judged with one worker and with two.

Client and server share the machine's cores: anything else running moves the figures;
each server's run reports the CPU other processes took meanwhile.

Needs ``wrk`` (Debian's package: ``apt-get install wrk``).

    python bench/serving.py                    # about 6 minutes
    python bench/serving.py --duration 5       # shorter phases
    python bench/serving.py --no-peer          # trenches and the ceiling only
    python bench/serving.py --workers 1        # one worker only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from _common import measured_code, number  # bench/ is on sys.path when a script runs

import trenches

HERE = Path(__file__).resolve().parent
PEERS = HERE.parent.parent / "shared" / "bench-peers"
BIN = Path(sys.executable).parent
COLUMNS = [f"f{i}" for i in range(20)]
#: name, rows a request, connections
PHASES = (("one_c8", 1, 8), ("one_c64", 1, 64), ("batch_c8", 1000, 8))
WARM_UP_S = 2
READY_TARGET_S = 1.5

CEILING_APP = '''\\
"""The ceiling: FastAPI reading the body and answering a constant; no model, no log."""
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
ANSWER = b'{"predictions":[0]}'


@app.get("/ping")
async def ping() -> Response:
    return Response(b"\\\\n", media_type="application/json")


@app.post("/invocations")
async def invocations(request: Request) -> Response:
    await request.body()
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


def logged(store: Path) -> tuple[int, int]:
    """Rows of served_requests, and the input rows they hold."""
    from sqlalchemy import func, select

    from trenches.db import schema as t

    with trenches.open(store, create=False) as s, s.engine.connect() as conn:
        r = t.served_requests.c
        count, rows = conn.execute(select(func.count(), func.coalesce(func.sum(r.n), 0))).one()
    return int(count), int(rows)


# --- servers ------------------------------------------------------------------------------


def group_cpu(pgid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of the processes of group ``pgid`` now alive: the
    servers', and the request log mover's (trenches)."""
    hz = os.sysconf("SC_CLK_TCK")
    serving = moving = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            used = int(fields[11]) + int(fields[12])
            if b"trenches.serving.mover" in cmdline:
                moving += used
            else:
                serving += used
    return serving / hz, moving / hz


def wait_ready(url: str, proc: subprocess.Popen[bytes], launched: float, log: Path) -> float:
    """Seconds from launch to the first 200 on ``/ping``."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server ended: {log.read_text(errors='replace')[-2000:]}")
        with suppress(OSError), urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            if answer.status == 200:
                return time.time() - launched
        time.sleep(0.01)
    raise RuntimeError(f"the server was not ready in 180 s: {log.read_text()[-2000:]}")


def body(X: np.ndarray, start: int, rows: int) -> bytes:
    """A ``dataframe_split`` body of ``rows`` rows of ``X`` from ``start``."""
    idx = np.arange(start, start + rows) % len(X)
    return orjson.dumps(
        {"dataframe_split": {"columns": COLUMNS, "data": X[idx]}},
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def verified(url: str, X: np.ndarray, expected: np.ndarray) -> bool:
    """Whether the answers to a one-row and a 1,000-row request are the model's."""
    for start, rows in ((7, 1), (100, 1000)):
        request = urllib.request.Request(
            f"{url}/invocations",
            data=body(X, start, rows),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            said = orjson.loads(answer.read())["predictions"]
        idx = np.arange(start, start + rows) % len(X)
        if [int(p) for p in said] != expected[idx].astype(int).tolist():
            return False
    return True


def lua(path: Path, content: bytes) -> Path:
    """A wrk script that POSTs ``content`` as JSON."""
    text = content.decode()
    assert "]==]" not in text
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{text}]==]\n"
    )
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found[1]) * _UNITS[found[2]]


def parse_wrk(out: str) -> dict[str, Any]:
    """requests/s, p50 and p99 (ms), requests, and answers that were not 2xx."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    total = re.search(r"^\s+(\d+) requests in", out, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    if rate is None or total is None or "50" not in percentiles:
        raise RuntimeError(f"wrk said:\n{out}")
    return {
        "requests_per_s": float(rate[1]),
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "requests": int(total[1]),
        "non_2xx": int(bad[1]) if bad else 0,
        "socket_errors": errors[1] if errors else None,
    }


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    timeout = "30s"
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout}"]
    cmd += ["--latency", "-s", str(script), f"{url}/invocations"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def phases(
    url: str, pgid: int, work: Path, X: np.ndarray, duration: float
) -> tuple[dict[str, Any], int]:
    """Each phase's figures; and how many requests were answered 200 in all (warm-ups
    included), as wrk counted them."""
    out: dict[str, Any] = {}
    answered = 0
    for name, rows, connections in PHASES:
        script = lua(work / f"{name}.lua", body(X, 11, rows))
        warm = wrk(url, script, connections, WARM_UP_S)
        answered += warm["requests"] - warm["non_2xx"]
        cpu, moved = group_cpu(pgid)
        got = wrk(url, script, connections, duration)
        after = group_cpu(pgid)
        cpu, moved = after[0] - cpu, after[1] - moved
        answered += got["requests"] - got["non_2xx"]
        got["rows_per_s"] = got["requests_per_s"] * rows
        got["cpu_s_per_1000_rows"] = cpu / max(got["requests"] * rows, 1) * 1000
        got["server_busy_cores"] = cpu / duration
        got["mover_cpu_s"] = moved
        out[name] = got
    return out, answered


def serve(
    kind: str, workers: int, work: Path, store: Path, model_uri: str, duration: float
) -> dict[str, Any]:
    """One server's run: ready, verified, the phases; for trenches, its log checked."""
    X, expected = np.load(work / "X.npy"), np.load(work / "expected.npy")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = None
    if kind == "trenches":
        cmd = [str(BIN / "trenches"), "--store", str(store), "serve", "clf@production"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        before = logged(store)[0]
    elif kind == "mlflow":
        venv = peers_venv()
        cmd = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", model_uri]
        cmd += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1", "-w", str(workers)]
        env = dict(
            os.environ,
            PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
            MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow' / 'mlflow.db'}",
            MLFLOW_DISABLE_TELEMETRY="true",
            DO_NOT_TRACK="true",
        )
    else:
        (work / "ceiling_app.py").write_text(CEILING_APP)
        cmd = [str(BIN / "python"), "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(work)]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        cmd += ["--log-level", "warning"]
    log = work / f"{kind}-{workers}.log"
    result: dict[str, Any] = {"server": kind, "workers": workers}
    with server_group(cmd, log, cwd=work, env=env) as (proc, launched):
        result["ready_s"] = wait_ready(url, proc, launched, log)
        result["verified"] = verified(url, X, expected) if kind != "ceiling" else None
        result["phases"], answered = phases(url, proc.pid, work, X, duration)
        if kind == "trenches":
            result["exit_status"] = stop_group(proc, grace=60)
    if kind == "trenches":
        stored = logged(store)[0] - before
        spooled = spooled_requests(store / "spool")
        result["request_log"] = {
            "answered_200": answered + 2,  # and the two verifying requests
            "logged": stored,
            "spooled": spooled,
            "complete": stored + spooled >= answered + 2,
        }
    return result


def spooled_requests(folder: Path) -> int:
    """Requests a stopped server left in its spool folder (what it could not store before
    its stop's timeout: the next server of the store loads them)."""
    if not folder.exists():
        return 0
    return sum(
        line.startswith(b'{"kind":"request"')
        for path in folder.glob("*.jsonl")
        for line in path.read_bytes().splitlines()
    )


# --- where the time goes -----------------------------------------------------------------


def breakdown(store: Path, work: Path, n: int = 20_000) -> dict[str, float]:
    """Microseconds of CPU per one-row request of each part trenches does, timed in
    this process on the same store and model (the log with its writer's work)."""
    from trenches.serving import protocols
    from trenches.serving.payloads import loads
    from trenches.serving.routes.prediction import request_id
    from trenches.serving.settings import Settings
    from trenches.serving.state import Server

    X = np.load(work / "X.npy")
    raw = body(X, 3, 1)
    server = Server(
        Settings(ref="clf@production", store=str(store), spool_dir=str(work / "spool-parts"))
    )
    served = server.served
    parsed = protocols.mlflow(served.schema, loads(raw))
    answer = served.model.answer(parsed.data)

    def timed(work_of: Any) -> float:
        start = time.process_time()
        for _ in range(n):
            work_of()
        return (time.process_time() - start) / n * 1e6

    parts = {
        "parse the body (JSON, checks)": timed(lambda: protocols.mlflow(served.schema, loads(raw))),
        "predict (ONNX Runtime)": timed(lambda: served.model.answer(parsed.data)),
        "the answer's JSON": timed(lambda: protocols.mlflow_answer(served, parsed, answer, "x")),
        "the request id": timed(request_id),
        "metrics (Prometheus)": timed(
            lambda: (
                server.metrics.request("invocations", 200, 0.001),
                server.metrics.predicted(answer.labels),
            )
        ),
    }
    assert server.requests is not None
    server.requests.start()
    start = time.process_time()
    for _ in range(n):
        server.record("invocations", served, parsed, answer, request_id(), time.perf_counter_ns())
    server.requests.stop()  # everything written: the writer's CPU counted too
    parts["the request log (written ahead, stored)"] = (time.process_time() - start) / n * 1e6
    server.stop()
    return parts


# --- report ---------------------------------------------------------------------------------


def judged(results: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """Each target, in words, with whether it holds (None: not measured)."""
    by = {(r["server"], r["workers"]): r for r in results}
    out = []
    for workers in sorted({r["workers"] for r in results}):
        ours, ceiling, peer = (by.get((k, workers)) for k in ("trenches", "ceiling", "mlflow"))
        if ours is None:
            continue
        p, w = ours["phases"], f"--workers {workers}"
        if ceiling is not None:
            c = ceiling["phases"]
            share = p["one_c8"]["requests_per_s"] / c["one_c8"]["requests_per_s"]
            out.append(
                (f"{w}: one_c8 req/s >= 0.7 of the ceiling's: {share:.2f}", "", share >= 0.7)
            )
            ratio = p["one_c8"]["p99_ms"] / c["one_c8"]["p99_ms"]
            out.append((f"{w}: one_c8 p99 <= 2x the ceiling's: {ratio:.2f}x", "", ratio <= 2))
            ratio = p["one_c64"]["p99_ms"] / c["one_c64"]["p99_ms"]
            out.append((f"{w}: one_c64 p99 <= 1.5x the ceiling's: {ratio:.2f}x", "", ratio <= 1.5))
        if peer is not None:
            ratio = p["batch_c8"]["rows_per_s"] / peer["phases"]["batch_c8"]["rows_per_s"]
            out.append((f"{w}: batch_c8 rows/s >= 5x MLflow's: {ratio:.1f}x", "", ratio >= 5))
        ready = ours["ready_s"]
        out.append((f"{w}: ready < {READY_TARGET_S} s: {ready:.2f} s", "", ready < READY_TARGET_S))
    return out


def print_report(results: list[dict[str, Any]], parts: dict[str, float] | None) -> None:
    heads = ["server", "workers", "phase", "requests/s", "rows/s", "p50 ms", "p99 ms"]
    heads += ["CPU s / 1k rows", "server cores busy", "log mover CPU s", "non-2xx"]
    print("\n| " + " | ".join(heads) + " |")
    print("|" + " --- |" * len(heads))
    for r in results:
        for name, _, _ in PHASES:
            f = r["phases"][name]
            print(
                f"| {r['server']} | {r['workers']} | {name} | {number(f['requests_per_s'])} | "
                f"{number(f['rows_per_s'])} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | "
                f"{f['cpu_s_per_1000_rows']:.4f} | {f['server_busy_cores']:.2f} | "
                f"{f['mover_cpu_s']:.1f} | {f['non_2xx']} |"
            )
    print("\n| server | workers | ready, s | answers verified | request log |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        lg = r.get("request_log")
        said = (
            f"{lg['logged']:,} stored and {lg['spooled']:,} spooled of "
            f"{lg['answered_200']:,} answered 200: "
            + ("complete" if lg["complete"] else "INCOMPLETE")
            if lg
            else "-"
        )
        verified_text = {None: "- (a constant)", True: "yes", False: "NO"}[r["verified"]]
        print(f"| {r['server']} | {r['workers']} | {r['ready_s']:.2f} | {verified_text} | {said} |")
    print("\ntargets:")
    for text, _, holds in judged(results):
        print(f"  {text}: {'holds' if holds else 'MISSED'}")
    one = next((r for r in results if r["server"] == "trenches" and r["workers"] == 1), None)
    ceiling = next((r for r in results if r["server"] == "ceiling" and r["workers"] == 1), None)
    if parts and one is not None:
        per = one["phases"]["one_c8"]["cpu_s_per_1000_rows"] * 1000  # µs a request
        print(f"\nwhere a one-row request's {per:.0f} us of server CPU go (one worker, one_c8):")
        print("| part | us | share |")
        print("| --- | --- | --- |")
        for name, us in parts.items():
            print(f"| {name} | {us:.1f} | {us / per:.0%} |")
        rest = per - sum(parts.values())
        what = "the rest: HTTP (uvicorn, httptools), the event loop, the hot path's glue"
        print(f"| {what} | {rest:.1f} | {rest / per:.0%} |")
        if ceiling is not None:
            bare = ceiling["phases"]["one_c8"]["cpu_s_per_1000_rows"] * 1000
            what = "(the ceiling's whole request: HTTP, FastAPI, reading the body)"
            print(f"| {what} | {bare:.1f} | - |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10, help="seconds a phase (after warm-up)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    ap.add_argument("--no-peer", action="store_true", help="skip MLflow")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the bare FastAPI app")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--json", action="store_true", help="also print everything as JSON, last")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    mlflow = peers_venv() / "bin" / "mlflow"
    if not args.no_peer and not mlflow.exists():
        sys.exit(
            f"no MLflow at {mlflow} (the peers' venv): make it as shared/bench-peers/README.md "
            "says, or run with --no-peer"
        )
    code = measured_code()
    work = Path(tempfile.mkdtemp(prefix="trenches-bench-serving-"))
    results: list[dict[str, Any]] = []
    try:
        store = prepare(work)
        model_uri = ""
        if not args.no_peer:
            made = subprocess.run(
                [
                    str(peers_venv() / "bin" / "python"),
                    str(PEERS / "load.py"),
                    "prepare",
                    "--workdir",
                    str(work / "mlflow"),
                ],
                capture_output=True,
                text=True,
                check=True,
                env=dict(
                    os.environ,
                    MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow' / 'mlflow.db'}",
                    MLFLOW_DISABLE_TELEMETRY="true",
                    DO_NOT_TRACK="true",
                ),
            )
            model_uri = made.stdout.strip().splitlines()[-1]
        kinds = (
            ["trenches"]
            + ([] if args.no_peer else ["mlflow"])
            + ([] if args.no_ceiling else ["ceiling"])
        )
        for workers in args.workers:
            for kind in kinds:
                print(f"{kind}, --workers {workers}", file=sys.stderr, flush=True)
                with Bystanders() as others:
                    result = serve(kind, workers, work, store, model_uri, args.duration)
                result["bystanders"] = others.report()
                results.append(result)
        parts = breakdown(store, work)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nserving on 127.0.0.1 driven by wrk -t1 (one_c8, one_c64: one row; batch_c8: 1,000 "
        f"rows), {args.duration:g} s a phase after {WARM_UP_S} s of warm-up; trenches "
        f"{trenches.__version__} ({code}), request log written ahead and metrics on"
    )
    print(
        f"  python {platform.python_version()}, cpu_count {os.cpu_count()}, load "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print_report(results, parts)
    for r in results:
        b = r["bystanders"]
        busy = b["other_cpu_s"] / b["seconds"] if b["seconds"] else 0.0
        print(
            f"  other processes during {r['server']} --workers {r['workers']}: "
            f"{b['other_cpu_s']:.1f} CPU s in {b['seconds']:.0f} s ({busy:.0%} of a core), "
            f"steal {b['steal_s']:.1f} s" + (f"; most: {b['top']}" if busy > 0.05 else "")
        )
    if args.json:
        print(json.dumps({"code": code, "results": results, "parts": parts}))


if __name__ == "__main__":
    main()
