"""Drift reports and retraining passes of a model: ``/api/v1/models/{model}/drift`` and
``.../retrains``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from trenches.api.access import Allow, Caller, path
from trenches.api.pages import Limit, Offset, page
from trenches.json_form import to_json

router = APIRouter(prefix="/models/{model}", tags=["monitoring"])

Reading = Annotated[Caller, Depends(Allow("monitoring.read", path("model")))]


@router.get("/drift")
def drift_reports(
    model: str, request: Request, caller: Reading, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """The model's stored drift reports, newest first, each with its alert and the
    retraining it set off (``trenches monitor history``), a page at a time."""
    found = caller.store.monitoring.history(model, limit=None)
    out = page(request, found, limit=limit, offset=offset)
    out["items"] = to_json(out["items"])
    return out


@router.get("/retrains")
def retrains(
    model: str, request: Request, caller: Reading, limit: Limit = 100, offset: Offset = 0
) -> Any:
    """The model's retraining passes, newest first (``trenches retrain NAME --history``),
    a page at a time."""
    caller.store.models.versions(model)  # an unknown model is not found, not empty
    found = caller.store.retrains.history(model)
    out = page(request, found, limit=limit, offset=offset)
    out["items"] = to_json(out["items"])
    return out
