"""Fixtures: a store on SQLite and on a real PostgreSQL server, and small datasets.

The PostgreSQL server is started by the tests themselves (initdb + pg_ctl in a
temporary folder, one per pytest worker); each test gets a database of its own.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import trenches

#: The web UI's browser-test fixtures (demo_folder, team_store, ui, browser).
pytest_plugins = ("webui",)


@pytest.fixture(autouse=True)
def _work_in_a_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder, outside any git work tree: a run must never
    capture (or tag) the repository the tests happen to be started from."""
    monkeypatch.chdir(tmp_path)


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback, owned by the test run."""

    def __init__(self) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL's initdb was not found; install the server "
                "(apt-get install -y postgresql) or run .ci/run"
            )
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="trenches-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.user = "trenches"
        env = dict(os.environ)
        cmd_prefix: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the owner of the folder.
            shutil.chown(self.dir, user="postgres")
            cmd_prefix = ["runuser", "-u", "postgres", "--"]
        self._prefix = cmd_prefix
        subprocess.run(
            [
                *cmd_prefix,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            env=env,
        )
        subprocess.run(
            [
                *cmd_prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-w",
                "-l",
                str(self.dir / "log"),
                "-o",
                f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off",
                "start",
            ],
            check=True,
            capture_output=True,
            env=env,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, *, migrated: bool = False) -> str:
        """A new database; ``migrated``: a copy of one trenches has brought to its
        schema's head (made once), which is what opening a new store makes of an empty
        database, at a fifth of the time (Alembic's sixteen migrations each time)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        template = f" TEMPLATE {self._migrated()}" if migrated else ""
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}{template}")
        return name

    def _migrated(self) -> str:
        """The database new stores are copied from: empty, then migrated by trenches."""
        name = "trenches_head"
        if getattr(self, "_head", None) is None:
            import psycopg

            from trenches.db import migrate
            from trenches.db.engine import make_engine

            with psycopg.connect(
                f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                autocommit=True,
            ) as conn:
                conn.execute(f"CREATE DATABASE {name}")
            engine = make_engine(self.url(name))
            try:
                migrate.upgrade(engine)
            finally:
                engine.dispose()  # a template must have no one connected
            self._head = name
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run(
            [
                *self._prefix,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL (or folder) for a new, empty store on each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "store")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    # A test that opens the store through the fixture gets a database already migrated
    # (as opening would leave it); one that only takes the URL gets it empty, as a new
    # user's database is.
    name = server.create_database(migrated="store" in request.fixturenames)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def store(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[trenches.Store]:
    """An open, empty store on each of the two set-ups a store runs on: SQLite with its
    artifacts and tables in a local folder, and PostgreSQL with them on object storage
    (moto's S3 server on loopback)."""
    monkeypatch.setenv("TRENCHES_ARTIFACTS", _artifacts_for(store_url, tmp_path, request))
    s = trenches.open(store_url)
    try:
        yield s
    finally:
        s.close()


def _artifacts_for(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a store on ``store_url``'s backend keeps its artifacts and tables: a local
    folder beside SQLite, a new bucket on moto's S3 server beside PostgreSQL."""
    if store_url.startswith("postgresql"):
        return f"s3://{s3_bucket(request.getfixturevalue('moto_s3'))}/artifacts"
    return str(tmp_path / "artifacts")


@pytest.fixture
def store_env(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """The environment of a new store on each backend, for tests that start processes
    of their own on it: ``TRENCHES_ARTIFACTS`` set as :func:`store` sets it, no
    ``TRENCHES_DB_URL``. Returns the store's URL."""
    monkeypatch.setenv("TRENCHES_ARTIFACTS", _artifacts_for(store_url, tmp_path, request))
    monkeypatch.delenv("TRENCHES_DB_URL", raising=False)
    return store_url


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[trenches.Store]:
    s = trenches.open(tmp_path / "store")
    try:
        yield s
    finally:
        s.close()


def baseline_predictor(
    conn: Any, name: str, dataset_id: int, classes: Sequence[str] = ("a", "b")
) -> int:
    """A baseline's predictor, made in ``conn``'s write transaction: something to store
    predictions of, with no model behind it."""
    from trenches import predictions
    from trenches.db import schema as t
    from trenches.db.engine import insert_returning_id

    baseline = insert_returning_id(
        conn, t.baselines, {"name": name, "dataset_id": dataset_id, "created_at": 0}
    )
    return predictions.make_predictor(conn, baseline_id=baseline, classes=list(classes))


def assert_id_ranges_hold(store: trenches.Store) -> None:
    """Each import batch's id range is the ids of the patterns it made (in its dataset's
    table, or the database rows of a dataset an earlier release made), and each pattern
    change names its pattern's dataset (and, for a row, the time it stamped on it): what
    reads by id rely on."""
    from sqlalchemy import func, select

    from trenches.db import schema as t
    from trenches.db.engine import read
    from trenches.patterns import columnar
    from trenches.patterns.lookup import owners

    p, b, c, d = t.patterns.c, t.import_batches.c, t.pattern_changes.c, t.datasets.c
    with read(store.engine) as conn:
        kinds = dict(conn.execute(select(d.id, d.columnar)).all())
        made = {
            r.batch_id: (r.lo, r.hi, r.n)
            for r in conn.execute(
                select(
                    p.batch_id,
                    func.min(p.id).label("lo"),
                    func.max(p.id).label("hi"),
                    func.count().label("n"),
                )
                .where(p.dataset_id.in_([i for i, col in kinds.items() if not col]))
                .group_by(p.batch_id)
            )
        }
        for dataset_id in (i for i, col in kinds.items() if col):
            data = columnar.read(conn, dataset_id, columns=["pattern_id", "batch_id"])
            if data is not None:
                by = data.to_pandas().groupby("batch_id")["pattern_id"].agg(["min", "max", "count"])
                made |= {
                    int(k): (int(r["min"]), int(r["max"]), int(r["count"]))
                    for k, r in by.iterrows()
                }
        ranges = conn.execute(select(b.id, b.first_pattern_id, b.last_pattern_id, b.rows)).all()
        changes = conn.execute(select(c.pattern_id, c.dataset_id, c.changed_at)).all()
        stamped = dict(
            conn.execute(select(p.id, p.deactivated_at).where(p.deactivated_at.isnot(None))).all()
        )
        owner, _ = owners(conn, [i for i, _, _ in changes])
    assert ranges
    for batch_id, first, last, rows in ranges:
        lo, hi, n = made[batch_id]
        assert (first, last) == (lo, hi), batch_id
        assert last - first + 1 == n == rows, batch_id
    # No two batches share an id: each range begins past the one before it.
    spans = sorted((first, last) for _, first, last, _ in ranges)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))
    # Each change names the dataset its pattern is of, and a pattern changes once: reads
    # find a dataset's inactive patterns from its changes alone.
    assert [dataset for _, dataset, _ in changes] == owner.tolist()
    assert len({i for i, _, _ in changes}) == len(changes)
    # A database row stamped inactive was stamped at its change's time.
    at = {i: when for i, _, when in changes}
    assert all(at[i] == when for i, when in stamped.items())


def make_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A small tabular classification frame: numbers, an integer, a category, a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "radius": rng.normal(10, 2, n),
            "texture": rng.normal(20, 4, n),
            "grade": rng.integers(1, 4, n),
            "site": rng.choice(["left", "right", "centre"], n),
            "label": rng.choice(["benign", "malignant"], n),
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


@pytest.fixture
def dataset(store: trenches.Store, frame: pd.DataFrame) -> trenches.Dataset:
    ds = store.datasets.create("tumours", task="classification", label="label")
    ds.add(frame, source="expert", labelled_by="dr.a", created_at="2026-01-01")
    return ds


# --- shared helpers: the CLI in process, and served requests ---------------------------


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """Run ``trenches ARGS`` in this process: (exit status, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from trenches.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def tumours(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Three inputs and a label that follows radius; ``shift`` moves radius."""
    rng = np.random.default_rng(seed)
    radius = rng.normal(10 + shift, 2, n)
    return pd.DataFrame(
        {
            "radius": radius,
            "texture": rng.normal(20, 4, n),
            "grade": rng.integers(1, 4, n),
            "label": np.where(radius + rng.normal(0, 1, n) > 10.5, "malignant", "benign"),
        }
    )


def log_requests(
    store: trenches.Store,
    version: trenches.ModelVersion,
    frame: pd.DataFrame,
    columns: list[str],
    *,
    prefix: str = "r",
    label: str | None = None,
) -> list[str]:
    """Serve ``frame`` (rows in requests of 5) through the real request log, answered by
    ``version``; with ``label``, that column comes back as feedback for every row.
    Returns the request ids."""
    from trenches import timestamps
    from trenches.serving.requestlog import LoggedFeedback, LoggedRequest, RequestLog

    said = store.models.load(version.ref).predict(frame[columns])
    log = RequestLog(store.location.db_url, Path(f"spool-{prefix}"))
    log.start()
    ids = []
    for k in range(0, len(frame), 5):
        part = frame.iloc[k : k + 5]
        data = part[columns].to_numpy().tolist()
        rid = f"{prefix}-{k}"
        ids.append(rid)
        log.put(
            LoggedRequest(
                request_id=rid,
                version_id=version.id,
                endpoint="predict",
                n=len(part),
                inputs=lambda data=data: {"columns": columns, "data": data},
                outputs={"labels": list(said[k : k + 5]), "scores": None, "values": None},
                latency_us=900,
                received_at=timestamps.now_us(),
            )
        )
        if label is not None:
            for row, value in enumerate(part[label]):
                log.put(LoggedFeedback(rid, row, value, None, None, timestamps.now_us()))
    log.stop()
    return ids


def dead_url() -> str:
    """A loopback URL nobody listens on."""
    port = _free_port()
    return f"http://127.0.0.1:{port}/nobody-listens"


def noisy_corner(store: trenches.Store, n: int = 600) -> tuple[trenches.Dataset, list[int]]:
    """A dataset whose label follows x1, except in a corner (x2 > 0.85) where it is a
    coin flip; a fully grown tree fitted on its train split (``tree@1``) knows the
    corner's training patterns by heart and can do no better than chance on the rest.
    Returns the dataset and the ids of the corner's patterns."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x1, x2 = rng.random(n), rng.random(n)
    label = np.where(x1 > 0.5, "a", "b")
    corner = x2 > 0.85
    label[corner] = rng.choice(["a", "b"], int(corner.sum()))
    ds = store.datasets.create(
        "noisy", task="classification", label="label", salt="6e6f6973792d636f726e65722d303031"
    )
    ds.add(
        pd.DataFrame({"x1": x1, "x2": x2, "label": label}),
        source="expert",
        created_at="2026-01-01",
    )
    snap = ds.snapshot()
    X, y, _, _ = snap.training_data("train")
    with store.run("memorise", snapshot=snap, capture_code=False) as run:
        run.log_model(DecisionTreeClassifier(random_state=0).fit(X, y), "tree")
    frame = ds.patterns()
    return ds, frame.index[frame["x2"] > 0.85].tolist()


CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (no browser is downloaded), with
    the network chatter of a first start turned off; the test fails, saying how to
    install it, when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium "
            "(.ci/run installs it)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def full_disk(size_kib: int = 64) -> Iterator[Path]:
    """A real, tiny filesystem (a tmpfs of ``size_kib`` KiB) to fill up: writes beyond
    it fail with ENOSPC as on a full disk. Mounting needs root (CI runs as root); a
    test that needs it is skipped elsewhere."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    where = Path(tempfile.mkdtemp(prefix="trenches-full-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(where, ignore_errors=True)


# --- object storage: moto's S3 server on loopback ----------------------------------------


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session: its URL. fsspec's
    s3 file systems (s3fs) are pointed at it, with moto's dummy credentials."""
    import fsspec
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _S3_ENV}
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": url,  # for servers started in another process
        }
    )
    fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = url
    try:
        yield url
    finally:
        fsspec.config.conf.get("s3", {}).pop("endpoint_url", None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


_S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "FSSPEC_S3_ENDPOINT_URL",
)


def s3_bucket(endpoint: str) -> str:
    """A new, empty bucket on moto's server: its name."""
    import boto3

    name = f"trenches-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


def wait_until_answering(
    proc: subprocess.Popen[Any], url: str, *, seconds: float = 60, log: Path | None = None
) -> None:
    """Wait until a server started as ``proc`` answers ``url`` with 200; fail, showing
    its ``log``, if it ends or takes longer than ``seconds``."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        said = log.read_text() if log is not None and log.exists() else ""
        assert proc.poll() is None, f"the server ended: {said}"
        assert time.monotonic() < deadline, f"the server did not start: {said}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)


# --- a Dask cluster of two worker processes ----------------------------------------------


@pytest.fixture(scope="session")
def dask_scheduler(moto_s3: str) -> Iterator[str]:
    """A LocalCluster of two worker processes for the session: its scheduler's address.
    Started after moto's server, so that its workers inherit the S3 settings. Tests that
    use it carry ``pytest.mark.xdist_group("dask")``: one xdist worker runs them all, so
    that one cluster serves them."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address
