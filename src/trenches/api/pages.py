"""Large lists, a page at a time: ``?limit=`` (at most :data:`MAX_LIMIT`) and
``?offset=``; the answer is ``{"items": [...], "total": N, "next": URL or null}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query, Request

#: The most items one page holds.
MAX_LIMIT = 1_000
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="Items to skip.")]


def page(request: Request, items: Sequence[Any], *, limit: int, offset: int) -> dict[str, Any]:
    """One page of ``items`` (all of them, in order), with the URL of the next page."""
    chosen = list(items[offset : offset + limit])
    following = None
    if offset + limit < len(items):
        following = str(request.url.include_query_params(offset=offset + limit, limit=limit))
    return {"items": chosen, "total": len(items), "next": following}
