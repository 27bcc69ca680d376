"""One-row serving driven by ``wrk``, so that the client is not the limit: ``trenches
serve`` with its request log written ahead, with the log but not written ahead, and
without a log, against a bare FastAPI app that reads the body and answers a constant
under the same uvicorn settings (the ceiling).

The first part of issue 19's wrk-driven serving benchmark: the same model and rows as
``bench/serving.py`` (its ``prepare``), one-row ``dataframe_split`` bodies POSTed to
``/invocations`` by ``wrk`` (one thread; 8 and then 64 connections, ``--duration``
seconds each after a 2-second warm-up), one server worker. Prints requests/s, p50 and
p99 for each, and each against the ceiling; checks that the log of the logging servers
holds every request wrk counted (and those in flight as each run ended).

Needs ``wrk`` (Debian's package: ``apt-get install wrk``).

    python bench/serving_wrk.py                 # about two minutes
    python bench/serving_wrk.py --duration 20   # longer runs
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import BIN, CEILING_APP, COLUMNS, free_port, logged, prepare, server_group

CONNECTIONS = (8, 64)
WARM_UP_S = 2


def lua(body: bytes) -> str:
    """A wrk script that POSTs ``body`` as JSON."""
    text = body.decode()
    assert "]==]" not in text
    return (
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{text}]==]\n"
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if found is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(found[1]) * _UNITS[found[2]]


def parse(out: str) -> dict[str, Any]:
    """requests/s, p50 and p99 (ms), requests and non-2xx answers from wrk's output."""
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
    # wrk takes whole seconds ("2.0s" is refused)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "-s", str(script)]
    done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    return parse(done.stdout)


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def measure(
    name: str, cmd: list[str], work: Path, script: Path, seconds: float
) -> tuple[dict[int, dict[str, Any]], int]:
    """Each concurrency against the server ``cmd`` starts (its /ping ready first);
    the requests answered with a 200 that wrk counted in all, warm-ups included."""
    port = int(cmd[cmd.index("--port") + 1])
    url = f"http://127.0.0.1:{port}"
    out: dict[int, dict[str, Any]] = {}
    sent = 0
    with server_group(cmd, work / f"{name}.log", cwd=work):
        wait_ready(f"{url}/ping")
        for c in CONNECTIONS:
            warm = wrk(f"{url}/invocations", script, c, WARM_UP_S)
            out[c] = wrk(f"{url}/invocations", script, c, seconds)
            sent += sum(r["requests"] - r["non_2xx"] for r in (warm, out[c]))
    return out, sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds of each run")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="trenches-wrk-"))
    try:
        store = prepare(work)
        X = np.load(work / "X.npy")
        body = orjson.dumps({"dataframe_split": {"columns": COLUMNS, "data": X[:1].tolist()}})
        script = work / "post.lua"
        script.write_text(lua(body))
        (work / "ceiling_app.py").write_text(CEILING_APP)

        def trenches(*extra: str) -> list[str]:
            cmd = [str(BIN / "trenches"), "--store", str(store), "serve", "clf@production"]
            return [*cmd, "--host", "127.0.0.1", "--port", str(free_port()), *extra]

        servers = {
            "trenches, log written ahead": trenches(),
            "trenches, log not written ahead": trenches("--no-write-ahead"),
            "trenches, no log": trenches("--no-log"),
            "bare FastAPI (ceiling)": [
                str(BIN / "python"),
                "-m",
                "uvicorn",
                "ceiling_app:app",
                "--app-dir",
                str(work),
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
        }
        results = {}
        for name, cmd in servers.items():
            before = logged(store)[0]
            results[name], sent = measure(
                name.split(",")[0] + str(len(results)), cmd, work, script, args.duration
            )
            if name.startswith("trenches, log"):
                stored = logged(store)[0] - before
                # wrk counts the requests answered within each run; those in flight as
                # a run ends are answered (and logged) too, uncounted.
                verdict = "all in the log" if stored >= sent else "SOME MISSING FROM THE LOG"
                print(
                    f"{name}: {stored} requests logged, {sent} answered 200 by wrk's "
                    f"count: {verdict}",
                    flush=True,
                )
        ceiling = results["bare FastAPI (ceiling)"]
        print(f"\none row to /invocations, wrk -t1, {args.duration:g} s a run, one server worker")
        print("| server | c | requests/s | p50 ms | p99 ms | req/s / ceiling | p99 / ceiling |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, by_c in results.items():
            for c, r in by_c.items():
                top = ceiling[c]
                print(
                    f"| {name} | {c} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | "
                    f"{r['p99_ms']:.2f} | {r['requests_per_s'] / top['requests_per_s']:.2f} | "
                    f"{r['p99_ms'] / top['p99_ms']:.2f} |"
                    + (f" non-2xx {r['non_2xx']}" if r["non_2xx"] else "")
                )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
