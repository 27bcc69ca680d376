"""The probes: liveness and readiness, MLflow's and the Open Inference Protocol's. They
answer without the token (an orchestrator has none) and say nothing about the model."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

JSON = "application/json"

router = APIRouter()


@router.get("/ping", tags=["MLflow"])
async def ping() -> Response:
    return Response(b"\n", media_type=JSON)


@router.get("/health", tags=["MLflow"])
async def health() -> Response:
    return Response(b"\n", media_type=JSON)


@router.get("/v2/health/live", tags=["V2"])
async def live() -> Response:
    return Response(b'{"live":true}', media_type=JSON)


@router.get("/v2/health/ready", tags=["V2"])
async def ready() -> Response:
    return Response(b'{"ready":true}', media_type=JSON)


#: What answers without the token: these routes, with any method.
OPEN_PATHS = frozenset(route.path for route in router.routes)  # type: ignore[attr-defined]
