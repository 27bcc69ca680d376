"""The audit log: ``GET /api/v1/audit``. It can be read; nothing here changes it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from trenches.api.access import Allow, Caller, whole_store
from trenches.json_form import to_json
from trenches.team.audit import MAX_LIMIT

router = APIRouter(tags=["audit"])


@router.get("/audit")
def audit(
    caller: Annotated[Caller, Depends(Allow("audit.read", whole_store))],
    user: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=100, description="ISO 8601 time")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> Any:
    """Changes, newest first: who, when, what, from where."""
    found = caller.store.audit.list(user=user, action=action, since=since, limit=limit)
    return to_json(found)
