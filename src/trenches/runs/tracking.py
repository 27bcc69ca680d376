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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from trenches import timestamps
from trenches.artifacts import safe_name
from trenches.db import schema as t
from trenches.db.engine import (
    bulk_insert,
    execute_raw,
    insert_ignore,
    insert_returning_id,
    read,
    upsert_latest,
    write,
)
from trenches.errors import Conflict, InvalidInput
from trenches.runs.code import (
    CodeState,
    capture_environment,
    capture_git,
    process_alive,
    process_started,
    tag_run,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from trenches.artifacts import ArtifactStore
    from trenches.models.registry import Models, ModelVersion
    from trenches.patterns.snapshots import Snapshot

STATUSES = ("running", "finished", "failed", "killed")
_KEY = re.compile(r"^[A-Za-z0-9_.\-/ :@\[\]]{1,250}$")
FLUSH_POINTS = 10_000
FLUSH_SECONDS = 2.0
_HOST = socket.gethostname()
_started: dict[int, int | None] = {}


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


class Run:
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
        self._buffer: list[tuple[str, int, float | None, int]] = []
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self.code = capture_git() if capture_code else CodeState("unknown", detail="not captured")
        # Read when the run starts: a mistake in trenches.toml stops it before the work.
        self._tag = bool(self.code.commit and self.code.root) and git_tag()
        diff_sha = None
        if self.code.diff is not None:
            diff_sha = artifacts.put_bytes(self.code.diff).sha256
        env = capture_environment()
        now = timestamps.now_us()
        with write(engine) as conn:
            if diff_sha is not None:
                insert_ignore(
                    conn,
                    t.artifacts,
                    {"sha256": diff_sha, "size": len(self.code.diff or b""), "created_at": now},
                )
            env_id = _environment_ids.get(
                (engine.url.render_as_string(hide_password=True), env.digest)
            )
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
                _environment_ids[(engine.url.render_as_string(hide_password=True), env.digest)] = (
                    env_id
                )
            self.id: int = insert_returning_id(
                conn,
                t.runs,
                {
                    "name": name,
                    "status": "running",
                    "snapshot_id": snapshot.id if snapshot is not None else None,
                    "started_at": now,
                    "host": _HOST,
                    "pid": os.getpid(),
                    "process_started": _this_process_started(),
                    "git_state": self.code.state,
                    "git_commit": self.code.commit,
                    "git_branch": self.code.branch,
                    "git_root": self.code.root,
                    "git_diff_sha256": diff_sha,
                    "environment_id": env_id,
                },
            )
            if params:
                # A new run has no params yet: nothing to check them against.
                rows = [(check_key(k, "param"), _param_text(v)) for k, v in params.items()]
                bulk_insert(
                    conn, t.run_params, ("key", "value"), rows, constants={"run_id": self.id}
                )
            if tags:
                self._write_tags(conn, tags)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} {self.status}>"

    # --- params and tags ---------------------------------------------------------

    def _write_params(self, conn: Any, params: Mapping[str, Any]) -> None:
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

    def _write_tags(self, conn: Any, tags: Mapping[str, Any]) -> None:
        c = t.run_tags.c
        for k, v in tags.items():
            check_key(k, "tag")
            conn.execute(t.run_tags.delete().where(c.run_id == self.id, c.key == k))
            conn.execute(insert(t.run_tags).values(run_id=self.id, key=k, value=_param_text(v)))

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters; logging a different value for a key again is refused."""
        with write(self._engine) as conn:
            self._write_params(conn, params)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags; unlike params, a tag can be set again."""
        with write(self._engine) as conn:
            self._write_tags(conn, tags)

    # --- metrics -----------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one point of a metric series; ``step`` defaults to the next one."""
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record one point of several metrics at once, at the same step (by default the
        next step of each)."""
        now = timestamps.now_us()
        steps = self._steps
        append = self._buffer.append
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
                self._write_points(conn, points)
        except BaseException:
            self._buffer = points + self._buffer  # keep them for the next try
            raise

    def _write_points(self, conn: Any, points: list[tuple[str, int, float | None, int]]) -> None:
        if not points:
            return
        bulk_insert(
            conn,
            t.metric_points,
            ("key", "step", "value", "logged_at"),
            points,
            constants={"run_id": self.id},
        )
        latest: dict[str, tuple[str, int, float | None, int]] = {}
        for point in points:
            seen = latest.get(point[0])
            if seen is None or (point[1], point[3]) >= (seen[1], seen[3]):
                latest[point[0]] = point
        upsert_latest(
            conn,
            t.latest_metrics,
            [(self.id, k, st, v, at) for k, st, v, at in latest.values()],
        )

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
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``model`` as a new version of ``name``, made by this run (see
        ``store.models.register``)."""
        self.flush()
        return self._models.register(model, name, X=X, run=self, description=description)

    # --- ending ------------------------------------------------------------------

    def end(self, status: str = "finished", error: str | None = None) -> None:
        """Flush, tag the commit (when in git and switched on), and record the end."""
        if self.status != "running":
            return
        if status not in STATUSES:
            raise InvalidInput(f"status {status!r} must be one of {', '.join(STATUSES)}")
        tag = None
        if self._tag and self.code.commit and self.code.root:
            digest = self.snapshot.digest if self.snapshot is not None else "none"
            message = (
                f"trenches run {self.id} {self.name!r} ({status})\n\n"
                f"snapshot: {self.snapshot.id if self.snapshot else 'none'} "
                f"digest {digest}\n"
                f"git state: {self.code.state}"
            )
            tag = tag_run(self.code.root, self.code.commit, self.id, message)
        points, self._buffer = self._buffer, []
        # The last points and the end are one transaction: a run that ended has all its
        # points.
        try:
            with write(self._engine) as conn:
                self._write_points(conn, points)
                execute_raw(
                    conn,
                    "UPDATE runs SET status = ?, ended_at = ?, error = ?, git_tag = ? WHERE id = ?",
                    (status, timestamps.now_us(), error, tag, self.id),
                )
        except BaseException:
            self._buffer = points + self._buffer
            raise
        self.status = status

    def __enter__(self) -> Run:
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
