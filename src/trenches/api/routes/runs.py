"""Runs: ``/api/v1/runs``. A run is about the dataset of its snapshot; a run without a
snapshot is about the whole store, and takes a grant on ``*`` to be seen or made.

A client's run (``store.run(...)`` on a store opened over the server) is written here:
started with the code state and environment the client captured, then its params,
tags and metric points in batches, then its end. Each is one transaction with its
audit row."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from trenches import timestamps
from trenches.api.access import Allow, Caller, id_param
from trenches.api.pages import Limit, Offset, page
from trenches.errors import InvalidInput
from trenches.json_form import to_json
from trenches.names import INT64_MAX
from trenches.runs.code import CodeState, Environment
from trenches.runs.tracking import FLUSH_POINTS, Origin, Point, RunRecord, start_run

if TYPE_CHECKING:
    from trenches.runs import RunInfo
    from trenches.store import Store

router = APIRouter(prefix="/runs", tags=["runs"])

#: The most ``order_by`` terms a list takes.
_MOST_ORDERS = 10


def namespace_of(store: Store, snapshot_id: int | None) -> str:
    """The namespace of a run made on ``snapshot_id``: its dataset, or ``*``."""
    if snapshot_id is None:
        return "*"
    return store.snapshots.get(snapshot_id).dataset


def run_dataset(request: Request, store: Store) -> str:
    """The namespace of the run named by the path parameter ``run_id``."""
    return namespace_of(store, store.runs.get(id_param(request, "run_id")).snapshot_id)


Reading = Annotated[Caller, Depends(Allow("runs.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("runs.read", run_dataset))]
Starting = Annotated[Caller, Depends(Allow("runs.create"))]
Writing = Annotated[Caller, Depends(Allow("runs.create", run_dataset))]
RunId = Annotated[int, Path(ge=1, le=INT64_MAX)]

#: A param's or tag's value as a client sends it (stored as text).
Value = str | int | float | bool | None
#: The most params, tags or packages one request carries.
_MOST_KEYS = 10_000


@router.get("")
def list_runs(
    request: Request,
    caller: Reading,
    limit: Limit = 100,
    offset: Offset = 0,
    filter: Annotated[
        str | None,
        Query(max_length=10_000, description="e.g. params.model = 'lr' and metrics.acc > 0.9"),
    ] = None,
    order_by: Annotated[
        list[str] | None, Query(description="e.g. 'metrics.acc DESC' (repeatable)")
    ] = None,
) -> Any:
    """The runs the caller may read, matching ``filter``, newest first unless
    ``order_by`` says otherwise (``trenches runs list``), a page at a time."""
    orders = order_by or []
    if len(orders) > _MOST_ORDERS or any(len(o) > 1_000 for o in orders):
        raise InvalidInput(
            f"order_by takes at most {_MOST_ORDERS} terms of 1,000 characters", field="order_by"
        )
    found = caller.store.runs.list(filter=filter, order_by=orders)
    seen = _readable(caller, found)
    out = page(request, seen, limit=limit, offset=offset)
    out["items"] = to_json(out["items"])
    return out


def _readable(caller: Caller, runs: list[RunInfo]) -> list[RunInfo]:
    """The runs whose namespace the caller may read (each snapshot looked up once)."""
    allowed: dict[int | None, bool] = {}
    out = []
    for run in runs:
        if run.snapshot_id not in allowed:
            namespace = namespace_of(caller.store, run.snapshot_id)
            allowed[run.snapshot_id] = caller.may("runs.read", namespace)
        if allowed[run.snapshot_id]:
            out.append(run)
    return out


@router.get("/{run_id}")
def show_run(run_id: RunId, caller: ReadingOne) -> Any:
    """One run: its params, latest metrics, tags, code and environment."""
    return to_json(caller.store.runs.get(run_id))


class Code(BaseModel):
    """The git state where the run runs, as the client captured it."""

    state: Literal["clean", "dirty", "none", "unknown"]
    commit: str | None = Field(None, max_length=64, pattern=r"^[0-9a-f]{7,64}$")
    branch: str | None = Field(None, max_length=250)
    #: The uncommitted changes (``git diff``), base64.
    diff: str | None = Field(None, max_length=20_000_000)
    detail: str | None = Field(None, max_length=1_000)


class Env(BaseModel):
    """The Python, platform and packages where the run runs."""

    python: str = Field(min_length=1, max_length=200)
    platform: str = Field(min_length=1, max_length=500)
    packages: dict[str, str] = Field(default_factory=dict, max_length=_MOST_KEYS)


class NewRun(BaseModel):
    """A run to start: its name, the snapshot it trains on, and where it runs."""

    name: str = Field(min_length=1, max_length=200)
    snapshot_id: int | None = Field(None, ge=1, le=INT64_MAX)
    params: dict[str, Value] = Field(default_factory=dict, max_length=_MOST_KEYS)
    tags: dict[str, Value] = Field(default_factory=dict, max_length=_MOST_KEYS)
    code: Code | None = None
    environment: Env | None = None
    host: str | None = Field(None, max_length=255)
    #: The client's process id (0: not said; a run is reaped only by its own host).
    pid: int = Field(0, ge=0, le=2**31 - 1)


@router.post("", status_code=201)
def start(body: NewRun, caller: Starting) -> Any:
    """Start a run (``store.run`` of a client): the caller needs ``runs.create`` on the
    dataset of its snapshot (on ``*`` for a run without one)."""
    namespace = namespace_of(caller.store, body.snapshot_id)
    caller.store.grants.require(caller.user, "runs.create", namespace)
    code = _code(body.code)
    env = body.environment
    detail = {"name": body.name, "snapshot": body.snapshot_id, "host": body.host}
    with caller.changing("runs.create", "run:", detail):  # start_run names the run
        run_id = start_run(
            caller.store.engine,
            caller.store.artifacts,
            body.name,
            snapshot_id=body.snapshot_id,
            params=body.params,
            tags=body.tags,
            code=code,
            environment=(
                Environment(env.python, env.platform, dict(sorted(env.packages.items())))
                if env is not None
                else Environment("unknown", "unknown", {})
            ),
            origin=Origin(body.host or f"remote {caller.actor.remote}", body.pid),
        )
    return to_json(caller.store.runs.get(run_id))


def _code(code: Code | None) -> CodeState:
    if code is None:
        return CodeState("unknown", detail="not sent")
    diff = None
    if code.diff is not None:
        try:
            diff = base64.b64decode(code.diff, validate=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise InvalidInput("code.diff must be base64", field="code.diff") from None
    return CodeState(code.state, code.commit, code.branch, None, diff, code.detail)


class Params(BaseModel):
    params: dict[str, Value] = Field(max_length=_MOST_KEYS)


@router.post("/{run_id}/params")
def log_params(run_id: RunId, body: Params, caller: Writing) -> Any:
    """Record params of a running run; a different value for a key it has is refused."""
    record = RunRecord.running(caller.store.engine, run_id)
    with caller.changing("runs.create", f"run:{run_id}", {"params": sorted(body.params)}):
        record.log_params(body.params)
    return to_json(caller.store.runs.get(run_id))


class Tags(BaseModel):
    tags: dict[str, Value] = Field(max_length=_MOST_KEYS)


@router.post("/{run_id}/tags")
def set_tags(run_id: RunId, body: Tags, caller: Writing) -> Any:
    """Set tags of a running run (a tag, unlike a param, can be set again)."""
    record = RunRecord.running(caller.store.engine, run_id)
    with caller.changing("runs.create", f"run:{run_id}", {"tags": sorted(body.tags)}):
        record.set_tags(body.tags)
    return to_json(caller.store.runs.get(run_id))


class MetricPoint(BaseModel):
    """One point of a metric series; a null value is NaN."""

    key: str = Field(min_length=1, max_length=250)
    value: float | None
    step: int = Field(ge=0, le=INT64_MAX)
    #: When it was logged (default: when it arrives).
    timestamp: datetime | None = None


class Metrics(BaseModel):
    metrics: list[MetricPoint] = Field(max_length=FLUSH_POINTS)


def _points(points: list[MetricPoint]) -> list[Point]:
    now = timestamps.now_us()
    return [
        (
            p.key,
            p.step,
            None if p.value is None or p.value != p.value else p.value,
            timestamps.to_us(p.timestamp) if p.timestamp is not None else now,
        )
        for p in points
    ]


@router.post("/{run_id}/metrics")
def log_metrics(run_id: RunId, body: Metrics, caller: Writing) -> Any:
    """Store a batch of metric points of a running run, in one transaction."""
    record = RunRecord.running(caller.store.engine, run_id)
    keys = sorted({p.key for p in body.metrics})
    detail = {"points": len(body.metrics), "keys": keys[:100]}
    with caller.changing("runs.create", f"run:{run_id}", detail):
        record.log_points(_points(body.metrics))
    return {"run": run_id, "logged": len(body.metrics)}


class End(BaseModel):
    """How the run ended, with its last metric points (stored with the end)."""

    status: Literal["finished", "failed", "killed"] = "finished"
    error: str | None = Field(None, max_length=10_000)
    #: The tag the client put on its commit, if any.
    git_tag: str | None = Field(None, max_length=250)
    metrics: list[MetricPoint] = Field(default_factory=list, max_length=FLUSH_POINTS)


@router.post("/{run_id}/end")
def end(run_id: RunId, body: End, caller: Writing) -> Any:
    """End a running run: its last points and its status in one transaction."""
    record = RunRecord.running(caller.store.engine, run_id)
    with caller.changing("runs.create", f"run:{run_id}", {"status": body.status}):
        record.end(body.status, body.error, body.git_tag, _points(body.metrics))
    return to_json(caller.store.runs.get(run_id))
