"""``GET /api/v1/me``: who the token stands for, and their grants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trenches.api.access import Allow, Caller
from trenches.json_form import to_json

router = APIRouter(tags=["accounts"])


@router.get("/me")
def me(caller: Annotated[Caller, Depends(Allow.signed_in())]) -> Any:
    """The signed-in user and the roles granted to them, by namespace."""
    grants = caller.store.grants.list(caller.user)
    return {"user": to_json(caller.user), "grants": to_json(grants)}
