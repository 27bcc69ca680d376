"""The MLflow scoring protocol: ``POST /invocations`` and ``GET /version`` (its probes,
``/ping`` and ``/health``, are in :mod:`.probes`)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from trenches.serving import protocols
from trenches.serving.routes.prediction import JSON, hot_server, predicted
from trenches.serving.state import ServerDep

router = APIRouter(tags=["MLflow"])


@router.post("/invocations", response_class=Response)
async def invocations(request: Request) -> Response:
    """MLflow scoring: dataframe_split, dataframe_records, instances or inputs."""
    server = hot_server(request)
    return await predicted(
        request, server, server.served, "invocations", protocols.mlflow, protocols.mlflow_answer
    )


@router.get("/version")
async def version(server: ServerDep) -> Response:
    return Response(orjson.dumps(server.served.model.ref), media_type=JSON)
