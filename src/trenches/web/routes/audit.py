"""The audit page (admins: ``audit.read`` on the whole store): who changed what, when and
from where, newest first, in pages of :data:`PAGE` (keyset: each next page starts below
the last id shown), filtered by user, action (or family) and target prefix."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from trenches.api.access import Allow, Caller, whole_store
from trenches.names import INT64_MAX
from trenches.web import render

router = APIRouter(include_in_schema=False)

Reading = Annotated[Caller, Depends(Allow("audit.read", whole_store))]
Filter = Annotated[str | None, Query(max_length=200)]
#: Entries on one page.
PAGE = 50


@router.get("/audit")
def audit(
    request: Request,
    caller: Reading,
    user: Filter = None,
    action: Filter = None,
    target: Filter = None,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> HTMLResponse:
    """A page of the audit log, newest first."""
    filters = {"user": user or None, "action": action or None, "target": target or None}
    found = caller.store.audit.list(**filters, before=before, limit=PAGE + 1)
    shown = found[:PAGE]
    kept = {k: v for k, v in filters.items() if v}
    next_url = None
    if len(found) > PAGE:
        next_url = "/audit?" + urlencode({**kept, "before": shown[-1].id})
    first_url = ("/audit?" + urlencode(kept)) if before is not None else None
    return render.html(
        request,
        caller,
        "audit.html",
        entries=shown,
        filters=filters,
        next_url=next_url,
        first_url=first_url,
    )
