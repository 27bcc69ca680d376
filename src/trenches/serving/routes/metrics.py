"""``GET /metrics``: the server's Prometheus metrics (:mod:`trenches.serving.metrics`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from trenches.serving.state import ServerDep

router = APIRouter(tags=["trenches"])


@router.get("/metrics")
async def metrics(server: ServerDep) -> Response:
    content, media_type = server.metrics.render()
    return Response(content, media_type=media_type)
