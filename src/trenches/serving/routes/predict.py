"""``POST /predict``: trenches' own protocol, a JSON list of records (or one record)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from trenches.serving import protocols
from trenches.serving.routes.prediction import hot_server, predicted

router = APIRouter(tags=["trenches"])


@router.post("/predict", response_class=Response)
async def predict(request: Request) -> Response:
    """A JSON list of records (or one record): `[{"radius": 12.1, ...}, ...]`."""
    server = hot_server(request)
    return await predicted(
        request, server, server.served, "predict", protocols.predict, protocols.predict_answer
    )
