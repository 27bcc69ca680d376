"""``POST /feedback``: a true label or a rating on a served request, checked against the
request at once (:mod:`trenches.serving.feedback`) and stored with the request log."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from trenches.serving.feedback import Feedback
from trenches.serving.payloads import PayloadError, loads
from trenches.serving.routes.prediction import JSON
from trenches.serving.state import ServerDep

router = APIRouter(tags=["trenches"])


@router.post("/feedback")
async def feedback(request: Request, server: ServerDep) -> Response:
    """`{"request_id": "...", "label": "malignant"}` (or `"rating": 4`, `"row": 2`,
    `"comment"`): stored with the request log, asynchronously (202)."""
    if server.requests is None:
        raise PayloadError(
            409, "this server keeps no request log (it was started with --no-log): no feedback"
        )
    given = Feedback.parse(loads(await server.body(request)))
    answered = await server.answered(given.request_id)
    item = server.feedback(given.checked(answered), answered)
    server.requests.put(item)
    server.metrics.request("feedback", 202)
    return Response(
        orjson.dumps({"accepted": True, "request_id": item.request_id, "row": item.row}),
        status_code=202,
        media_type=JSON,
    )
