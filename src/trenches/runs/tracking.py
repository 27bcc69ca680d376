"""Runs: one training experiment with its params, tags, metric series, code and data.

Metric points are buffered in memory and written in batches (when 10,000 are waiting,
when 2 seconds have passed, and when the run ends, also by an exception), so that
logging a point costs microseconds and several processes can log to one store.
"""

from __future__ import annotations

import os
import re
import socket
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import insert, select, update

from trenches import timestamps
from trenches.artifacts import safe_name
from trenches.db import schema as t
from trenches.db.audit import change
from trenches.db.engine import (
    bulk_insert,
    execute_raw,
    insert_ignore,
    insert_returning_id,
    read,
    upsert_latest,
    write,
)
from trenches.errors import Conflict, InvalidInput, NotFound
from trenches.runs.code import (
    CodeState,
    Environment,
    capture_environment,
    capture_git,
    process_alive,
    process_started,
    tag_run,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.artifacts import ArtifactStore
    from trenches.models.registry import Models
    from trenches.models.versions import ModelVersion
    from trenches.patterns.snapshots import Snapshot

STATUSES = ("running", "finished", "failed", "killed")
_KEY = re.compile(r"^[A-Za-z0-9_.\-/ :@\[\]]{1,250}$")
FLUSH_POINTS = 10_000
FLUSH_SECONDS = 2.0
_HOST = socket.gethostname()
_started: dict[int, int | None] = {}


#: One metric point as stored: key, step, value (None for NaN), logged at (µs).
Point = tuple[str, int, float | None, int]


def _this_process_started() -> int | None:
    pid = os.getpid()  # not cached: a forked child is another process
    if pid not in _started:
        _started[pid] = process_started(pid)
    return _started[pid]


#: Environment row ids by (store, digest): an environment is stored once, and looked up
#: once per process.
_environment_ids: dict[tuple[str, str], int] = {}


def check_key(key: str, what: str = "key") -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidInput(
            f"{what} {key!r} must be 1-250 characters: letters, digits, and _ . - / : @ [ ] "
            "or spaces"
        )
    return key


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


def buffer_points(
    buffer: list[Point],
    steps: dict[str, int],
    metrics: Mapping[str, float],
    step: int | None,
) -> None:
    """Append one point of each metric to ``buffer``, at ``step`` or each metric's next
    one (``steps`` keeps the last step of each key; a new key is checked)."""
    now = timestamps.now_us()
    append = buffer.append
    for key, value in metrics.items():
        last = steps.get(key)
        if last is None:
            check_key(key, "metric")
            last = -1
        at = last + 1 if step is None else int(step)
        if at > last:
            steps[key] = at
        v = float(value)
        append((key, at, None if v != v else v, now))


@dataclass(frozen=True)
class Origin:
    """Where a run's process runs: a run of this host whose process has gone is marked
    killed when a store is next opened (:func:`reap_killed_runs`)."""

    host: str
    pid: int = 0
    process_started: int | None = None

    @classmethod
    def here(cls) -> Origin:
        return cls(_HOST, os.getpid(), _this_process_started())


# What a run is started with: the store's parts, then the run's own facts.
def start_run(  # noqa: PLR0913
    engine: Engine,
    artifacts: ArtifactStore,
    name: str,
    *,
    snapshot_id: int | None,
    params: Mapping[str, Any] | None,
    tags: Mapping[str, Any] | None,
    code: CodeState,
    environment: Environment,
    origin: Origin,
) -> int:
    """Store a new running run, in one transaction, and return its id: the code state
    and environment are given, captured where the run runs (this process for
    ``store.run``, a client's for the team server)."""
    if not isinstance(name, str) or not name or len(name) > 200:
        raise InvalidInput("a run needs a name of 1-200 characters")
    param_rows = [(check_key(k, "param"), _param_text(v)) for k, v in (params or {}).items()]
    for key in tags or {}:
        check_key(key, "tag")
    diff_sha = None
    if code.diff is not None:
        diff_sha = artifacts.put_bytes(code.diff).sha256
    now = timestamps.now_us()
    detail = {"name": name, "snapshot": snapshot_id}
    with change("runs.create", "run:", detail) as marked, write(engine) as conn:
        if diff_sha is not None:
            insert_ignore(
                conn,
                t.artifacts,
                {"sha256": diff_sha, "size": len(code.diff or b""), "created_at": now},
            )
        env_id = _environment_id(engine, conn, environment, now)
        run_id = insert_returning_id(
            conn,
            t.runs,
            {
                "name": name,
                "status": "running",
                "snapshot_id": snapshot_id,
                "started_at": now,
                "host": origin.host,
                "pid": origin.pid,
                "process_started": origin.process_started,
                "git_state": code.state,
                "git_commit": code.commit,
                "git_branch": code.branch,
                "git_root": code.root,
                "git_diff_sha256": diff_sha,
                "environment_id": env_id,
            },
        )
        marked.target = f"run:{run_id}"
        if param_rows:
            # A new run has no params yet: nothing to check them against.
            bulk_insert(
                conn, t.run_params, ("key", "value"), param_rows, constants={"run_id": run_id}
            )
        if tags:
            RunRecord(engine, run_id).write_tags(conn, tags)
    # Remembered once committed: a thread that took the id of a row still uncommitted
    # (or rolled back) would insert a run its foreign key refuses (PostgreSQL).
    _environment_ids[_environment_key(engine, environment)] = env_id
    return run_id


def _environment_id(engine: Engine, conn: Any, env: Environment, now: int) -> int:
    """The row of ``env``, stored once per store and looked up once per process (the
    caller remembers it, once its transaction has committed)."""
    env_id = _environment_ids.get(_environment_key(engine, env))
    if env_id is None:
        insert_ignore(
            conn,
            t.environments,
            {
                "digest": env.digest,
                "python": env.python,
                "platform": env.platform,
                "packages": env.packages_json(),
                "created_at": now,
            },
        )
        env_id = conn.execute(
            select(t.environments.c.id).where(t.environments.c.digest == env.digest)
        ).scalar_one()
    return int(env_id)


def _environment_key(engine: Engine, env: Environment) -> tuple[str, str]:
    return (engine.url.render_as_string(hide_password=True), env.digest)


class RunRecord:
    """The stored record of one run, written by id: what a :class:`Run` writes through,
    and what the team server writes for a client's run."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self._engine = engine
        self.id = run_id

    @classmethod
    def running(cls, engine: Engine, run_id: int) -> RunRecord:
        """The record of run ``run_id``, which must be running: an ended run's record
        is closed."""
        with read(engine) as conn:
            status = conn.execute(select(t.runs.c.status).where(t.runs.c.id == run_id)).scalar()
        if status is None:
            raise NotFound(f"no run with id {run_id}")
        if status != "running":
            raise Conflict(f"run {run_id} has ended ({status}); an ended run's record is closed")
        return cls(engine, run_id)

    def write_params(self, conn: Any, params: Mapping[str, Any]) -> None:
        c = t.run_params.c
        items = {check_key(k, "param"): _param_text(v) for k, v in params.items()}
        existing = dict(
            conn.execute(
                select(c.key, c.value).where(c.run_id == self.id, c.key.in_(list(items)))
            ).all()
        )
        for k, v in items.items():
            if k in existing and existing[k] != v:
                raise Conflict(
                    f"param {k!r} of run {self.id} is {existing[k]!r} already; params are "
                    "facts of a run and do not change (use a tag for what does)"
                )
        new = [
            {"run_id": self.id, "key": k, "value": v} for k, v in items.items() if k not in existing
        ]
        if new:
            conn.execute(insert(t.run_params), new)

    def write_tags(self, conn: Any, tags: Mapping[str, Any]) -> None:
        c = t.run_tags.c
        for k, v in tags.items():
            check_key(k, "tag")
            conn.execute(t.run_tags.delete().where(c.run_id == self.id, c.key == k))
            conn.execute(insert(t.run_tags).values(run_id=self.id, key=k, value=_param_text(v)))

    def write_points(self, conn: Any, points: Sequence[Point]) -> None:
        if not points:
            return
        bulk_insert(
            conn,
            t.metric_points,
            ("key", "step", "value", "logged_at"),
            points,
            constants={"run_id": self.id},
        )
        latest: dict[str, Point] = {}
        for point in points:
            seen = latest.get(point[0])
            if seen is None or (point[1], point[3]) >= (seen[1], seen[3]):
                latest[point[0]] = point
        upsert_latest(
            conn,
            t.latest_metrics,
            [(self.id, k, st, v, at) for k, st, v, at in latest.values()],
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        with write(self._engine) as conn:
            self.write_params(conn, params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        with write(self._engine) as conn:
            self.write_tags(conn, tags)

    def log_points(self, points: Sequence[Point]) -> None:
        """Store metric points in one transaction (their keys checked)."""
        for key in {p[0] for p in points}:
            check_key(key, "metric")
        with write(self._engine) as conn:
            self.write_points(conn, points)

    def end(
        self,
        status: str,
        error: str | None = None,
        tag: str | None = None,
        points: Sequence[Point] = (),
    ) -> None:
        """The last points and the end, in one transaction: a run that ended has all its
        points."""
        if status not in STATUSES or status == "running":
            raise InvalidInput(f"status {status!r} must be one of {', '.join(STATUSES[1:])}")
        with write(self._engine) as conn:
            self.write_points(conn, points)
            execute_raw(
                conn,
                "UPDATE runs SET status = ?, ended_at = ?, error = ?, git_tag = ? WHERE id = ?",
                (status, timestamps.now_us(), error, tag, self.id),
            )


class EndsWithItsBlock(ABC):
    """A run used as ``with ... as run:`` ends with its block: finished, or failed with
    the exception's text when the block raises. A run here (:class:`Run`) and a run on
    a team server (``trenches.client``) say how they end."""

    @abstractmethod
    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Record the run's end: its last points, its status and error."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end("finished")
            return
        text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
        self.end("failed", error=text[:10_000])


class Run(EndsWithItsBlock):
    """A run in progress. Use as ``with store.run("name", snapshot=snap) as run:``."""

    # The parts a run writes through, then the options of ``store.run``, passed through.
    def __init__(  # noqa: PLR0913
        self,
        engine: Engine,
        artifacts: ArtifactStore,
        models: Models,
        name: str,
        *,
        snapshot: Snapshot | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        capture_code: bool = True,
        git_tag: Callable[[], bool] = lambda: False,
    ) -> None:
        if not name or len(name) > 200:
            raise InvalidInput("a run needs a name of 1-200 characters")
        self._engine = engine
        self._artifacts = artifacts
        self._models = models
        self.name = name
        self.snapshot = snapshot
        self.status = "running"
        self._buffer: list[Point] = []
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self.code = capture_git() if capture_code else CodeState("unknown", detail="not captured")
        # Read when the run starts: a mistake in trenches.toml stops it before the work.
        self._tag = bool(self.code.commit and self.code.root) and git_tag()
        self.id: int = start_run(
            engine,
            artifacts,
            name,
            snapshot_id=snapshot.id if snapshot is not None else None,
            params=params,
            tags=tags,
            code=self.code,
            environment=capture_environment(),
            origin=Origin.here(),
        )
        self._record = RunRecord(engine, self.id)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} {self.status}>"

    # --- params and tags ---------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters; logging a different value for a key again is refused."""
        self._record.log_params(params)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; unlike params, a tag can be set again."""
        self._record.set_tags(tags)

    # --- metrics -----------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one point of a metric series; ``step`` defaults to the next one."""
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record one point of several metrics at once, at the same step (by default the
        next step of each)."""
        buffer_points(self._buffer, self._steps, metrics, step)
        if len(self._buffer) >= FLUSH_POINTS or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered metric points now (one transaction)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        points, self._buffer = self._buffer, []
        try:
            with write(self._engine) as conn:
                self._record.write_points(conn, points)
        except BaseException:
            self._buffer = points + self._buffer  # keep them for the next try
            raise

    # --- files -------------------------------------------------------------------

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep a file with the run (stored once by content); returns its SHA-256."""
        name = safe_name(name or Path(path).name)
        art = self._artifacts.put_file(path)
        with write(self._engine) as conn:
            insert_ignore(
                conn,
                t.artifacts,
                {"sha256": art.sha256, "size": art.size, "created_at": timestamps.now_us()},
            )
            c = t.run_artifacts.c
            if conn.execute(select(c.sha256).where(c.run_id == self.id, c.name == name)).first():
                raise Conflict(f"run {self.id} has a file named {name!r} already")
            conn.execute(
                insert(t.run_artifacts).values(run_id=self.id, name=name, sha256=art.sha256)
            )
        return art.sha256

    # --- models ------------------------------------------------------------------

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        X: Any = None,
        classes: Sequence[Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``model`` as a new version of ``name``, made by this run (see
        ``store.models.register``; ``classes``: a PyTorch classifier's)."""
        self.flush()
        return self._models.register(
            model, name, X=X, run=self, classes=classes, description=description
        )

    # --- ending ------------------------------------------------------------------

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush, tag the commit (when in git and switched on), and record the end."""
        if self.status != "running":
            return
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r} must be one of {', '.join(STATUSES)}")
        snap = None if self.snapshot is None else (self.snapshot.id, self.snapshot.digest)
        tag = tag_commit(self.code, self.id, self.name, status, snap) if self._tag else None
        points, self._buffer = self._buffer, []
        try:
            self._record.end(status, error, tag, points)
        except BaseException:
            self._buffer = points + self._buffer
            raise
        self.status = status


def tag_commit(
    code: CodeState, run_id: int, name: str, status: str, snapshot: tuple[int, str] | None
) -> str | None:
    """Tag the commit a run started from with the run's id, status and ``snapshot``
    (its id and digest); the tag's name, or None outside git."""
    if not (code.commit and code.root):
        return None
    snapshot_id, digest = snapshot if snapshot is not None else ("none", "none")
    message = (
        f"trenches run {run_id} {name!r} ({status})\n\n"
        f"snapshot: {snapshot_id} digest {digest}\n"
        f"git state: {code.state}"
    )
    return tag_run(code.root, code.commit, run_id, message)


def reap_killed_runs(engine: Engine) -> int:
    """Mark runs of this host whose process is gone as killed. Returns how many."""
    r = t.runs.c
    host = socket.gethostname()
    with read(engine) as conn:
        running = conn.execute(
            select(r.id, r.pid, r.process_started).where(r.status == "running", r.host == host)
        ).all()
    gone = [row.id for row in running if not process_alive(row.pid, row.process_started)]
    if gone:
        with write(engine) as conn:
            conn.execute(
                update(t.runs)
                .where(r.id.in_(gone), r.status == "running")
                .values(
                    status="killed",
                    ended_at=timestamps.now_us(),
                    error="the process ended without ending the run",
                )
            )
    return len(gone)
