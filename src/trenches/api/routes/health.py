"""``GET /health``: the server is up and its store answers. Open without a token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from trenches.db.engine import read

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> dict[str, str]:
    """``{"status": "ok"}`` when the store answers a query."""
    with read(request.app.state.store.engine) as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok"}
