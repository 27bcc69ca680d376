"""deploy/dask: the cluster side docs/deploying.md gives (a Dockerfile and a compose
file). No container runs here; the test starts the scheduler and workers with the
compose file's own commands, as processes on loopback, and a ``trenches evaluate`` on
PostgreSQL and moto's S3 is sent to them by address, as the compose file's client is."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import trenches
from test_compute import _predicted_there, _two_versions
from trenches import compute

from conftest import PostgresServer, s3_bucket

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "dask"
pytestmark = pytest.mark.xdist_group("dask")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_the_compose_file_points_workers_and_client_at_one_store_and_scheduler() -> None:
    services = _compose()["services"]
    worker, client = services["worker"], services["client"]
    assert worker["environment"] == {
        k: v for k, v in client["environment"].items() if k != compute.ENV
    }, "a worker opens the store the client names: the same hosts and credentials"
    assert client["environment"][compute.ENV] == "tcp://scheduler:8786"
    assert worker["command"][:3] == ["dask", "worker", "tcp://scheduler:8786"]
    assert "--nthreads" in worker["command"]
    db = client["environment"]["TRENCHES_DB_URL"]
    assert db.startswith("postgresql+psycopg://") and "@postgres:5432/" in db
    assert client["environment"]["TRENCHES_ARTIFACTS"].startswith("s3://")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "'.[postgres,s3]'" in dockerfile and "\nUSER trenches" in dockerfile
    assert services["scheduler"]["build"]["dockerfile"] == "deploy/dask/Dockerfile"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def compose_cluster(moto_s3: str) -> Iterator[str]:
    """The compose file's scheduler and two workers, as processes on loopback (their
    commands as written, the host and port changed): the scheduler's address."""
    services = _compose()["services"]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [
        "--port" if a == "--port" else str(port) if a == "8786" else a
        for a in services["scheduler"]["command"]
    ]
    scheduler = [a if a != ":8787" else f":{_free_port()}" for a in scheduler]
    worker = [address if a == "tcp://scheduler:8786" else a for a in services["worker"]["command"]]
    dask = str(Path(sys.executable).with_name("dask"))
    procs = [subprocess.Popen([dask, *scheduler[1:]], stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([dask, *worker[1:]], stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s", set_as_default=False) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_trenches_evaluate_runs_on_the_compose_files_cluster_by_address(
    postgres: PostgresServer,
    moto_s3: str,
    compose_cluster: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = postgres.create_database(migrated=False)
    postgres_url = postgres.url(name)
    monkeypatch.setenv("TRENCHES_ARTIFACTS", f"s3://{s3_bucket(moto_s3)}/store")
    with trenches.open(postgres_url) as store:
        ref, other = _two_versions(store)
        here = store.evaluate(other)  # in this process
    env = {**os.environ, "TRENCHES_DB_URL": postgres_url, compute.ENV: compose_cluster}
    done = subprocess.run(
        [sys.executable, "-m", "trenches", "evaluate", ref, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _predicted_there(compose_cluster) >= 1  # its parts ran there
    with trenches.open(postgres_url) as store:
        there = store.evaluate(ref)
        assert there.predicted.computed == 0  # the cluster predicted them all
        assert there.evaluation.metrics == here.evaluation.metrics
    postgres.drop_database(name)
