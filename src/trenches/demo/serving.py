"""Serving: production answers over HTTP in every protocol, a wrong answer gets feedback
and becomes a problem pattern."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from rich.console import Console

import trenches
from trenches.demo.narration import say

#: Seconds the server may take to load the model and answer its readiness probe.
STARTUP = 120.0


@contextmanager
def serving(store: trenches.Store) -> Iterator[str]:
    """Serve ``cancer-clf@production`` with ``trenches serve`` on a free loopback port;
    yield its URL; stop it as Ctrl-C does (requests in flight finish and the request
    log is written before it exits)."""
    assert store.location.sqlite_path is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "trenches",
        "--store",
        str(store.location.sqlite_path.parent),
        "serve",
        "cancer-clf@production",
        "--port",
        str(port),
    ]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as errors:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            _wait_until_ready(server, url, errors)
            yield url
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_until_ready(server: subprocess.Popen[bytes], url: str, errors: IO[bytes]) -> None:
    """Return once the server answers its readiness probe; raise with what it said on
    stderr if it stops first."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if server.poll() is not None:
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"`trenches serve` stopped (exit {server.returncode}): {said}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"`trenches serve` did not answer at {url} in {STARTUP:.0f} s")


def serve(store: trenches.Store, ds: trenches.Dataset, folder: Path, console: Console) -> None:
    """Serve production for a few seconds on loopback, ask it in every protocol, post
    feedback on a wrong answer, and make that answer a problem pattern."""
    say(
        console,
        "Production is served over HTTP for a few seconds: the Open Inference Protocol, "
        "MLflow's /invocations and /predict; each request is logged.",
    )
    test = ds.pattern_ids("test")
    frame = ds.patterns(ids=test.tolist())
    truth = frame.pop("diagnosis")
    with serving(store) as url, httpx.Client(base_url=url, timeout=30) as client:
        five = frame.iloc[:5]
        tensors = [
            {"name": c, "shape": [5], "datatype": "FP64", "data": five[c].tolist()}
            for c in five.columns
        ]
        v2 = client.post("/v2/models/cancer-clf/infer", json={"inputs": tensors}).json()
        console.print(
            f"  V2 infer, 5 rows: {v2['outputs'][0]['data']} from "
            f"{v2['parameters']['model_version']}, request {v2['parameters']['request_id']}"
        )
        split = {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}
        answer = client.post("/invocations", json={"dataframe_split": split}).json()
        predicted = answer["predictions"]
        console.print(
            f"  MLflow /invocations, {len(predicted)} test patterns in one request: "
            f"{sum(p == t for p, t in zip(predicted, truth, strict=True))} right, "
            f"request {answer['request_id']}"
        )
        one = client.post("/predict", json=frame.iloc[:1].to_dict(orient="records")).json()
        first = one["predictions"][0]
        scores = ", ".join(f"{c} {v:.3f}" for c, v in first["scores"].items())
        console.print(f"  /predict, 1 record: {first['label']} ({scores})")
        wrong = [i for i, (p, t) in enumerate(zip(predicted, truth, strict=True)) if p != t]
        if wrong:
            row = wrong[0]
            r = client.post(
                "/feedback",
                json={
                    "request_id": answer["request_id"],
                    "row": row,
                    "label": truth.iloc[row],
                    "comment": "biopsy result",
                },
            )
            console.print(
                f"  feedback on row {row}: the answer was {predicted[row]}, the biopsy "
                f"says {truth.iloc[row]} ({r.status_code} accepted)"
            )
    logged = store.requests.list()
    console.print(f"  stopped; the request log holds {len(logged)} requests")
    if wrong:
        store.problems.create(
            "production-misses",
            dataset="cancer",
            title="Wrong answers reported from production",
            severity="high",
        )
        made = store.requests.to_patterns([answer["request_id"]], problem="production-misses")
        created = made.created[0]
        console.print(
            f"  the wrong answer is now pattern {created.pattern_id} (source production) of "
            "problem production-misses; every version was backfilled on it:"
        )
        score = {s.predictor: s for s in store.problems.scores("production-misses")}
        console.print(
            "    "
            + ", ".join(f"{ref} {'right' if s.right else 'wrong'}" for ref, s in score.items())
        )
