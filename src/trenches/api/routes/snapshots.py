"""Snapshots of a dataset: ``/api/v1/datasets/{dataset}/snapshots``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.errors import NotFound
from trenches.json_form import to_json
from trenches.names import INT64_MAX

router = APIRouter(prefix="/datasets/{dataset}/snapshots", tags=["snapshots"])

Reading = Annotated[Caller, Depends(Allow("snapshots.read", path("dataset")))]
Creating = Annotated[Caller, Depends(Allow("snapshots.create", path("dataset")))]


@router.get("")
def list_snapshots(dataset: str, caller: Reading) -> Any:
    """The dataset's snapshots, oldest first."""
    return to_json(caller.store.datasets.get(dataset).snapshots())


class NewSnapshot(BaseModel):
    """What to freeze: the patterns active at ``as_of`` (default now), of ``sources``
    (default all)."""

    as_of: str | None = Field(None, max_length=100, description="ISO 8601 time")
    sources: list[Annotated[str, Field(max_length=100)]] | None = Field(None, max_length=100)
    note: str | None = Field(None, max_length=10_000)


@router.post("", status_code=201)
def create_snapshot(dataset: str, body: NewSnapshot, caller: Creating) -> Any:
    """Freeze the dataset's active patterns into a snapshot (``trenches data snapshot``)."""
    ds = caller.store.datasets.get(dataset)
    with caller.changing("snapshots.create", f"dataset:{dataset}", body.model_dump()):
        made = ds.snapshot(as_of=body.as_of, sources=body.sources, note=body.note)
    return to_json(made)


@router.get("/{snapshot_id}")
def show_snapshot(
    dataset: str, snapshot_id: Annotated[int, Path(ge=1, le=INT64_MAX)], caller: Reading
) -> Any:
    """One snapshot of the dataset: its time, sources, size, digest and held-out patterns."""
    found = caller.store.snapshots.get(snapshot_id)
    if found.dataset != dataset:
        raise NotFound(f"dataset {dataset!r} has no snapshot {snapshot_id}")
    return to_json(found)
