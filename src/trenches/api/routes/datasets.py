"""Datasets and their patterns: ``/api/v1/datasets``."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from trenches.api.access import Allow, Caller, path
from trenches.api.pages import Limit, Offset, page
from trenches.errors import InvalidInput, NotFound
from trenches.json_form import to_json
from trenches.names import SPLITS

router = APIRouter(prefix="/datasets", tags=["datasets"])

Reading = Annotated[Caller, Depends(Allow("datasets.read"))]
ReadingOne = Annotated[Caller, Depends(Allow("datasets.read", path("dataset")))]
ReadingPatterns = Annotated[Caller, Depends(Allow("patterns.read", path("dataset")))]
Relabelling = Annotated[Caller, Depends(Allow("patterns.relabel", path("dataset")))]


def _dataset(d: Any) -> dict[str, Any]:
    return {
        "name": d.name,
        "task": d.task,
        "label_column": d.label_column,
        "label_type": d.label_type,
        "description": d.description,
        "created_at": to_json(d.created_at),
        "tolerance": None if d.tolerance is None else str(d.tolerance),
    }


@router.get("")
def list_datasets(caller: Reading) -> list[dict[str, Any]]:
    """The datasets the caller may read."""
    return [
        _dataset(d) for d in caller.store.datasets.list() if caller.may("datasets.read", d.name)
    ]


@router.get("/{dataset}")
def show_dataset(dataset: str, caller: ReadingOne) -> Any:
    """What ``trenches data show`` prints: counts by split, source, label and month."""
    return to_json(caller.store.datasets.get(dataset).summary())


@router.get("/{dataset}/patterns")
def list_patterns(
    dataset: str,
    request: Request,
    caller: ReadingPatterns,
    limit: Limit = 100,
    offset: Offset = 0,
    split: Annotated[str | None, Query(description="train, validation or test")] = None,
) -> Any:
    """The active patterns, by id: their inputs and label, a page at a time."""
    ds = caller.store.datasets.get(dataset)
    if split is not None and split not in SPLITS:
        raise InvalidInput(f"split {split!r} must be one of {', '.join(SPLITS)}", field="split")
    ids = ds.pattern_ids(split)
    chosen = ids[offset : offset + limit]
    frame = ds.patterns(ids=chosen.tolist()) if len(chosen) else None
    rows = [] if frame is None else orjson.loads(frame.reset_index().to_json(orient="records"))
    out = page(request, range(len(ids)), limit=limit, offset=offset)
    out["items"] = rows
    return out


class Relabel(BaseModel):
    """A new label for a pattern, and why."""

    label: Any = Field(description="The new label, as the dataset's labels are.")
    reason: str = Field(min_length=1, max_length=10_000)
    source: str = Field("expert", max_length=100)


@router.post("/{dataset}/patterns/{pattern_id}/relabel")
def relabel(dataset: str, pattern_id: int, body: Relabel, caller: Relabelling) -> Any:
    """Relabel a pattern: the old one is deactivated and a new one points back to it
    (``trenches data relabel``). Recorded in the audit log as the caller's."""
    store = caller.store
    if store.patterns.get(pattern_id).dataset != dataset:
        raise NotFound(f"dataset {dataset!r} has no pattern {pattern_id}")
    with caller.changing("patterns.relabel", f"pattern:{pattern_id}", {"reason": body.reason}):
        new = store.patterns.relabel(
            pattern_id,
            body.label,
            source=body.source,
            reason=body.reason,
            labelled_by=caller.user.name,
        )
    return to_json(new)
