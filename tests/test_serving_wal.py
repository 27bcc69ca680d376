"""The request log survives SIGKILL (trenches.serving.wal): every request a server
answered with a 200 is in the log once the next server of the store has started,
however hard the first one was killed; nothing is stored twice; a log that stops
gracefully leaves no write-ahead file behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import trenches
from test_serving import LiveServer, _free_port, project  # noqa: F401 (a fixture)
from trenches.serving.app import Settings

from conftest import wait_until_answering

pytestmark = pytest.mark.sqlite_only


def _logged_ids(project: dict[str, Any]) -> list[str]:  # noqa: F811 (the fixture)
    with trenches.open(project["path"], create=False) as store:
        return list(store.requests.list(limit=None)["request_id"])


def _load(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    until: threading.Event,
    url: str,
    answered: list[str],
    k: int,
) -> None:
    """One client: one-row requests until ``until``, or until the server is gone; the
    request ids of those answered with a 200."""
    record = project["X"].iloc[[k]].to_dict(orient="records")
    with httpx.Client(base_url=url, timeout=5) as c:
        while not until.is_set():
            try:
                r = c.post("/predict", json=record)
            except httpx.TransportError:
                return
            if r.status_code == 200:
                answered.append(r.json()["request_id"])


def test_a_server_killed_under_load_loses_no_answered_request(
    project: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    before = set(_logged_ids(project))
    with trenches.open(project["path"], create=False) as store:
        assert store.location.sqlite_path is not None
        spool = Path(store.location.sqlite_path).parent / "spool"  # the server's own
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    errors = tmp_path / "stderr.txt"
    with errors.open("wb") as err:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trenches",
                "--store",
                project["path"],
                "serve",
                "clf@1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            wait_until_answering(server, f"{url}/ping", log=errors)
            answered: list[str] = []
            until = threading.Event()
            clients = [
                threading.Thread(target=_load, args=(project, until, url, answered, k))
                for k in range(4)
            ]
            for client in clients:
                client.start()
            deadline = time.monotonic() + 30
            while len(answered) < 400 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.killpg(server.pid, signal.SIGKILL)  # under load, mid-request
            server.wait(timeout=10)
            until.set()
            for client in clients:
                client.join(timeout=10)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
    assert len(answered) >= 400
    assert list(spool.glob("requests-*-wal*.jsonl")), "the killed server left its file"

    # The next server of the store loads what the killed one wrote ahead.
    again = Settings(ref="clf@1", store=project["path"], spool_dir=str(spool), log_requests=True)
    with LiveServer(again) as live:
        live.stop()
    logged = [i for i in _logged_ids(project) if i not in before]
    assert set(answered) <= set(logged), f"{len(set(answered) - set(logged))} answered lost"
    assert len(logged) == len(set(logged)), "a request stored twice"
    assert not list(spool.glob("*.jsonl")), "every file loaded and removed"


def test_the_mover_process_moves_staged_requests_and_ends_between_moves(
    tmp_path: Path,
) -> None:
    """``trenches serve`` leaves the moving of staged requests to a process of its own
    (:mod:`trenches.serving.mover`): it moves them once they have waited long enough,
    and SIGTERM ends it."""
    from sklearn.linear_model import LogisticRegression

    from trenches.db.engine import read
    from trenches.requests import stored
    from trenches.serving import mover

    from conftest import log_requests, make_frame

    frame = make_frame(60)
    columns = ["radius", "texture", "grade"]
    with trenches.open(tmp_path / "store") as store:
        fitted = LogisticRegression(max_iter=500).fit(frame[columns], frame["label"])
        version = store.models.register(fitted, "clf", X=frame[columns])
        ids = log_requests(store, version, frame, columns)
        with read(store.engine) as conn:
            assert stored.staged(conn) == len(ids)
        cmd = mover.command(str(tmp_path / "store"), os.getpid(), 1_000_000, 0.5)
        process = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with read(store.engine) as conn:
                    if stored.staged(conn) == 0:
                        break
                time.sleep(0.2)
            with read(store.engine) as conn:
                assert stored.staged(conn) == 0, "moved after waiting half a second"
            listed = store.requests.list()
            assert sorted(listed["request_id"]) == sorted(ids)
            assert all(r["data"] for r in listed["inputs"])  # read back from the tables
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()


def test_a_mover_whose_server_is_gone_ends(tmp_path: Path) -> None:
    from trenches.serving import mover

    trenches.open(tmp_path / "store").close()
    cmd = mover.command(str(tmp_path / "store"), 1, 10, 60.0)  # not its parent
    assert subprocess.run(cmd, timeout=60, check=False).returncode == 0
