"""A pattern or a snapshot by its id alone: ``/api/v1/patterns/{pattern_id}/...`` and
``/api/v1/snapshots/{snapshot_id}``, about the dataset it belongs to (what a client
holding only an id, as ``store.patterns.relabel(id, ...)`` does, calls)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from trenches.api.access import Allow, Caller, pattern_dataset, snapshot_dataset
from trenches.api.routes.datasets import Relabel, relabelled
from trenches.json_form import to_json
from trenches.names import INT64_MAX

router = APIRouter(tags=["datasets"])

PatternId = Annotated[int, Path(ge=1, le=INT64_MAX)]
Reading = Annotated[Caller, Depends(Allow("patterns.read", pattern_dataset))]
Relabelling = Annotated[Caller, Depends(Allow("patterns.relabel", pattern_dataset))]
ReadingSnapshot = Annotated[Caller, Depends(Allow("snapshots.read", snapshot_dataset))]


@router.get("/patterns/{pattern_id}/history")
def history(pattern_id: PatternId, caller: Reading) -> Any:
    """Every version of the example ``pattern_id`` is one version of, oldest first."""
    return to_json(caller.store.patterns.history(pattern_id))


@router.post("/patterns/{pattern_id}/relabel")
def relabel(pattern_id: PatternId, body: Relabel, caller: Relabelling) -> Any:
    """Relabel a pattern: the old one is deactivated and a new one points back to it."""
    return relabelled(caller, pattern_id, body)


@router.get("/snapshots/{snapshot_id}")
def snapshot(snapshot_id: Annotated[int, Path(ge=1, le=INT64_MAX)], caller: ReadingSnapshot) -> Any:
    """The snapshot: its dataset, time, digest, size and held-out patterns."""
    return to_json(caller.store.snapshots.get(snapshot_id))
