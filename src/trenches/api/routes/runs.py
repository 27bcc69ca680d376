"""Runs: ``/api/v1/runs``. A run is about the dataset of its snapshot; a run without a
snapshot is about the whole store, and takes a grant on ``*`` to be seen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from trenches.api.access import Allow, Caller
from trenches.api.pages import Limit, Offset, page
from trenches.errors import InvalidInput
from trenches.json_form import to_json
from trenches.names import INT64_MAX

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
    text = str(request.path_params["run_id"])
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= INT64_MAX:
        raise InvalidInput(f"run id {text!r} must be a whole number from 1", field="run_id")
    return namespace_of(store, store.runs.get(int(text)).snapshot_id)


Reading = Annotated[Caller, Depends(Allow("runs.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("runs.read", run_dataset))]


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
def show_run(run_id: Annotated[int, Path(ge=1, le=INT64_MAX)], caller: ReadingOne) -> Any:
    """One run: its params, latest metrics, tags, code and environment."""
    return to_json(caller.store.runs.get(run_id))
